"""Rollout metrics under TRL's names (GRPOTrainer's logged keys)."""

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from emojax.rl import advantages


def reward_metrics(
  rewards_PGR: jnp.ndarray, names: Sequence[str], cfg: Any = None
) -> dict:
  """rewards/<name>/mean|std per part (NaN rows skipped), plus the group
  statistics of the weighted total (reward, reward_std,
  frac_reward_zero_std)."""
  if rewards_PGR.shape[-1] != len(names):
    raise ValueError(
      f"{rewards_PGR.shape[-1]} reward parts but {len(names)} names."
    )
  out = {}
  flat_BR = rewards_PGR.reshape(-1, len(names))
  for k, name in enumerate(names):
    out[f"rewards/{name}/mean"] = jnp.nanmean(flat_BR[:, k])
    out[f"rewards/{name}/std"] = jnp.nanstd(flat_BR[:, k], ddof=1)
  out.update(advantages.group_stats(rewards_PGR, cfg))
  return out


def completion_metrics(
  lengths_B: jnp.ndarray, truncated_B: jnp.ndarray
) -> dict:
  """Completion lengths in tokens, all and terminated (ended by EOS), and
  the truncation rate (completions/clipped_ratio)."""
  lengths_B = lengths_B.astype(jnp.float32)
  done_B = ~truncated_B.astype(bool)
  n_done = done_B.sum()
  big, small = jnp.finfo(jnp.float32).max, jnp.finfo(jnp.float32).min
  return {
    "completions/mean_length": lengths_B.mean(),
    "completions/min_length": lengths_B.min(),
    "completions/max_length": lengths_B.max(),
    "completions/clipped_ratio": 1.0 - done_B.mean(),
    "completions/mean_terminated_length": jnp.where(
      n_done > 0, (lengths_B * done_B).sum() / jnp.maximum(n_done, 1), 0.0
    ),
    "completions/min_terminated_length": jnp.where(
      n_done > 0, jnp.where(done_B, lengths_B, big).min(), 0.0
    ),
    "completions/max_terminated_length": jnp.where(
      n_done > 0, jnp.where(done_B, lengths_B, small).max(), 0.0
    ),
  }
