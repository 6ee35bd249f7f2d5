"""The rollout engine against transformers' `generate` and a full forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_hf
import torch
from transformers.generation import logits_process as hf_lp

import emojax.hf
from emojax import rollout
from emojax.model import model as model_lib
from emojax.rollout import sampler

LENGTHS = (9, 5, 2, 12)  # prompts of different lengths
N = 10  # new tokens


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  # A larger init than HF's 0.02 so greedy paths do not collapse to one
  # repeated token (which would make parity vacuous).
  hf_model = tiny_hf.qwen2(initializer_range=0.3)
  cfg, params = emojax.hf.load(
    tiny_hf.save(hf_model, tmp_path_factory.mktemp("qwen2"))
  )
  return hf_model, cfg, params


def _prompts(seed=0, left=True):
  rng = np.random.RandomState(seed)
  T = max(LENGTHS)
  ids = np.zeros((len(LENGTHS), T), np.int64)
  mask = np.zeros_like(ids)
  for b, n in enumerate(LENGTHS):
    span = slice(T - n, T) if left else slice(0, n)
    ids[b, span] = rng.randint(1, 128, n)
    mask[b, span] = 1
  return ids, mask


def _hf_greedy(hf_model, ids, mask, eos):
  with torch.no_grad():
    out = hf_model.generate(
      input_ids=torch.as_tensor(ids),
      attention_mask=torch.as_tensor(mask),
      do_sample=False,
      max_new_tokens=N,
      min_new_tokens=0 if eos is not None else N,
      eos_token_id=eos,
      pad_token_id=0,
    )
  new = out[:, ids.shape[1] :].numpy()
  return np.pad(new, ((0, 0), (0, N - new.shape[1])))


def test_greedy_equals_transformers_generate(models):
  hf_model, cfg, params = models
  ids, mask = _prompts()
  got = rollout.generate(
    params,
    cfg,
    {"input_ids": ids, "attention_mask": mask},
    jax.random.key(0),
    max_new_tokens=N,
    greedy=True,
    stop_token_ids=(),
  )
  want = _hf_greedy(hf_model, ids, mask, eos=None)
  np.testing.assert_array_equal(got.completion_ids, want)
  assert len(np.unique(want)) > 10  # a real path, not one repeated token
  assert np.asarray(got.truncated).all()  # no stop token: all truncated
  np.testing.assert_array_equal(got.lengths, N)


def _stop_token(tokens_BN):
  """A token whose first occurrence differs between rows, missing in one."""
  best, best_score = None, -1
  for tok in np.unique(tokens_BN):
    hits = [np.flatnonzero(row == tok) for row in tokens_BN]
    firsts = {h[0] for h in hits if len(h)}
    missing = sum(len(h) == 0 for h in hits)
    score = len(firsts) if missing else -1
    if score > best_score:
      best, best_score = int(tok), score
  assert best_score >= 2
  return best


def test_rows_stop_independently_like_transformers(models):
  hf_model, cfg, params = models
  ids, mask = _prompts()
  free = _hf_greedy(hf_model, ids, mask, eos=None)
  eos = _stop_token(free)
  want = _hf_greedy(hf_model, ids, mask, eos=eos)
  # Right padding is accepted too: the engine left-aligns the prompts.
  r_ids, r_mask = _prompts(left=False)
  kw = dict(max_new_tokens=N, greedy=True, stop_token_ids=(eos,))
  first = rollout.generate(
    params, cfg, {"input_ids": ids, "attention_mask": mask},
    jax.random.key(0), **kw,
  )  # fmt: skip
  got = rollout.generate(
    params, cfg, {"input_ids": r_ids, "attention_mask": r_mask},
    jax.random.key(0), **kw,
  )  # fmt: skip
  np.testing.assert_array_equal(got.completion_ids, want)
  np.testing.assert_array_equal(first.completion_ids, want)
  hit = [np.flatnonzero(row == eos) for row in free]
  lengths = [h[0] + 1 if len(h) else N for h in hit]
  np.testing.assert_array_equal(got.lengths, lengths)
  np.testing.assert_array_equal(got.truncated, [len(h) == 0 for h in hit])
  mask_BN = np.arange(N)[None] < np.asarray(lengths)[:, None]
  np.testing.assert_array_equal(got.completion_mask, mask_BN)
  # Nothing is written after the stop token: pad ids and zero logprobs.
  assert (np.asarray(got.completion_ids)[~mask_BN] == cfg.pad_token_id).all()
  assert (np.asarray(got.logprobs)[~mask_BN] == 0).all()


def test_cache_buffer_is_reused_not_reallocated(models):
  _, cfg, params = models
  ids, mask = _prompts(seed=1)
  batch = {"input_ids": ids, "attention_mask": mask}
  kw = dict(max_new_tokens=N, greedy=True, stop_token_ids=())
  sampler.release_caches()
  a = rollout.generate(params, cfg, batch, jax.random.key(0), **kw)
  (buffer,) = sampler._CACHES.values()
  b = rollout.generate(params, cfg, batch, jax.random.key(0), **kw)
  assert buffer.k_BKES[0].is_deleted()  # donated into the second call
  assert len(sampler._CACHES) == 1
  np.testing.assert_array_equal(a.completion_ids, b.completion_ids)


def _hf_warp(logits, temperature, top_k, top_p):
  scores = torch.tensor(np.array(logits).reshape(-1, logits.shape[-1]))
  for w in (
    hf_lp.TemperatureLogitsWarper(temperature),
    hf_lp.TopKLogitsWarper(top_k),
    hf_lp.TopPLogitsWarper(top_p),
  ):
    scores = w(None, scores)
  return torch.log_softmax(scores, -1).numpy().reshape(logits.shape)


def test_logprobs_equal_a_fresh_full_forward(models):
  _, cfg, params = models
  ids, mask = _prompts(seed=2)
  P, G = len(LENGTHS), 3
  temperature, top_k, top_p = 0.8, 20, 0.95
  r = rollout.generate(
    params,
    cfg,
    {"input_ids": ids, "attention_mask": mask},
    jax.random.key(3),
    num_generations=G,
    max_new_tokens=N,
    temperature=temperature,
    top_k=top_k,
    top_p=top_p,
    stop_token_ids=tuple(range(100, 112)),
    decode_fn=lambda toks: ",".join(map(str, toks)),
  )
  tokens_BN = np.asarray(r.completion_ids)
  mask_BN = np.asarray(r.completion_mask).astype(bool)
  truncated_B = np.asarray(r.truncated)
  assert 0 < truncated_B.sum() < P * G  # some rows stopped, some did not
  # B = P*G rows, prompt-major: the group view is a reshape.
  prompt_ids = np.asarray(r.prompt_ids)
  assert r.group(prompt_ids).shape == (P, G, prompt_ids.shape[1])
  assert (r.group(prompt_ids) == r.group(prompt_ids)[:, :1]).all()
  assert len({tuple(t) for t in tokens_BN}) > P  # samples differ per row
  full = {
    "input_ids": np.concatenate([prompt_ids, tokens_BN], 1),
    "attention_mask": np.concatenate([r.prompt_mask, r.completion_mask], 1),
  }
  logits_BTV = np.asarray(jax.jit(model_lib.forward, static_argnums=1)(
    params, cfg, full
  ))[:, prompt_ids.shape[1] - 1 : -1]  # fmt: skip
  logp_BNV = np.asarray(jax.nn.log_softmax(jnp.asarray(logits_BTV), -1))
  want = np.take_along_axis(logp_BNV, tokens_BN[..., None], -1)[..., 0]
  got = np.asarray(r.logprobs)
  # fp32, two summation orders (cached decode vs one full forward).
  np.testing.assert_allclose(got[mask_BN], want[mask_BN], atol=1e-5, rtol=5e-6)
  shaped_BNV = _hf_warp(logits_BTV, temperature, top_k, top_p)
  shaped = np.take_along_axis(shaped_BNV, tokens_BN[..., None], -1)[..., 0]
  np.testing.assert_allclose(
    np.asarray(r.shaped_logprobs)[mask_BN],
    shaped[mask_BN],
    atol=1e-5,
    rtol=5e-6,
  )
  # Stop tokens end a row exactly at its length; truncated rows have none.
  stops = np.isin(tokens_BN, np.arange(100, 112)) & mask_BN
  lengths_B = np.asarray(r.lengths)
  for b in range(P * G):
    where = np.flatnonzero(stops[b])
    if truncated_B[b]:
      assert len(where) == 0 and lengths_B[b] == N
    else:
      assert where.tolist() == [lengths_B[b] - 1]
    assert r.text[b] == ",".join(map(str, tokens_BN[b, : lengths_B[b]]))


def test_bf16_cache_halves_bytes_and_stays_close(models):
  _, cfg, params = models
  ids, mask = _prompts(seed=4)
  batch = {"input_ids": ids, "attention_mask": mask}
  kw = dict(max_new_tokens=N, greedy=True, stop_token_ids=())
  f32 = rollout.generate(params, cfg, batch, jax.random.key(0), **kw)
  b16 = rollout.generate(
    params, cfg, batch, jax.random.key(0), cache_dtype="bfloat16", **kw
  )
  caches = {k[3]: v for k, v in sampler._CACHES.items()}
  assert caches["bfloat16"].v_BKSE[0].dtype == jnp.bfloat16
  assert (
    caches["bfloat16"].v_BKSE[0].nbytes * 2
    == caches["float32"].v_BKSE[0].nbytes
  )
  # Greedy paths agree until the first rounding-induced divergence; the
  # first token's logprob differs only by bf16 rounding of K/V.
  first = np.asarray(b16.logprobs)[:, 0] - np.asarray(f32.logprobs)[:, 0]
  assert np.abs(first).max() < 5e-2
  np.testing.assert_array_equal(
    np.asarray(b16.completion_ids)[:, 0], np.asarray(f32.completion_ids)[:, 0]
  )


def test_bad_batches_fail_with_the_fix(models):
  _, cfg, params = models
  ids, mask = _prompts()
  mask[0, -3] = 0  # a hole inside row 0's prompt
  with pytest.raises(ValueError, match="row 0: attention_mask has holes"):
    rollout.generate(
      params, cfg, {"input_ids": ids, "attention_mask": mask},
      jax.random.key(0), max_new_tokens=2,
    )  # fmt: skip
  with pytest.raises(ValueError, match="labels"):
    rollout.generate(
      params, cfg, {"input_ids": ids, "labels": ids}, jax.random.key(0),
      max_new_tokens=2,
    )  # fmt: skip
