"""GRPO's logprobs are those of the tempered policy the rollout sampled
from: log_softmax(full-forward logits / temperature), as TRL computes them
for old, reference and new logprobs alike."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emojax.model import config as config_lib
from emojax.model import model as model_lib
from emojax.model import params as params_lib
from emojax.model import specs
from emojax.rl import loss
from emojax.train import grpo

B, T, START = 3, 12, 5


def _setup():
  cfg = config_lib.tiny_text()
  params = params_lib.init(specs(cfg), jax.random.key(0))
  ids = jax.random.randint(jax.random.key(1), (B, T), 1, cfg.vocab_size - 1)
  batch = {"input_ids": ids, "attention_mask": jnp.ones((B, T), jnp.int32)}
  return cfg, params, batch


def _reference(params, cfg, batch, temperature):
  logits_BTV = model_lib.forward(params, cfg, batch).astype(jnp.float32)
  logp_BTV = jax.nn.log_softmax(logits_BTV / temperature, axis=-1)
  targets_BC = batch["input_ids"][:, START:]
  return jnp.take_along_axis(
    logp_BTV[:, START - 1 : -1], targets_BC[..., None], axis=-1
  )[..., 0]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_policy_logprobs_are_the_tempered_policys(temperature):
  cfg, params, batch = _setup()
  got = grpo.policy_logprobs(
    params, batch, cfg=cfg, start=START, temperature=temperature
  )
  want = _reference(params, cfg, batch, temperature)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _rl(entropy_coef=0.0):
  return ml_collections.ConfigDict(
    dict(
      loss_type="grpo",
      epsilon=0.2,
      epsilon_high=0.2,
      delta=None,
      dual_clip=None,
      importance_sampling_level="token",
      beta=0.0,
      kl_estimator="k3",
      entropy_coef=entropy_coef,
      temperature=0.7,
    )
  )


def _grads(params, batch, cfg, rl, adv_B, mask_BC):
  inputs = {"adv": adv_B, "mask": mask_BC, "denominator": np.float32(B)}
  got, _, _ = grpo.grads(
    params, batch, inputs, cfg=cfg, start=START, rl_static=grpo.static_rl(rl)
  )
  return got


def test_gradient_is_the_tempered_policys():
  """On-policy the loss value is the same at any temperature (ratio 1);
  the gradient is where the temperature shows."""
  cfg, params, batch = _setup()
  rl = _rl()
  adv_B = jnp.array([1.0, -0.5, 0.25])
  mask_BC = jnp.ones((B, T - START))
  got = _grads(params, batch, cfg, rl, adv_B, mask_BC)

  def reference_loss(p, temperature):
    logp_BC = _reference(p, cfg, batch, temperature)
    _, m = loss.grpo_loss(logp_BC, None, None, adv_B, mask_BC, rl)
    return m["numerator"] / B

  want = jax.grad(reference_loss)(params, 0.7)
  untempered = jax.grad(reference_loss)(params, 1.0)
  for g, w, _ in zip(
    jax.tree.leaves(got),
    jax.tree.leaves(want),
    jax.tree.leaves(untempered),
    strict=True,
  ):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
  assert not np.allclose(
    jax.tree.leaves(got)[0], jax.tree.leaves(untempered)[0]
  )


def test_entropy_bonus_trains_the_tempered_policys_entropy():
  """The step's gradient with entropy_coef is that of the policy term
  minus coef * (mean over rows of each row's token-mean entropy of
  softmax(logits / temperature)), from full logits."""
  cfg, params, batch = _setup()
  rl = _rl(entropy_coef=0.05)
  adv_B = jnp.array([1.0, -0.5, 0.25])
  mask_BC = jnp.ones((B, T - START)).at[1, -3:].set(0.0)
  got = _grads(params, batch, cfg, rl, adv_B, mask_BC)

  def reference_loss(p):
    logits_BTV = model_lib.forward(p, cfg, batch).astype(jnp.float32)
    logq_BCV = jax.nn.log_softmax(logits_BTV[:, START - 1 : -1] / 0.7, -1)
    ent_BC = -(jnp.exp(logq_BCV) * logq_BCV).sum(-1)
    _, m = loss.grpo_loss(
      _reference(p, cfg, batch, 0.7), None, None, adv_B, mask_BC, _rl()
    )
    seq_mean_B = (ent_BC * mask_BC).sum(-1) / mask_BC.sum(-1)
    return m["numerator"] / B - 0.05 * seq_mean_B.mean()

  want = jax.grad(reference_loss)(params)
  without = _grads(params, batch, cfg, _rl(), adv_B, mask_BC)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
  assert not np.allclose(jax.tree.leaves(got)[0], jax.tree.leaves(without)[0])
