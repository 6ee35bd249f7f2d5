"""Decode attention's Mosaic (TPU) kernel: only the filled cache is read.

A TPU core copies each block from HBM into VMEM before the kernel runs,
so the GPU kernel's loop over a row's valid slots becomes a grid axis
over cache blocks here: grid (B, K, S blocks), the block axis innermost,
with the running max, sum and output of the row's G query heads in VMEM
scratch across it (online softmax). The valid range [start, end) of each
row comes in by scalar prefetch, and the block index maps clamp the block
axis into that range: a block before or after it repeats the index of a
block that is resident or next, which Mosaic does not copy again, and its
compute is skipped. So each row streams its valid K/V blocks once and no
empty slot beyond a block edge is read.

Layouts are the rollout cache's (k [B, K, E, S], v [B, K, S, E]); the
query heads of a kv head are padded to a sublane tile (q is tiny). S need
not divide the block: the last block's slots past S are masked, their
values zeroed before they meet a zero probability.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from emojax.kernels import backend

_F32 = jnp.float32
# Cache slots per block: 512 keys x 128 dims x 2 bytes = 128 KiB a block of
# k and of v, double-buffered, well inside VMEM; fewer grid steps than
# 128-slot blocks, each a ~0.35 us fixed cost.
BLOCK_S = 512


def decode(q_BHE, k_BKES, v_BKSE, starts_B, ends_B, *, interpret, block_s=None):
  """Attention of q over cache slots [starts_B, ends_B) of each row."""
  B, H, E = q_BHE.shape
  K, S = v_BKSE.shape[1], v_BKSE.shape[2]
  G = H // K
  # A block spans the whole cache if it is short (any S), else BLOCK_S.
  bs = block_s or (S if S <= BLOCK_S else BLOCK_S)
  n_blocks = -(-S // bs)
  # A sublane tile of query rows: 8 for 32-bit, 16 for 16-bit dtypes.
  Gp = backend.round_up(G, 32 // jnp.dtype(q_BHE.dtype).itemsize)
  q_BKGE = backend.pad_axis(q_BHE.reshape(B, K, G, E), 2, Gp)

  def block(b, j, starts, ends):
    first, last = _valid_blocks(*_valid_range(starts[b], ends[b], S), bs, S)
    return jnp.clip(j, first, last)

  row = lambda b, n, j, starts, ends: (b, n, 0, 0)
  grid_spec = pltpu.PrefetchScalarGridSpec(
    num_scalar_prefetch=2,
    grid=(B, K, n_blocks),
    in_specs=[
      pl.BlockSpec((None, None, Gp, E), row),
      pl.BlockSpec(
        (None, None, E, bs),
        lambda b, n, j, st, en: (b, n, 0, block(b, j, st, en)),
      ),
      pl.BlockSpec(
        (None, None, bs, E),
        lambda b, n, j, st, en: (b, n, block(b, j, st, en), 0),
      ),
    ],
    out_specs=pl.BlockSpec((None, None, Gp, E), row),
    scratch_shapes=[
      pltpu.VMEM((Gp, E), _F32),
      pltpu.VMEM((Gp, 1), _F32),
      pltpu.VMEM((Gp, 1), _F32),
    ],
  )
  kernel = functools.partial(_kernel, bs=bs, S=S, scale=E**-0.5)
  o_BKGE = pl.pallas_call(
    kernel,
    grid_spec=grid_spec,
    out_shape=jax.ShapeDtypeStruct((B, K, Gp, E), q_BHE.dtype),
    interpret=interpret,
    compiler_params=pltpu.CompilerParams(
      dimension_semantics=("parallel", "parallel", "arbitrary")
    ),
    name="emojax_decode_attention_tpu",
  )(
    starts_B.astype(jnp.int32),
    ends_B.astype(jnp.int32),
    q_BKGE,
    k_BKES,
    v_BKSE,
  )
  return o_BKGE[:, :, :G].reshape(B, H, E)


def _valid_range(start, end, S):
  """A row's slots [start, end) clipped to [0, S) (empty: end == start)."""
  start = jnp.clip(start, 0, S)
  return start, jnp.clip(end, start, S)


def _valid_blocks(start, end, bs, S):
  """(first, last) block of a row's clipped slots [start, end); an empty
  range gives first == last, the block of `start`."""
  first = jnp.minimum(jax.lax.div(start, bs), -(-S // bs) - 1)
  last = jnp.maximum(jax.lax.div(end - 1, bs), first)
  return first, last


def _kernel(st_ref, en_ref, q_ref, k_ref, v_ref, o_ref, acc, m, den, **kw):
  bs, S, scale = kw["bs"], kw["S"], kw["scale"]
  b, j = pl.program_id(0), pl.program_id(2)
  start, end = _valid_range(st_ref[b], en_ref[b], S)
  first, last = _valid_blocks(start, end, bs, S)

  @pl.when(j == 0)
  def _():
    acc[...] = jnp.zeros_like(acc)
    m[...] = jnp.full_like(m, backend.NEG)
    den[...] = jnp.zeros_like(den)

  @pl.when((j >= first) & (j <= last) & (end > start))
  def _():
    s = backend.dot(q_ref[...], k_ref[...], (1, 0)) * scale
    pos = j * bs + jax.lax.broadcasted_iota(jnp.int32, s.shape, 1)
    valid = (pos >= start) & (pos < end)
    s = jnp.where(valid, s, backend.NEG)
    m_new = jnp.maximum(m[...], jnp.max(s, axis=1, keepdims=True))
    p = jnp.where(valid, jnp.exp(s - m_new), 0.0)
    alpha = jnp.exp(m[...] - m_new)
    den[...] = alpha * den[...] + jnp.sum(p, axis=1, keepdims=True)
    m[...] = m_new
    v = v_ref[...]
    if S % bs:  # the last block's slots past S hold whatever VMEM held
      slots = j * bs + jax.lax.broadcasted_iota(jnp.int32, v.shape, 0)
      v = jnp.where(slots < S, v, jnp.zeros_like(v))
    acc[...] = alpha * acc[...] + backend.dot(p.astype(v.dtype), v, (1, 0))

  @pl.when(j == pl.num_programs(2) - 1)
  def _():
    d = den[...]
    o_ref[...] = (acc[...] / jnp.where(d == 0.0, 1.0, d)).astype(o_ref.dtype)
