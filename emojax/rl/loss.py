"""The GRPO loss family with TRL's semantics (pure jnp, differentiable).

cfg fields (attributes or ConfigDict entries; missing ones take defaults):
  loss_type: 'grpo' (token mean per sequence, then mean over B), 'bnpo'
    (token mean of the batch), 'dr_grpo' (token sum / (B *
    max_completion_length)), 'dapo' (token sum / num_items). Default 'dapo'
    (TRL >= 0.22).
  epsilon, epsilon_high: clip range [1 - epsilon, 1 + epsilon_high];
    defaults 0.2 and epsilon.
  delta: cap on the ratio before clipping (INTELLECT-2), default None.
  dual_clip: c > 1 bounds the loss of A < 0 tokens at -c*A (Tunix dual
    clip), default None.
  importance_sampling_level: 'token' or 'sequence' (GSPO), default 'token'.
  beta: KL weight; 0 (default) needs no reference logprobs at all.
  kl_estimator: 'k1' (logp - ref), 'k2' ((logp - ref)^2 / 2), 'k3'
    (exp(ref - logp) - (ref - logp) - 1; TRL), 'low_var_kl' (verl's k3:
    ref - logp clamped to +-20, the estimate to +-10), default 'k3'.
  entropy_coef: weight of the entropy bonus, default 0. The bonus is
    aggregated like the policy term (verl's agg_loss): a token mean under
    'bnpo' and 'dapo' (PEERS.md 1.3's `loss -= coef * H`), a mean of
    sequence means under 'grpo', a token sum / (B * max_completion_length)
    under 'dr_grpo'; token and sample weights do not scale it.
  max_completion_length: the dr_grpo divisor, default T.

Micro-batch accumulation is exact: the returned metrics carry `numerator`
and `denominator`; sum numerators over micro-batches and divide by the sum of
denominators (for gradients: accumulate grads of `numerator` and divide at
the end). 'dapo' may instead take num_items, the token count of the whole
accumulated batch, as TRL does; then the micro-batch losses just add up.
"""

from typing import Any

import jax
import jax.numpy as jnp

from emojax.rl.advantages import field

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
KL_ESTIMATORS = ("k1", "k2", "k3", "low_var_kl")


def kl_divergence(
  logp_BT: jnp.ndarray, ref_logp_BT: jnp.ndarray, estimator: str = "k3"
) -> jnp.ndarray:
  """Per-token estimate of KL(policy || ref) from sampled tokens' logprobs.

  k2 and k3 are >= 0 for every token; k1 is unbiased but any sign.
  """
  d_BT = ref_logp_BT - logp_BT
  if estimator == "k1":
    return -d_BT
  if estimator == "k2":
    return 0.5 * d_BT**2
  if estimator == "k3":
    return jnp.exp(d_BT) - d_BT - 1.0
  if estimator == "low_var_kl":  # verl's k3, clamped twice.
    d_BT = jnp.clip(d_BT, -20.0, 20.0)
    return jnp.clip(jnp.exp(d_BT) - d_BT - 1.0, -10.0, 10.0)
  raise ValueError(
    f"kl_estimator={estimator!r}; choose one of {KL_ESTIMATORS}."
  )


def _importance_weights(logp_BT, old_logp_BT, mask_BT, level):
  log_ratio_BT = logp_BT - old_logp_BT
  if level == "token":
    return jnp.exp(log_ratio_BT)
  if level == "sequence":
    n_B1 = jnp.maximum(mask_BT.sum(-1, keepdims=True), 1.0)
    return jnp.exp((log_ratio_BT * mask_BT).sum(-1, keepdims=True) / n_B1)
  raise ValueError(
    f"importance_sampling_level={level!r}; choose 'token' or 'sequence'."
  )


def _check(cfg, loss_type, num_items, beta, ref_logp_BT, entropy_BT):
  if loss_type not in LOSS_TYPES:
    raise ValueError(f"loss_type={loss_type!r}; choose one of {LOSS_TYPES}.")
  if num_items is not None and loss_type != "dapo":
    raise ValueError(
      f"num_items is the 'dapo' denominator; loss_type={loss_type!r} "
      "accumulates exactly through metrics['numerator'/'denominator']."
    )
  if beta != 0 and ref_logp_BT is None:
    raise ValueError(f"beta={beta} needs ref_logp_BT; pass it or set beta=0.")
  if field(cfg, "entropy_coef", 0.0) != 0 and entropy_BT is None:
    raise ValueError("entropy_coef != 0 needs entropy_BT.")


def _aggregate(l_BT, mask_BT, loss_type, num_items, max_len):
  """(numerator, denominator) of the loss_type's normalisation."""
  if loss_type == "grpo":
    n_B = jnp.maximum(mask_BT.sum(-1), 1.0)
    return ((l_BT * mask_BT).sum(-1) / n_B).sum(), jnp.float32(l_BT.shape[0])
  num = (l_BT * mask_BT).sum()
  if loss_type == "dr_grpo":
    return num, jnp.float32(l_BT.shape[0] * max_len)
  if loss_type == "dapo" and num_items is not None:
    return num, jnp.asarray(num_items, jnp.float32)
  return num, jnp.maximum(mask_BT.sum(), 1.0)


def grpo_loss(
  logp_BT: jnp.ndarray,
  old_logp_BT: jnp.ndarray | None,
  ref_logp_BT: jnp.ndarray | None,
  adv_B: jnp.ndarray,
  mask_BT: jnp.ndarray,
  cfg: Any = None,
  *,
  num_items: Any = None,
  token_weights_BT: jnp.ndarray | None = None,
  sample_weights_B: jnp.ndarray | None = None,
  entropy_BT: jnp.ndarray | None = None,
  kl_weight: Any = None,
) -> tuple[jnp.ndarray, dict]:
  """Clipped policy-gradient loss + beta * KL - entropy bonus.

  old_logp_BT None means on-policy (old = stop_gradient(logp), ratio 1).
  token_weights_BT scales each token's loss (Facial-R1's per-reward masks,
  see `per_reward_token_weights`); sample_weights_B scales each row's
  (Facial-R1's AU-rarity weights; Facial-R1 scales each micro-batch's loss
  by its summed weight, which equals this at its micro-batch of one).
  kl_weight, a traced scalar, replaces cfg.beta's value (for `beta_at`
  schedules without recompiling); the KL term exists iff cfg.beta != 0.
  Returns (loss, metrics).
  """
  loss_type = field(cfg, "loss_type", "dapo")
  beta = field(cfg, "beta", 0.0)
  eps_lo = field(cfg, "epsilon", 0.2)
  eps_hi = field(cfg, "epsilon_high", None)
  eps_hi = eps_lo if eps_hi is None else eps_hi
  _check(cfg, loss_type, num_items, beta, ref_logp_BT, entropy_BT)
  mask_BT = mask_BT.astype(logp_BT.dtype)
  if old_logp_BT is None:
    old_logp_BT = jax.lax.stop_gradient(logp_BT)
  level = field(cfg, "importance_sampling_level", "token")
  w_BT = _importance_weights(logp_BT, old_logp_BT, mask_BT, level)
  delta = field(cfg, "delta", None)
  if delta is not None:
    w_BT = jnp.minimum(w_BT, delta)
  a_B1 = adv_B[:, None]
  pg1_BT = w_BT * a_B1
  pg2_BT = jnp.clip(w_BT, 1.0 - eps_lo, 1.0 + eps_hi) * a_B1
  l_BT = -jnp.minimum(pg1_BT, pg2_BT)
  dual_clip = field(cfg, "dual_clip", None)
  if dual_clip is not None:
    l_BT = jnp.where(a_B1 < 0, jnp.minimum(l_BT, -dual_clip * a_B1), l_BT)
  metrics = {}
  if beta != 0:
    kl_BT = kl_divergence(
      logp_BT, ref_logp_BT, field(cfg, "kl_estimator", "k3")
    )
    l_BT = l_BT + (beta if kl_weight is None else kl_weight) * kl_BT
    metrics["kl"] = _token_mean(kl_BT, mask_BT)
  if token_weights_BT is not None:
    l_BT = l_BT * token_weights_BT
  if sample_weights_B is not None:
    l_BT = l_BT * sample_weights_B[:, None]
  entropy_coef = field(cfg, "entropy_coef", 0.0)
  if entropy_coef != 0:
    # Per token, in the numerator: it then accumulates over micro-batches
    # and reaches the gradient (`grads` differentiates the numerator).
    l_BT = l_BT - entropy_coef * entropy_BT
  if entropy_BT is not None:
    metrics["entropy"] = _token_mean(entropy_BT, mask_BT)
  max_len = field(cfg, "max_completion_length", None) or logp_BT.shape[1]
  num, den = _aggregate(l_BT, mask_BT, loss_type, num_items, max_len)
  loss = num / den
  metrics.update(_clip_metrics(w_BT, a_B1, mask_BT, eps_lo, eps_hi))
  metrics.update(numerator=num, denominator=den, num_tokens=mask_BT.sum())
  return loss, metrics


def _token_mean(x_BT, mask_BT):
  x_BT = jax.lax.stop_gradient(x_BT)
  return (x_BT * mask_BT).sum() / jnp.maximum(mask_BT.sum(), 1.0)


def _clip_metrics(w_BT, a_B1, mask_BT, eps_lo, eps_hi):
  """TRL's clip_ratio metrics: token fractions clipped where it matters."""
  w_BT = jnp.broadcast_to(w_BT, mask_BT.shape)
  low_BT = (w_BT < 1.0 - eps_lo) & (a_B1 < 0)
  high_BT = (w_BT > 1.0 + eps_hi) & (a_B1 > 0)
  return {
    "clip_ratio/low_mean": _token_mean(low_BT.astype(jnp.float32), mask_BT),
    "clip_ratio/high_mean": _token_mean(high_BT.astype(jnp.float32), mask_BT),
    "clip_ratio/region_mean": _token_mean(
      (low_BT | high_BT).astype(jnp.float32), mask_BT
    ),
  }


def beta_at(cfg: Any, step: int, total_steps: int) -> float:
  """The KL weight at `step` under cfg.beta_schedule.

  'constant' (default) keeps cfg.beta; 'human_omni_v2' is HumanOmniV2's
  beta * (1 - 0.75 * t / (T/2)) up to T/2, then 0.25 * beta.
  """
  beta = field(cfg, "beta", 0.0)
  kind = field(cfg, "beta_schedule", "constant")
  if kind == "constant":
    return beta
  if kind == "human_omni_v2":
    half = total_steps / 2
    return beta * (1.0 - 0.75 * min(step / half, 1.0)) if half else beta
  raise ValueError(
    f"beta_schedule={kind!r}; choose 'constant' or 'human_omni_v2'."
  )


def per_reward_token_weights(
  masks_KBT: jnp.ndarray, mask_BT: jnp.ndarray
) -> jnp.ndarray:
  """Token weights reproducing Facial-R1's mean over per-reward masks.

  Facial-R1 takes, for each reward k, the sequence mean of the token loss
  over mask k (e.g. only `<think>` tokens for the AU reward), then the mean
  over k. With loss_type='grpo' and these weights, `grpo_loss` gives exactly
  that. A reward whose mask is empty in a row contributes 0 to that row.
  """
  mask_BT = mask_BT.astype(jnp.float32)
  masks_KBT = masks_KBT.astype(jnp.float32) * mask_BT[None]
  n_KB1 = jnp.maximum(masks_KBT.sum(-1, keepdims=True), 1.0)
  share_BT = (masks_KBT / n_KB1).mean(0)
  return share_BT * jnp.maximum(mask_BT.sum(-1, keepdims=True), 1.0)
