"""config.model.logprobs picks the completion-logprob path of the GRPO and
SFT gradients: 'fused' reaches the Pallas kernel (its TPU code path, in
the TPU interpreter) and gives the chunked XLA path's values and
gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import facial_r1
from emojax.kernels import backend
from emojax.model import config as config_lib
from emojax.model import params as params_lib
from emojax.model import specs
from emojax.train import grpo, setup, sft

B, T, START = 3, 12, 5


def _rl():
  """The recipe's GRPO loss without its KL term, tempered and with
  an entropy bonus so the entropy output matters too."""
  rl = facial_r1.get_config().rl
  rl.beta, rl.temperature, rl.entropy_coef = 0.0, 0.7, 0.01
  return rl


def _setup():
  cfg = config_lib.tiny_text()
  params = params_lib.init(specs(cfg), jax.random.key(0))
  ids = jax.random.randint(jax.random.key(1), (B, T), 1, cfg.vocab_size - 1)
  mask = jnp.ones((B, T), jnp.int32)
  batch = {"input_ids": ids, "attention_mask": mask, "loss_mask": mask}
  inputs = {
    "adv": jnp.array([1.0, -0.5, 0.25]),
    "mask": jnp.ones((B, T - START)).at[1, -3:].set(0.0),
    "denominator": np.float32(B),
  }
  return cfg, params, batch, inputs


def _grpo(cfg, params, batch, inputs):
  return grpo.grads(
    params,
    batch,
    inputs,
    cfg=cfg,
    start=START,
    rl_static=grpo.static_rl(_rl()),
  )


def _sft(cfg, params, batch, inputs):
  return sft.grads(params, batch, np.float32(B * (T - 1)), cfg=cfg)


@pytest.mark.parametrize("step", [_grpo, _sft], ids=["grpo", "sft"])
def test_fused_switch_reaches_the_kernel_and_matches_chunked(step):
  cfg, params, batch, inputs = _setup()
  want = step(cfg, params, batch, inputs)
  fused = cfg.replace(logprobs="fused")
  # The module-level jits cache traces by cfg, not by target: this cfg is
  # traced only here, under the target.
  with backend.target("tpu", simulate=True):
    jaxpr = str(jax.make_jaxpr(step, static_argnums=0)(fused, *_setup()[1:]))
    got = step(fused, params, batch, inputs)
  assert "emojax_fused_logprobs_tpu" in jaxpr
  assert "emojax_fused_logprobs_tpu" not in str(
    jax.make_jaxpr(step, static_argnums=0)(cfg, params, batch, inputs)
  )
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_the_recipe_config_sets_it():
  c = facial_r1.get_config()
  assert c.model.logprobs == "chunked"
  c.model.logprobs = "fused"
  tok = setup.tokenizer(c)
  assert setup.model_config(c, tok).logprobs == "fused"


def test_an_unknown_path_is_refused_by_name():
  with pytest.raises(ValueError, match="logprobs='dense'.*'fused'"):
    config_lib.tiny_text().replace(logprobs="dense")
