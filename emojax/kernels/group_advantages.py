"""Group-relative advantages from per-part rewards, in one fused pass.

Modes (PEERS.md sections 1.1 and Tunix), r = sum_k w_k r_k clipped to
[-reward_clip, reward_clip] when given, stds with `ddof`:
  grpo     (r - mean_G r) / (std_G r + eps)
  dr_grpo  r - mean_G r                                  (Dr. GRPO)
  batch    (r - mean_G r) / (std r over the batch + eps) (TRL "batch")
  rloo     r_i - mean of the other scored rewards of its group (0 when
           there are none)
  gdpo     z_k = (r_k - mean_G r_k) / (std_G r_k + eps) per part (no clip);
           s = sum_k w_k z_k; (s - mean s) / (std s + eps) over the batch
A NaN part is "no score" (TRL's None): it is skipped in the sums and
statistics of its part, and a row whose every part is NaN is left out of
all statistics and gets 0. These are the RL core's semantics
(`emojax.rl.advantages.compute`, this kernel's second twin), so
`config.rl.advantage_impl='pallas'` runs this kernel in the GRPO step.

The whole [P, G, R] array is one block (rewards are tiny), so the
batch-wide statistics need no second pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from emojax.kernels import backend

MODES = ("grpo", "dr_grpo", "batch", "rloo", "gdpo")


def _check(rewards_PGR, weights_R, mode):
  if mode not in MODES:
    raise ValueError(f"group_advantages: mode={mode!r}; choose from {MODES}.")
  if rewards_PGR.ndim != 3:
    raise ValueError(
      f"group_advantages: rewards must be [P, G, R], got {rewards_PGR.shape}."
    )
  P, G, R = rewards_PGR.shape
  if weights_R.shape != (R,):
    raise ValueError(
      f"group_advantages: weights_R must be [{R}] (one per reward part), "
      f"got {weights_R.shape}."
    )
  if G < 2:
    raise ValueError(
      f"group_advantages: group size G={G}; group statistics need G >= 2 "
      "(set config.rl.group_size >= 2)."
    )


def group_advantages_ref(
  rewards_PGR: jax.Array,
  weights_R: jax.Array,
  *,
  mode: str = "grpo",
  eps: float = 1e-4,
  ddof: int = 1,
  reward_clip: float | None = None,
  interpret: bool = False,
) -> jax.Array:
  """Plain-jnp twin of `group_advantages`: NaN marks what is left out, and
  jnp's nan-reductions skip it."""
  del interpret
  _check(rewards_PGR, weights_R, mode)
  r_PGR = rewards_PGR.astype(jnp.float32)
  w_11R = weights_R.astype(jnp.float32)[None, None]
  scored_PG = ~jnp.isnan(r_PGR).all(-1)

  def std(x, axis):
    n = jnp.sum(~jnp.isnan(x), axis=axis, keepdims=True)
    sq = jnp.nansum(
      (x - jnp.nanmean(x, axis, keepdims=True)) ** 2, axis, keepdims=True
    )
    return jnp.sqrt(sq / jnp.maximum(n - ddof, 1))

  def unscored_nan(x_PG):
    return jnp.where(scored_PG, x_PG, jnp.nan)

  if mode == "gdpo":
    mean_P1R = jnp.nanmean(r_PGR, axis=1, keepdims=True)
    z_PGR = (r_PGR - mean_P1R) / (std(r_PGR, 1) + eps)
    s_PG = unscored_nan(jnp.nansum(z_PGR * w_11R, axis=-1))
    adv_PG = (s_PG - jnp.nanmean(s_PG)) / (std(s_PG, None) + eps)
    return jnp.where(scored_PG, adv_PG, 0.0)
  r_PG = jnp.nansum(r_PGR * w_11R, axis=-1)
  if reward_clip is not None:
    r_PG = jnp.clip(r_PG, -reward_clip, reward_clip)
  r_PG = unscored_nan(r_PG)
  mean_P1 = jnp.nanmean(r_PG, axis=1, keepdims=True)
  if mode == "grpo":
    adv_PG = (r_PG - mean_P1) / (std(r_PG, 1) + eps)
  elif mode == "dr_grpo":
    adv_PG = r_PG - mean_P1
  elif mode == "batch":
    adv_PG = (r_PG - mean_P1) / (std(r_PG, None) + eps)
  else:
    n_P1 = jnp.sum(scored_PG, axis=1, keepdims=True)
    others_PG = jnp.nansum(r_PG, axis=1, keepdims=True) - r_PG
    adv_PG = jnp.where(n_P1 > 1, r_PG - others_PG / (n_P1 - 1), 0.0)
  return jnp.where(scored_PG, adv_PG, 0.0)


def group_advantages(
  rewards_PGR: jax.Array,
  weights_R: jax.Array,
  *,
  mode: str = "grpo",
  eps: float = 1e-4,
  ddof: int = 1,
  reward_clip: float | None = None,
  interpret: bool = False,
) -> jax.Array:
  """Advantages [P, G] (fp32) for rewards [P, G, R] weighted by weights_R."""
  _check(rewards_PGR, weights_R, mode)
  plat = backend.platform(interpret)
  P, G, R = rewards_PGR.shape
  # Triton tiles must be powers of two: pad with NaN, "no score", which
  # every statistic already leaves out (a few bytes).
  if plat == "gpu":
    Pp, Gp = backend.next_pow2(P), backend.next_pow2(G)
  else:
    Pp, Gp = P, G
  r_RPG = rewards_PGR.astype(jnp.float32).transpose(2, 0, 1)
  r_RPG = backend.pad_axis(r_RPG, 1, Pp, jnp.nan)
  r_RPG = backend.pad_axis(r_RPG, 2, Gp, jnp.nan)
  w_1R = weights_R.astype(jnp.float32).reshape(1, R)
  clip = None if reward_clip is None else float(reward_clip)
  kernel = functools.partial(
    _kernel, mode=mode, eps=float(eps), ddof=float(ddof), clip=clip
  )
  adv_PG = pl.pallas_call(
    kernel,
    out_shape=jax.ShapeDtypeStruct((Pp, Gp), jnp.float32),
    in_specs=[
      pl.BlockSpec((R, Pp, Gp), lambda: (0, 0, 0)),
      pl.BlockSpec((1, R), lambda: (0, 0)),
    ],
    out_specs=pl.BlockSpec((Pp, Gp), lambda: (0, 0)),
    interpret=backend.interpret(plat),
    compiler_params=backend.compiler_params(plat, 4, 1),
    name="emojax_group_advantages",
  )(r_RPG, w_1R)
  return adv_PG[:P, :G]


def _kernel(r_ref, w_ref, adv_ref, *, mode, eps, ddof, clip):
  R = r_ref.shape[0]
  parts_PG = [r_ref[k] for k in range(R)]
  scored_PG = [r == r for r in parts_PG]  # not NaN
  any_PG = functools.reduce(lambda a, b: a | b, scored_PG)
  stats = functools.partial(_stats, ddof=ddof)
  if mode == "gdpo":
    s_PG = 0.0
    for k in range(R):
      _, _, mean, std = stats(parts_PG[k], scored_PG[k], 1)
      z_PG = (parts_PG[k] - mean) / (std + eps)
      s_PG = s_PG + w_ref[0, k] * jnp.where(scored_PG[k], z_PG, 0.0)
    _, _, mean, std = stats(s_PG, any_PG, None)
    adv_ref[...] = jnp.where(any_PG, (s_PG - mean) / (std + eps), 0.0)
    return
  r_PG = 0.0
  for k in range(R):
    r_PG = r_PG + jnp.where(scored_PG[k], w_ref[0, k] * parts_PG[k], 0.0)
  if clip is not None:
    r_PG = jnp.clip(r_PG, -clip, clip)
  n_P1, total_P1, mean_P1, std_P1 = stats(r_PG, any_PG, 1)
  if mode == "grpo":
    adv_PG = (r_PG - mean_P1) / (std_P1 + eps)
  elif mode == "dr_grpo":
    adv_PG = r_PG - mean_P1
  elif mode == "batch":
    adv_PG = (r_PG - mean_P1) / (stats(r_PG, any_PG, None)[3] + eps)
  else:  # rloo; a lone scored row has no baseline: 0, like the others.
    others_P1 = jnp.maximum(n_P1 - 1.0, 1.0)
    adv_PG = jnp.where(n_P1 > 1.0, r_PG - (total_P1 - r_PG) / others_P1, 0.0)
  adv_ref[...] = jnp.where(any_PG, adv_PG, 0.0)


def _stats(x, keep, axis, *, ddof):
  """(count, sum, mean, std) of x where `keep`, over `axis` (None: all,
  as scalars; Triton reduces a whole block to a scalar, not to [1, 1])."""
  keepdims = axis is not None
  n = jnp.sum(jnp.where(keep, 1.0, 0.0), axis=axis, keepdims=keepdims)
  total = jnp.sum(jnp.where(keep, x, 0.0), axis=axis, keepdims=keepdims)
  mean = total / jnp.maximum(n, 1.0)
  d = jnp.where(keep, x - mean, 0.0)
  sq = jnp.sum(d * d, axis=axis, keepdims=keepdims)
  return n, total, mean, jnp.sqrt(sq / jnp.maximum(n - ddof, 1.0))
