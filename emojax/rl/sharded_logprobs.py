"""Per-token logprobs over a device mesh, in `shard_map`.

XLA's SPMD partitioner places neither logprob path well on its own. A
Pallas call is opaque to it, so it gathers the operands onto every
device: each of 8 compile-only A100s (fsdp 8) ran the fused kernel on
all 32768 rows of the global batch, 8x the work. The chunked XLA loop it
does split, by the contraction: each device multiplied all rows by its
1/8 of D, and every fp32 [1024, 8192] logits tile was all-reduced over
the 8 devices inside the loop, 19 GiB of all-reduce a forward at 7B
(and again in the backward). Here each device runs either path on its
share of rows x columns, and when
the vocabulary is split over mesh axes the shards' statistics are
combined:

  lse = log sum_s exp(lse_s),  logp = z_t - lse,
  H = lse - sum_s exp(lse_s - lse) (lse_s - H_s)

(H_s = lse_s - E_s[z], the entropy of shard s's renormalised softmax).
Each shard's lse_s comes out of `fn` (`with_lse=True`); the shard holding
the target's column has its logit z_t = logp_s + lse_s (elsewhere fn
scores its own column 0, and that logp is discarded).

FSDP shards the unembedding's D over the axis that also splits the rows.
Either the device gathers the whole [D, V] unembedding (and its gradient
is reduce-scattered back), or the FSDP group trades D for V: an
all_to_all hands each device all of D for 1/n of the columns, the group's
rows are gathered, and each device scores every row of the group on its
columns. The second moves and holds rows x D instead of D x V, so it is
taken when the group's rows are fewer than the columns (a 7B GRPO
micro-batch on 8 GPUs: 32768 rows, 152064 columns; the gathered bf16
[3584, 152064] weight and its gradient were 2 GiB a device).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from emojax import sharding


def logprobs(h_BCD, w_DV, targets_BC, *, temperature, fn):
  """`fn(h, w, targets, temperature=, with_lse=)` (`kernels.fused_logprobs` or
  `chunked_logprobs`) on each device's rows and vocab columns (outside
  `use_rules`: as is)."""
  active = sharding.active()
  if active is None:
    return fn(h_BCD, w_DV, targets_BC, temperature=temperature)
  mesh, rules = active
  row = sharding.logical_to_spec(("batch",), rules, mesh)[0]
  embed, vocab = sharding.logical_to_spec(("embed", "vocab"), rules, mesh)
  if not sharding.fits(h_BCD.shape, P(row), mesh):
    row = None
  if not sharding.fits(w_DV.shape, P(None, vocab), mesh) or _overlap(
    row, vocab
  ):
    vocab = None
  # (`logical_to_spec` never gives embed and vocab one mesh axis.)
  if not sharding.fits(w_DV.shape, P(embed), mesh):
    embed = None
  rows = P(row, None)
  body = functools.partial(
    _local,
    fn=fn,
    temperature=temperature,
    embed=embed,
    vocab=vocab,
    layout=_layout(h_BCD.shape, w_DV.shape[1], row, embed, vocab, mesh),
  )
  return jax.shard_map(
    body,
    mesh=mesh,
    in_specs=(P(row, None, None), P(embed, vocab), rows),
    out_specs=(rows, rows),
    check_vma=False,
  )(h_BCD, w_DV, targets_BC)


def _names(entry) -> tuple[str, ...]:
  return () if entry is None else (entry,) if isinstance(entry, str) else entry


def _overlap(a, b) -> bool:
  """Whether two spec entries name a mesh axis in common (then a device's
  columns would belong to other devices' rows: split rows only)."""
  return bool(set(_names(a)) & set(_names(b)))


def _layout(shape_BCD, V, row, embed, vocab, mesh) -> str:
  """How a device meets the FSDP-sharded unembedding: 'gather' it whole,
  or trade D for columns ('columns': rows already whole over the FSDP
  axis; 'columns+rows': the group's rows gathered too)."""
  size = lambda e: math.prod(mesh.shape[n] for n in _names(e))
  # One mesh axis: all_to_all over several is not what the rules give.
  if not isinstance(embed, str) or (V // size(vocab)) % size(embed):
    return "gather"
  if embed not in _names(row):
    return "columns"
  group_rows = shape_BCD[0] * shape_BCD[1] // size(row) * size(embed)
  if group_rows <= V // size(vocab):
    return "columns+rows"
  return "gather"


def _local(h_BCD, w_dv, targets_BC, *, fn, temperature, embed, vocab, layout):
  """This device's rows (and columns): (logp_BC, entropy_BC)."""
  if layout == "gather":
    # FSDP by hand: gathered here, the gradient comes back reduce-scattered
    # (all_gather's transpose). Passed in whole, w's gradient was summed
    # whole on every device: +2.8 GiB a device at 7B on 8 H100s.
    if embed is not None:
      w_dv = jax.lax.all_gather(w_dv, embed, axis=0, tiled=True)
    return _score(fn, temperature, h_BCD, w_dv, targets_BC, _names(vocab))
  # Device i of the group gets all of D for the group's column block i
  # (all_to_all's transpose returns the gradient D-sharded).
  w_Dv = jax.lax.all_to_all(w_dv, embed, 1, 0, tiled=True)
  split = _names(vocab) + (embed,)
  if layout == "columns":
    return _score(fn, temperature, h_BCD, w_Dv, targets_BC, split)
  B = h_BCD.shape[0]
  gather = functools.partial(jax.lax.all_gather, axis_name=embed, tiled=True)
  outs = _score(fn, temperature, gather(h_BCD), w_Dv, gather(targets_BC), split)
  mine = jax.lax.axis_index(embed) * B
  return tuple(jax.lax.dynamic_slice_in_dim(x, mine, B) for x in outs)


def _score(fn, temperature, h_BCD, w_Dv, targets_BC, split):
  """fn on these columns, combined over the `split` mesh axes (the
  vocab's shards, major to minor) when there are any."""
  if not split:
    return fn(h_BCD, w_Dv, targets_BC, temperature=temperature)
  Vl = w_Dv.shape[1]
  shard = 0
  for name in split:
    shard = shard * jax.lax.axis_size(name) + jax.lax.axis_index(name)
  local_BC = targets_BC - shard * Vl
  mine_BC = (local_BC >= 0) & (local_BC < Vl)
  col_BC = jnp.where(mine_BC, local_BC, 0)
  logp_s, ent_s, lse_s = fn(
    h_BCD, w_Dv, col_BC, temperature=temperature, with_lse=True
  )
  top = jax.lax.pmax(jax.lax.stop_gradient(lse_s), split)
  lse = top + jnp.log(jax.lax.psum(jnp.exp(lse_s - top), split))
  z_BC = jnp.where(mine_BC, logp_s + lse_s, 0.0)
  logp = jax.lax.psum(z_BC, split) - lse
  mean_z = jax.lax.psum(jnp.exp(lse_s - lse) * (lse_s - ent_s), split)
  return logp, lse - mean_z
