"""Shared-prompt logprobs equal those of the concatenated rows.

The reference is the plain forward over B = P*G rows of prompt +
completion (`logprobs.completion_logprobs` with `start`), whose own parity
with transformers is tested elsewhere; values and gradients must agree.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_vlm_hf

from emojax.model import config as config_lib
from emojax.model import params as params_lib
from emojax.model import prefix, specs, vlm
from emojax.rl import logprobs
from emojax.train import batching

G, C = 3, 7


def _completions(cfg, B, seed):
  """Right-padded completions of ragged lengths (one fills all C)."""
  rng = np.random.RandomState(seed)
  ids_BC = rng.randint(1, cfg.vocab_size - 8, (B, C))
  lengths_B = rng.randint(1, C + 1, B)
  lengths_B[0] = C
  mask_BC = (np.arange(C)[None] < lengths_B[:, None]).astype(np.int32)
  return ids_BC * mask_BC, mask_BC


def _both_layouts(cfg, prompts, seed=0):
  P = len(prompts["input_ids"])
  ids_BC, mask_BC = _completions(cfg, P * G, seed)
  shared = {
    "prompt": batching.device_batch(cfg, prompts, bucket=0),
    "completion_ids": jnp.asarray(ids_BC),
    "completion_mask": jnp.asarray(mask_BC),
  }
  rows = batching.repeat_rows(cfg, prompts, G)
  rows["input_ids"] = np.concatenate([rows["input_ids"], ids_BC], 1)
  rows["attention_mask"] = np.concatenate([rows["attention_mask"], mask_BC], 1)
  rows = batching.device_batch(cfg, rows, bucket=0)
  return shared, rows, prompts["input_ids"].shape[1], mask_BC


def _text_case():
  cfg = config_lib.tiny_text()
  rng = np.random.RandomState(3)
  ids = rng.randint(1, cfg.vocab_size - 8, (2, 9))
  mask = np.ones((2, 9), np.int64)
  mask[1, :4] = 0  # left padding
  return cfg, {"input_ids": ids * mask, "attention_mask": mask}


def _text_case_unrolled_remat():
  cfg, prompts = _text_case()
  return cfg.replace(scan_layers=False, remat=True), prompts


def _vlm_case():
  cfg = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)
  return cfg, tiny_vlm_hf.left_aligned(tiny_vlm_hf.batch(cfg))


def _video_case():
  cfg = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)
  hf = tiny_vlm_hf.video_batch(cfg, seconds=(2.0, 0.5), image=False)
  return cfg, tiny_vlm_hf.left_aligned(vlm.from_hf_layout(cfg, hf))


@pytest.mark.parametrize(
  "case", [_text_case, _text_case_unrolled_remat, _vlm_case, _video_case]
)
def test_values_and_gradients_equal_concatenated_rows(case):
  cfg, prompts = case()
  params = params_lib.init(specs(cfg), jax.random.key(0))
  shared, rows, start, mask_BC = _both_layouts(cfg, prompts)

  def loss(p, batch, start):
    logp_BC, ent_BC = logprobs.completion_logprobs(
      p, cfg, batch, start, temperature=0.8
    )
    return jnp.sum((logp_BC + 0.1 * ent_BC) * mask_BC), (logp_BC, ent_BC)

  grad_fn = jax.jit(
    jax.value_and_grad(loss, has_aux=True), static_argnames="start"
  )
  (_, (logp, ent)), g = grad_fn(params, shared, start=None)
  (_, (logp_ref, ent_ref)), g_ref = grad_fn(params, rows, start=start)
  m = mask_BC.astype(bool)
  np.testing.assert_allclose(logp[m], logp_ref[m], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ent[m], ent_ref[m], rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # Not vacuous: the completions' logprobs depend on their prompt.
  assert np.abs(np.diff(np.asarray(logp[::G, 0]))).max() > 1e-3


def test_completion_positions_continue_each_prompt():
  positions_PT = jnp.array([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]])
  mask_BC = jnp.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
  got = prefix.completion_positions(positions_PT, mask_BC, 2)
  np.testing.assert_array_equal(
    got, [[3, 4, 4], [3, 4, 5], [5, 5, 5], [5, 6, 7]]
  )
  got_3d = prefix.completion_positions(
    jnp.stack([positions_PT, positions_PT + 1, positions_PT]), mask_BC, 2
  )
  # Text tokens: three equal components, after the largest of any.
  np.testing.assert_array_equal(got_3d, np.stack([got + 1] * 3))


def test_rows_must_be_whole_groups():
  cfg, prompts = _text_case()
  params = params_lib.init(specs(cfg), jax.random.key(0))
  with pytest.raises(ValueError, match="G completions per prompt"):
    prefix.hidden_states(
      params, cfg, prompts, jnp.ones((5, 3), jnp.int32), jnp.ones((5, 3))
    )


def test_pallas_attention_equals_xla_on_the_shared_layout():
  """The flash kernel with T < S (completions after their prompt's keys)
  gives XLA's logprobs and gradients (interpret mode on CPU; ~50 s, so the
  text model only: the VLM takes the same kernel call)."""
  cfg, prompts = _text_case()
  params = params_lib.init(specs(cfg), jax.random.key(1))
  shared, _, _, mask_BC = _both_layouts(cfg, prompts, seed=1)

  def loss(p, cfg):
    logp_BC, ent_BC = logprobs.completion_logprobs(p, cfg, shared, None)
    return jnp.sum((logp_BC + 0.1 * ent_BC) * mask_BC), logp_BC

  grad_fn = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
  (_, logp), g = grad_fn(params, cfg.replace(attention="pallas"))
  (_, logp_ref), g_ref = grad_fn(params, cfg)
  m = mask_BC.astype(bool)
  np.testing.assert_allclose(logp[m], logp_ref[m], rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
