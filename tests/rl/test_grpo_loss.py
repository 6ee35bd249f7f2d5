"""grpo_loss against a literal torch transcription of TRL's _compute_loss."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

from emojax.rl import loss as rl_loss

B, T, MAX_LEN = 6, 9, 12


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  logp = -rng.gamma(2.0, 0.5, (B, T)).astype(np.float32)
  # Per-row drift so the sequence-level (GSPO) ratio also leaves the clip.
  drift = rng.uniform(-0.5, 0.5, (B, 1))
  old = logp + drift + 0.3 * rng.standard_normal((B, T))
  old = old.astype(np.float32)
  ref = (logp + 0.2 * rng.standard_normal((B, T))).astype(np.float32)
  adv = rng.standard_normal(B).astype(np.float32)
  lengths = np.array([9, 1, 5, 0, 7, 3])  # Ragged, one empty row.
  mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
  return logp, old, ref, adv, mask


def _trl_loss(logp, old, ref, adv, mask, c, num_items_in_batch=None):
  """TRL GRPOTrainer._compute_loss, transcribed (PEERS.md section 1)."""
  log_ratio = logp - old
  if c["importance_sampling_level"] == "token":
    log_importance_weights = log_ratio
  else:
    log_importance_weights = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(
      min=1.0
    )
    log_importance_weights = log_importance_weights.unsqueeze(-1)
  coef_1 = torch.exp(log_importance_weights)
  coef_2 = torch.clamp(coef_1, 1 - c["epsilon"], 1 + c["epsilon_high"])
  per_token_loss1 = coef_1 * adv.unsqueeze(1)
  per_token_loss2 = coef_2 * adv.unsqueeze(1)
  per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
  if c["beta"] != 0.0:
    per_token_kl = torch.exp(ref - logp) - (ref - logp) - 1
    per_token_loss = per_token_loss + c["beta"] * per_token_kl
  lt = c["loss_type"]
  if lt == "grpo":
    return (
      (per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    ).mean()
  if lt == "bnpo":
    return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
  if lt == "dr_grpo":
    return (per_token_loss * mask).sum() / (
      per_token_loss.size(0) * c["max_completion_length"]
    )
  if num_items_in_batch is None:
    num_items_in_batch = mask.sum()
  return (per_token_loss * mask).sum() / num_items_in_batch


def _cfg(loss_type, level, beta=0.04):
  return ml_collections.ConfigDict(
    dict(
      loss_type=loss_type,
      importance_sampling_level=level,
      epsilon=0.2,
      epsilon_high=0.28,
      beta=beta,
      kl_estimator="k3",
      max_completion_length=MAX_LEN,
    )
  )


def _torch_value_and_grad(arrays, cfg, **kw):
  logp, old, ref, adv, mask = (torch.tensor(a) for a in arrays)
  logp.requires_grad_(True)
  value = _trl_loss(logp, old, ref, adv, mask, cfg.to_dict(), **kw)
  value.backward()
  return value.item(), logp.grad.numpy()


@pytest.mark.parametrize("loss_type", rl_loss.LOSS_TYPES)
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_matches_trl(loss_type, level, beta):
  arrays = _inputs()
  cfg = _cfg(loss_type, level, beta)
  want, want_grad = _torch_value_and_grad(arrays, cfg)
  logp, old, ref, adv, mask = arrays
  fn = lambda lp: rl_loss.grpo_loss(lp, old, ref, adv, mask, cfg)
  (got, metrics), grad = jax.value_and_grad(fn, has_aux=True)(logp)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
  assert metrics["clip_ratio/region_mean"] > 0  # The clip is exercised.


def test_dapo_num_items_matches_trl():
  arrays = _inputs(1)
  cfg = _cfg("dapo", "token")
  want, want_grad = _torch_value_and_grad(arrays, cfg, num_items_in_batch=50)
  fn = lambda lp: rl_loss.grpo_loss(lp, *arrays[1:], cfg, num_items=50)[0]
  got, grad = jax.value_and_grad(fn)(arrays[0])
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss_type", rl_loss.LOSS_TYPES)
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_micro_batch_accumulation_is_exact(loss_type, level):
  arrays = _inputs(2)
  cfg = _cfg(loss_type, level)

  def numerator(lp, *rest):
    loss, metrics = rl_loss.grpo_loss(lp, *rest, cfg)
    return metrics["numerator"], (loss, metrics["denominator"])

  step = jax.jit(jax.value_and_grad(numerator, has_aux=True))
  (_, (want, den)), grad = step(*arrays)
  want_grad = grad / den
  halves = [tuple(a[s] for a in arrays) for s in (slice(0, 3), slice(3, B))]
  outs = [step(*h) for h in halves]
  total_den = sum(den for (_, (_, den)), _ in outs)
  got = sum(num for (num, _), _ in outs) / total_den
  got_grad = np.concatenate([g for _, g in outs]) / total_den
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-7)


def test_dapo_num_items_micro_losses_add_up():
  arrays = _inputs(3)
  cfg = _cfg("dapo", "token")
  n = float(arrays[4].sum())
  want = rl_loss.grpo_loss(*arrays, cfg)[0]
  halves = [tuple(a[s] for a in arrays) for s in (slice(0, 3), slice(3, B))]
  got = sum(rl_loss.grpo_loss(*h, cfg, num_items=n)[0] for h in halves)
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("loss_type", rl_loss.LOSS_TYPES)
def test_zero_when_on_policy_with_zero_advantage(loss_type):
  logp, _, _, _, mask = _inputs(4)
  cfg = _cfg(loss_type, "token", beta=0.04)
  zeros = np.zeros(B, np.float32)
  value, metrics = rl_loss.grpo_loss(logp, logp, logp, zeros, mask, cfg)
  assert value == 0.0 and metrics["kl"] == 0.0
  # Beta 0 needs no reference at all, and old=None means on-policy.
  cfg.beta = 0.0
  value, _ = rl_loss.grpo_loss(logp, None, None, zeros, mask, cfg)
  assert value == 0.0


def test_on_policy_gradient_is_advantage_weighted_score():
  # With ratio 1 and beta 0, d loss / d logp_t = -A / n_tokens (dapo).
  logp, _, _, adv, mask = _inputs(5)
  cfg = _cfg("dapo", "token", 0.0)
  fn = lambda lp: rl_loss.grpo_loss(lp, None, None, adv, mask, cfg)[0]
  grad = jax.grad(fn)(logp)
  np.testing.assert_allclose(
    grad, -adv[:, None] * mask / mask.sum(), rtol=1e-6, atol=1e-8
  )


@pytest.mark.parametrize("estimator", ["k2", "k3"])
def test_kl_estimators_non_negative(estimator):
  rng = np.random.default_rng(6)
  logp, ref = rng.standard_normal((2, 1000)) * 3
  kl = rl_loss.kl_divergence(jnp.asarray(logp), jnp.asarray(ref), estimator)
  assert (np.asarray(kl) >= 0).all()


def test_kl_estimators_match_their_formulas():
  logp, ref = jnp.array([-1.0, -2.0]), jnp.array([-1.5, -0.5])
  d = np.asarray(ref - logp)
  for est, want in [
    ("k1", -d), ("k2", 0.5 * d**2), ("k3", np.exp(d) - d - 1)
  ]:  # fmt: skip
    np.testing.assert_allclose(rl_loss.kl_divergence(logp, ref, est), want)


def _verl_low_var_kl(logprob, ref_logprob):
  """verl's kl_penalty(..., 'low_var_kl'), transcribed."""
  kl = ref_logprob - logprob
  kl = torch.clamp(kl, min=-20, max=20)
  ratio = torch.exp(kl)
  kld = (ratio - kl - 1).contiguous()
  return torch.clamp(kld, min=-10, max=10)


def test_low_var_kl_is_verls_with_its_gradient():
  """Values and gradient, with ref - logp inside, past the estimate's
  clamp (3) and past the difference's clamp (25)."""
  logp = np.array([-1.0, -2.0, -3.1, -0.2, -30.0], np.float32)
  ref = np.array([-1.5, -0.5, -0.1, -25.2, -3.0], np.float32)
  t_logp = torch.tensor(logp, requires_grad=True)
  want = _verl_low_var_kl(t_logp, torch.tensor(ref))
  want.sum().backward()
  fn = lambda lp: rl_loss.kl_divergence(lp, jnp.asarray(ref), "low_var_kl")
  np.testing.assert_allclose(fn(logp), want.detach().numpy(), rtol=1e-6)
  grad = jax.grad(lambda lp: fn(lp).sum())(jnp.asarray(logp))
  np.testing.assert_allclose(grad, t_logp.grad.numpy(), rtol=1e-6)
  assert np.asarray(grad)[2:].tolist() == [0.0, 0.0, 0.0]


def test_dual_clip_bounds_negative_advantage_loss():
  logp, _, _, _, mask = _inputs(7)
  old = logp - 3.0  # Ratio e^3, far above the clip.
  adv = -np.ones(B, np.float32)
  cfg = _cfg("bnpo", "token", 0.0)
  plain = rl_loss.grpo_loss(logp, old, None, adv, mask, cfg)[0]
  cfg.dual_clip = 3.0
  clipped = rl_loss.grpo_loss(logp, old, None, adv, mask, cfg)[0]
  np.testing.assert_allclose(plain, np.exp(3.0), rtol=1e-6)
  np.testing.assert_allclose(clipped, 3.0, rtol=1e-6)


def test_facial_r1_per_reward_masks_and_sample_weights():
  logp, old, _, adv, mask = _inputs(8)
  rng = np.random.default_rng(8)
  think = mask * (rng.random((B, T)) < 0.6)
  masks = np.stack([mask, mask, think])  # format, accuracy, au
  w = rng.random(B).astype(np.float32)
  # Facial-R1: per reward k, sequence mean over mask k; mean over k, B.
  ratio = np.exp(logp - old)
  a = adv[:, None]
  per_tok = -np.minimum(ratio * a, np.clip(ratio, 0.8, 1.2) * a) * w[:, None]
  seq_means = [(per_tok * m).sum(-1) / np.maximum(m.sum(-1), 1) for m in masks]
  want = np.mean([s.mean() for s in seq_means])
  tw = rl_loss.per_reward_token_weights(masks, mask)
  cfg = _cfg("grpo", "token", 0.0)
  cfg.epsilon_high = 0.2
  got = rl_loss.grpo_loss(
    logp, old, None, adv, mask, cfg, token_weights_BT=tw, sample_weights_B=w
  )[0]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_entropy_bonus_and_jit():
  logp, old, ref, adv, mask = _inputs(9)
  ent = np.abs(logp)
  cfg = _cfg("bnpo", "token")
  base = rl_loss.grpo_loss(logp, old, ref, adv, mask, cfg)[0]
  cfg.entropy_coef = 0.1
  fn = jax.jit(lambda *a: rl_loss.grpo_loss(*a, cfg, entropy_BT=ent))
  got, metrics = fn(logp, old, ref, adv, mask)
  h = (ent * mask).sum() / mask.sum()
  np.testing.assert_allclose(metrics["entropy"], h, rtol=1e-6)
  np.testing.assert_allclose(got, base - 0.1 * h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss_type", rl_loss.LOSS_TYPES)
def test_entropy_bonus_has_its_gradient_and_accumulates(loss_type):
  """d loss / d H is -coef over the loss type's normaliser (verl's
  agg_loss), and the bonus adds up over micro-batches like the rest."""
  logp, old, ref, adv, mask = _inputs(4)
  ent = np.abs(np.random.default_rng(4).standard_normal((B, T)))
  ent = ent.astype(np.float32)
  cfg = _cfg(loss_type, "token")
  cfg.entropy_coef = 0.1

  def numerator(e, *rest):
    _, m = rl_loss.grpo_loss(*rest, cfg, entropy_BT=e)
    return m["numerator"], m["denominator"]

  step = jax.jit(jax.value_and_grad(numerator, has_aux=True))
  (num, den), grad = step(ent, logp, old, ref, adv, mask)
  n_B1 = np.maximum(mask.sum(-1, keepdims=True), 1)
  per_token = {"grpo": mask / (n_B1 * B), "dr_grpo": mask / (B * MAX_LEN)}
  want = per_token.get(loss_type, mask / mask.sum())
  np.testing.assert_allclose(grad / den, -0.1 * want, rtol=1e-5, atol=1e-8)
  arrays = (ent, logp, old, ref, adv, mask)
  halves = [[a[s] for a in arrays] for s in (slice(0, 2), slice(2, B))]
  outs = [step(*h) for h in halves]
  got = sum(o[0][0] for o in outs) / sum(o[0][1] for o in outs)
  np.testing.assert_allclose(got, num / den, rtol=1e-5)


@pytest.mark.parametrize(
  "change, kwargs, message",
  [
    ({"loss_type": "mean"}, {}, "loss_type"),
    ({"loss_type": "grpo"}, {"num_items": 10}, "num_items"),
    ({"kl_estimator": "k9"}, {}, "kl_estimator"),
    ({"importance_sampling_level": "seq"}, {}, "importance_sampling_level"),
    ({"entropy_coef": 0.1}, {}, "entropy_BT"),
  ],
)
def test_bad_config_fails_with_the_field(change, kwargs, message):
  logp, old, ref, adv, mask = _inputs()
  cfg = _cfg("dapo", "token")
  cfg.update(change)
  with pytest.raises(ValueError, match=message):
    rl_loss.grpo_loss(logp, old, ref, adv, mask, cfg, **kwargs)
  with pytest.raises(ValueError, match="ref_logp_BT"):
    rl_loss.grpo_loss(logp, old, None, adv, mask, _cfg("dapo", "token"))


def test_human_omni_v2_beta_schedule_and_traced_kl_weight():
  cfg = ml_collections.ConfigDict(
    dict(beta=0.04, beta_schedule="human_omni_v2", loss_type="bnpo")
  )
  got = [rl_loss.beta_at(cfg, t, 100) for t in (0, 25, 50, 90)]
  np.testing.assert_allclose(got, [0.04, 0.04 * 0.625, 0.01, 0.01])
  logp, old, ref, adv, mask = _inputs(10)
  want = rl_loss.grpo_loss(logp, old, ref, adv, mask, cfg)[0]
  cfg_half = ml_collections.ConfigDict(cfg.to_dict())
  cfg_half.beta = 0.02
  half = rl_loss.grpo_loss(logp, old, ref, adv, mask, cfg_half)[0]
  got = rl_loss.grpo_loss(logp, old, ref, adv, mask, cfg, kl_weight=0.02)[0]
  np.testing.assert_allclose(got, half, rtol=1e-6)
  assert not np.isclose(got, want)
