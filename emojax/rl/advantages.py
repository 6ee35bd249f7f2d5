"""Group-relative advantages from per-part rewards (pure jnp).

`compute(rewards_PGR, cfg)` is the reference twin of the Pallas kernel
`emojax.kernels.group_advantages`; keep its signature and semantics stable.

cfg fields (attributes or ConfigDict entries; missing ones take defaults):
  advantage: 'grpo' (group mean and std; TRL scale_rewards='group'),
    'dr_grpo' (group mean only; scale_rewards='none'), 'batch' (group mean,
    whole-batch std; scale_rewards='batch'), 'rloo' (leave-one-out mean),
    'gdpo' (z-score each part in its group, weighted sum, z-score over the
    batch; TRL multi_objective_aggregation='normalize_then_sum').
    Default 'grpo'.
  reward_weights: R weights of the parts, default all 1.
  eps: added to the std, default 1e-4 (TRL; Tunix uses 1e-6).
  ddof: std degrees of freedom, default 1 (TRL, verl, Tunix).
  reward_clip: clamp the weighted sum to [-c, c] (Facial-R1: 10), default
    None; not used by 'gdpo'.
  advantage_impl: what `run` (the GRPO step) calls: 'jnp' (`compute`) or
    'pallas' (`emojax.kernels.group_advantages`, one fused pass with the
    same values). Default 'jnp'.

A NaN reward part means "no score for this row" (TRL's None): parts are
summed with NaNs skipped, and a row whose every part is NaN is left out of
its group's statistics and gets advantage 0; so does a group's lone scored
row (no baseline; RLOO has no one to leave out).
"""

from typing import Any

import jax.numpy as jnp

from emojax import kernels

MODES = ("grpo", "dr_grpo", "batch", "rloo", "gdpo")
IMPLS = ("jnp", "pallas")


def field(cfg: Any, name: str, default: Any) -> Any:
  """`cfg.name`, or `default` when cfg is None or lacks the field."""
  if cfg is None:
    return default
  if hasattr(cfg, "get"):
    return cfg.get(name, default)
  return getattr(cfg, name, default)


def _masked_mean(x, valid, axis):
  n = valid.sum(axis, keepdims=True)
  return jnp.where(valid, x, 0.0).sum(axis, keepdims=True) / jnp.maximum(n, 1)


def _masked_std(x, valid, axis, ddof):
  n = valid.sum(axis, keepdims=True)
  mu = _masked_mean(x, valid, axis)
  sq = jnp.where(valid, (x - mu) ** 2, 0.0).sum(axis, keepdims=True)
  return jnp.sqrt(sq / jnp.maximum(n - ddof, 1))


def _weights_R(cfg, num_parts):
  w = field(cfg, "reward_weights", None)
  if w is None:
    return jnp.ones((num_parts,), jnp.float32)
  w_R = jnp.asarray(w, jnp.float32)
  if w_R.shape != (num_parts,):
    raise ValueError(
      f"reward_weights has {w_R.shape[0] if w_R.ndim else 0} entries but "
      f"rewards_PGR has {num_parts} parts; give one weight per reward."
    )
  return w_R


def total_reward(rewards_PGR: jnp.ndarray, cfg: Any = None) -> jnp.ndarray:
  """Weighted sum of the parts, NaN parts skipped -> rewards_PG."""
  w_R = _weights_R(cfg, rewards_PGR.shape[-1])
  r_PGR = jnp.where(jnp.isnan(rewards_PGR), 0.0, rewards_PGR * w_R[None, None])
  clip = field(cfg, "reward_clip", None)
  r_PG = r_PGR.sum(-1)
  return r_PG if clip is None else jnp.clip(r_PG, -clip, clip)


def compute(rewards_PGR: jnp.ndarray, cfg: Any = None) -> jnp.ndarray:
  """Advantages adv_PG, one per completion; see the module docstring."""
  if rewards_PGR.ndim != 3:
    raise ValueError(
      f"rewards_PGR must be [P, G, R], got shape {rewards_PGR.shape}."
    )
  mode = field(cfg, "advantage", "grpo")
  eps = field(cfg, "eps", 1e-4)
  ddof = field(cfg, "ddof", 1)
  if mode not in MODES:
    raise ValueError(f"advantage={mode!r}; choose one of {MODES}.")
  rewards_PGR = rewards_PGR.astype(jnp.float32)
  valid_PG = ~jnp.isnan(rewards_PGR).all(-1)
  if mode == "gdpo":
    adv_PG = _gdpo(rewards_PGR, valid_PG, cfg, eps, ddof)
  else:
    r_PG = total_reward(rewards_PGR, cfg)
    adv_PG = _sum_then_normalize(r_PG, valid_PG, mode, eps, ddof)
  return jnp.where(valid_PG, adv_PG, 0.0)


def run(rewards_PGR: jnp.ndarray, cfg: Any = None) -> jnp.ndarray:
  """adv_PG by the configured `advantage_impl`: `compute` or the kernel."""
  impl = field(cfg, "advantage_impl", "jnp")
  if impl not in IMPLS:
    raise ValueError(f"advantage_impl={impl!r}; choose one of {IMPLS}.")
  if impl == "jnp":
    return compute(rewards_PGR, cfg)
  return kernels.group_advantages(
    rewards_PGR,
    _weights_R(cfg, rewards_PGR.shape[-1]),
    mode=field(cfg, "advantage", "grpo"),
    eps=field(cfg, "eps", 1e-4),
    ddof=field(cfg, "ddof", 1),
    reward_clip=field(cfg, "reward_clip", None),
  )


def _sum_then_normalize(r_PG, valid_PG, mode, eps, ddof):
  if mode == "rloo":
    # A lone scored row has no one to leave out: no baseline, advantage 0
    # (as its group's mean gives it under the other modes).
    n_P1 = valid_PG.sum(1, keepdims=True)
    sum_P1 = jnp.where(valid_PG, r_PG, 0.0).sum(1, keepdims=True)
    rloo_PG = r_PG - (sum_P1 - r_PG) / jnp.maximum(n_P1 - 1, 1)
    return jnp.where(n_P1 > 1, rloo_PG, 0.0)
  centred_PG = r_PG - _masked_mean(r_PG, valid_PG, 1)
  if mode == "dr_grpo":
    return centred_PG
  if mode == "batch":
    std = _masked_std(r_PG.reshape(-1), valid_PG.reshape(-1), 0, ddof)[0]
    return centred_PG / (std + eps)
  return centred_PG / (_masked_std(r_PG, valid_PG, 1, ddof) + eps)


def _gdpo(rewards_PGR, valid_PGR_any, cfg, eps, ddof):
  valid_PGR = ~jnp.isnan(rewards_PGR)
  mu_P1R = _masked_mean(rewards_PGR, valid_PGR, 1)
  sd_P1R = _masked_std(rewards_PGR, valid_PGR, 1, ddof)
  z_PGR = jnp.where(valid_PGR, (rewards_PGR - mu_P1R) / (sd_P1R + eps), 0.0)
  s_PG = (z_PGR * _weights_R(cfg, rewards_PGR.shape[-1])[None, None]).sum(-1)
  flat_valid = valid_PGR_any.reshape(-1)
  mu = _masked_mean(s_PG.reshape(-1), flat_valid, 0)[0]
  sd = _masked_std(s_PG.reshape(-1), flat_valid, 0, ddof)[0]
  return (s_PG - mu) / (sd + eps)


def zero_variance_groups(
  rewards_PGR: jnp.ndarray, cfg: Any = None, tol: float = 0.0
) -> jnp.ndarray:
  """bool[P]: groups whose total reward spread is <= tol.

  Such groups get zero advantage under every mode except 'gdpo'; dynamic
  sampling (DAPO) drops them and draws more prompts.
  """
  r_PG = total_reward(rewards_PGR, cfg)
  valid_PG = ~jnp.isnan(rewards_PGR).all(-1)
  hi_P = jnp.where(valid_PG, r_PG, -jnp.inf).max(1)
  lo_P = jnp.where(valid_PG, r_PG, jnp.inf).min(1)
  return ~(hi_P - lo_P > tol)


def group_stats(rewards_PGR: jnp.ndarray, cfg: Any = None) -> dict:
  """Per-step statistics of groups, with TRL's metric names."""
  r_PG = total_reward(rewards_PGR, cfg)
  valid_PG = ~jnp.isnan(rewards_PGR).all(-1)
  ddof = field(cfg, "ddof", 1)
  zero_P = zero_variance_groups(rewards_PGR, cfg)
  return {
    "reward": _masked_mean(r_PG.reshape(-1), valid_PG.reshape(-1), 0)[0],
    "reward_std": _masked_std(r_PG, valid_PG, 1, ddof).mean(),
    "frac_reward_zero_std": zero_P.mean(),
    "num_zero_std_groups": zero_P.sum(),
  }
