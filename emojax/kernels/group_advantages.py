"""Group-relative advantages from per-part rewards, in one fused pass.

Modes (PEERS.md sections 1.1 and Tunix; stds use ddof=1):
  grpo     r = sum_k w_k r_k;  (r - mean_G r) / (std_G r + eps)
  dr_grpo  r - mean_G r                                  (Dr. GRPO)
  batch    (r - mean_G r) / (std r over the batch + eps) (TRL "batch")
  rloo     r_i - mean of the other G-1 rewards of its group
  gdpo     z_k = (r_k - mean_G r_k) / (std_G r_k + eps) per part;
           s = sum_k w_k z_k; (s - mean s) / (std s + eps) over the batch
The whole [P, G, R] array is one block (rewards are tiny), so the batch-wide
statistics need no second pass. Rewards must be finite.
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
  interpret: bool = False,
) -> jax.Array:
  """Plain-jnp twin of `group_advantages`."""
  del interpret
  _check(rewards_PGR, weights_R, mode)
  G = rewards_PGR.shape[1]
  r_PGR = rewards_PGR.astype(jnp.float32)
  w_R = weights_R.astype(jnp.float32)
  if mode == "gdpo":
    mean_P1R = r_PGR.mean(axis=1, keepdims=True)
    std_P1R = r_PGR.std(axis=1, keepdims=True, ddof=1)
    s_PG = jnp.einsum("pgr,r->pg", (r_PGR - mean_P1R) / (std_P1R + eps), w_R)
    return (s_PG - s_PG.mean()) / (s_PG.std(ddof=1) + eps)
  r_PG = jnp.einsum("pgr,r->pg", r_PGR, w_R)
  mean_P1 = r_PG.mean(axis=1, keepdims=True)
  if mode == "grpo":
    return (r_PG - mean_P1) / (r_PG.std(axis=1, keepdims=True, ddof=1) + eps)
  if mode == "dr_grpo":
    return r_PG - mean_P1
  if mode == "batch":
    return (r_PG - mean_P1) / (r_PG.std(ddof=1) + eps)
  total_P1 = r_PG.sum(axis=1, keepdims=True)
  return r_PG - (total_P1 - r_PG) / (G - 1)


def group_advantages(
  rewards_PGR: jax.Array,
  weights_R: jax.Array,
  *,
  mode: str = "grpo",
  eps: float = 1e-4,
  interpret: bool = False,
) -> jax.Array:
  """Advantages [P, G] (fp32) for rewards [P, G, R] weighted by weights_R."""
  _check(rewards_PGR, weights_R, mode)
  plat = backend.platform(interpret)
  P, G, R = rewards_PGR.shape
  # Triton tiles must be powers of two: pad and mask (a few bytes).
  if plat == "gpu":
    Pp, Gp = backend.next_pow2(P), backend.next_pow2(G)
  else:
    Pp, Gp = P, G
  r_RPG = rewards_PGR.astype(jnp.float32).transpose(2, 0, 1)
  r_RPG = backend.pad_axis(backend.pad_axis(r_RPG, 1, Pp), 2, Gp)
  w_1R = weights_R.astype(jnp.float32).reshape(1, R)
  kernel = functools.partial(_kernel, mode=mode, eps=eps, P=P, G=G)
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


def _kernel(r_ref, w_ref, adv_ref, *, mode, eps, P, G):
  R, Pp, Gp = r_ref.shape
  rows = jax.lax.broadcasted_iota(jnp.int32, (Pp, Gp), 0)
  cols = jax.lax.broadcasted_iota(jnp.int32, (Pp, Gp), 1)
  valid = (rows < P) & (cols < G)

  def group_mean(x):
    return jnp.sum(jnp.where(valid, x, 0.0), axis=1, keepdims=True) / G

  def group_std(x, mean):
    d = jnp.where(valid, x - mean, 0.0)
    return jnp.sqrt(jnp.sum(d * d, axis=1, keepdims=True) / (G - 1))

  def batch_std(x):
    mean = jnp.sum(jnp.where(valid, x, 0.0)) / (P * G)
    d = jnp.where(valid, x - mean, 0.0)
    return mean, jnp.sqrt(jnp.sum(d * d) / (P * G - 1))

  total = jnp.zeros((Pp, Gp), jnp.float32)
  for k in range(R):
    r = r_ref[k]
    if mode == "gdpo":
      mean = group_mean(r)
      r = (r - mean) / (group_std(r, mean) + eps)
    total = total + w_ref[0, k] * r
  mean = group_mean(total)
  if mode == "grpo":
    adv = (total - mean) / (group_std(total, mean) + eps)
  elif mode == "dr_grpo":
    adv = total - mean
  elif mode == "batch":
    adv = (total - mean) / (batch_std(total)[1] + eps)
  elif mode == "rloo":
    adv = total - (mean * G - total) / (G - 1)
  else:
    batch_mean, std = batch_std(total)
    adv = (total - batch_mean) / (std + eps)
  adv_ref[...] = jnp.where(valid, adv, 0.0)
