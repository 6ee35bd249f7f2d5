"""The fused logprob kernel over a device mesh, in `shard_map`.

A Pallas call is opaque to XLA's SPMD partitioner, which gathers its
operands onto every device: left alone, each of 8 compile-only A100s
(fsdp 8) ran the kernel on all 32768 rows of the global batch, 8x the
work. Here each device runs it on its own rows. When the vocabulary is
split over a mesh axis (tensor parallelism) each device runs it on its
columns and the shards' statistics are combined:

  lse = log sum_s exp(lse_s),  logp = z_t - lse,
  H = lse - sum_s exp(lse_s - lse) (lse_s - H_s)

(H_s = lse_s - E_s[z], the entropy of shard s's renormalised softmax).
Shard s gets lse_s = z_s - logp_s from a logit z_s the kernel also scored:
the target's column where it holds it, its own column 0 elsewhere.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from emojax import kernels, sharding


def fused_logprobs(h_BCD, w_DV, targets_BC, *, temperature):
  """`kernels.fused_logprobs` with rows, and vocab columns where the rules
  split them, kept on their devices (outside `use_rules`: as is)."""
  active = sharding.active()
  if active is None:
    return kernels.fused_logprobs(
      h_BCD, w_DV, targets_BC, temperature=temperature
    )
  mesh, rules = active
  row = sharding.logical_to_spec(("batch",), rules, mesh)[0]
  embed, vocab = sharding.logical_to_spec(("embed", "vocab"), rules, mesh)
  if not sharding.fits(h_BCD.shape, P(row), mesh):
    row = None
  if not sharding.fits(w_DV.shape, P(None, vocab), mesh) or _overlap(
    row, vocab
  ):
    vocab = None
  if not sharding.fits(w_DV.shape, P(embed), mesh) or _overlap(embed, vocab):
    embed = None
  rows = P(row, None)
  body = functools.partial(
    _local, temperature=temperature, embed=embed, vocab=vocab
  )
  return jax.shard_map(
    body,
    mesh=mesh,
    in_specs=(P(row, None, None), P(embed, vocab), rows),
    out_specs=(rows, rows),
    check_vma=False,
  )(h_BCD, w_DV, targets_BC)


def _overlap(a, b) -> bool:
  """Whether two spec entries name a mesh axis in common (then a device's
  columns would belong to other devices' rows: split rows only)."""
  names = lambda e: (
    set() if e is None else {e} if isinstance(e, str) else set(e)
  )
  return bool(names(a) & names(b))


def _local(h_BCD, w_dv, targets_BC, *, temperature, embed, vocab):
  """This device's rows (and columns): (logp_BC, entropy_BC)."""
  # FSDP by hand: gathered here, the gradient comes back reduce-scattered
  # (all_gather's transpose). Passed in whole, w's gradient was summed
  # whole on every device: +2.8 GiB a device at 7B on 8 H100s.
  w_Dv = w_dv
  if embed is not None:
    w_Dv = jax.lax.all_gather(w_dv, embed, axis=0, tiled=True)
  if vocab is None:
    return kernels.fused_logprobs(
      h_BCD, w_Dv, targets_BC, temperature=temperature
    )
  Vl = w_Dv.shape[1]
  local_BC = targets_BC - jax.lax.axis_index(vocab) * Vl
  mine_BC = (local_BC >= 0) & (local_BC < Vl)
  col_BC = jnp.where(mine_BC, local_BC, 0)
  logp_s, ent_s = kernels.fused_logprobs(
    h_BCD, w_Dv, col_BC, temperature=temperature
  )
  z_BC = jnp.einsum(
    "bcd,dbc->bc",
    h_BCD,
    jnp.take(w_Dv, col_BC, axis=1),
    preferred_element_type=jnp.float32,
  )
  z_BC = z_BC / temperature
  lse_s = z_BC - logp_s
  top = jax.lax.pmax(jax.lax.stop_gradient(lse_s), vocab)
  lse = top + jnp.log(jax.lax.psum(jnp.exp(lse_s - top), vocab))
  logp = jax.lax.psum(jnp.where(mine_BC, z_BC, 0.0), vocab) - lse
  mean_z = jax.lax.psum(jnp.exp(lse_s - lse) * (lse_s - ent_s), vocab)
  return logp, lse - mean_z
