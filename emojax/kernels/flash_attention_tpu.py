"""Flash attention's Mosaic (TPU) kernels: blocks streamed by the grid.

A TPU core copies each block from HBM into VMEM (tens of MiB) before the
kernel runs on it, so the GPU kernels' design, a whole head's K/V (or, for
dk/dv, a whole group's Q and dO) as one block with a loop inside, would
need VMEM growing with the sequence. Here the innermost grid axis walks the
blocks instead and the running state lives in VMEM scratch across it
(FlashAttention-2 as in JAX's own TPU kernels), so VMEM use is a few
blocks whatever T is:

- forward and dq: grid (B, H, q block, kv block), the kv axis innermost;
- dk/dv: grid (B, K, kv block, G x q block): the G query heads of a kv
  head and their q blocks, so dk and dv accumulate without atomics.

Causal blocks above the diagonal are skipped (`pl.when`) and their index
maps repeat the last useful block, which Mosaic does not copy again.
Layouts: q, o [B, H, T, E]; k, v [B, K, S, E]; the row statistics, segment
ids and the custom VJP are shared with `flash_attention`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from emojax.kernels import backend

_F32 = jnp.float32


def _params(plat):
  # The last grid axis carries the scratch state: it must run in order.
  if plat != "tpu":
    return None
  return pltpu.CompilerParams(
    dimension_semantics=("parallel", "parallel", "parallel", "arbitrary")
  )


def _when(cond):
  """pl.when(cond), or run unconditionally when cond is None."""
  return (lambda body: body()) if cond is None else pl.when(cond)


def _last_kv_block(i, bq, bk, nk, offset):
  """The last kv block that q block i attends to (causal; query 0 is at
  key position `offset`)."""
  return backend.causal_kv_blocks(i * bq + offset, bq, bk, nk)[1] - 1


def _first_q_block(j, bq, bk, nq, offset):
  """The first q block that attends to kv block j (causal)."""
  return backend.causal_q_blocks(j * bk, bk, bq, nq, offset)[0]


def _kv_index(causal, bq, bk, nk, offset):
  """kv block j, or for causal the last useful one (no extra copy)."""
  if not causal:
    return lambda i, j: j
  return lambda i, j: jnp.minimum(j, _last_kv_block(i, bq, bk, nk, offset))


def _heads_first(*xs_BTNE):
  return [x.transpose(0, 2, 1, 3) for x in xs_BTNE]


def _q_major_specs(causal, offset, bq, bk, nk, E, G):
  """Blocks for the grid (B, H, q block i, kv block j): q rows, kv rows,
  row statistics and the two segment-id blocks."""
  kv = _kv_index(causal, bq, bk, nk, offset)
  q_spec = pl.BlockSpec((None, None, bq, E), lambda b, h, i, j: (b, h, i, 0))
  kv_spec = pl.BlockSpec(
    (None, None, bk, E), lambda b, h, i, j: (b, h // G, kv(i, j), 0)
  )
  row_spec = pl.BlockSpec((None, None, bq, 1), lambda b, h, i, j: (b, h, i, 0))
  seg_specs = _seg_specs(lambda b, h, i, j: (b, i, kv(i, j)), bq, bk)
  return q_spec, kv_spec, row_spec, seg_specs


def forward(static, q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S):
  """(o [B, T, H, E], lse [B, H, T, 1])."""
  causal, plat, (bq, bk, *_), offset = static
  B, T, H, E = q_BTHE.shape
  S, K = k_BSKE.shape[1], k_BSKE.shape[2]
  q_spec, kv_spec, row_spec, seg_specs = _q_major_specs(
    causal, offset, bq, bk, S // bk, E, H // K
  )
  in_specs = [q_spec, kv_spec, kv_spec]
  args = _heads_first(q_BTHE, k_BSKE, v_BSKE)
  use_seg = q_seg_BT1 is not None
  if use_seg:
    in_specs += seg_specs
    args += [q_seg_BT1, kv_seg_B1S]
  kernel = functools.partial(
    _fwd_kernel, **backend.flash_kw(causal, offset, use_seg, bq, bk, E)
  )
  o_BHTE, lse_BHT1 = pl.pallas_call(
    kernel,
    out_shape=[
      jax.ShapeDtypeStruct((B, H, T, E), q_BTHE.dtype),
      jax.ShapeDtypeStruct((B, H, T, 1), _F32),
    ],
    grid=(B, H, T // bq, S // bk),
    in_specs=in_specs,
    out_specs=[q_spec, row_spec],
    scratch_shapes=[
      pltpu.VMEM((bq, E), _F32),
      pltpu.VMEM((bq, 1), _F32),
      pltpu.VMEM((bq, 1), _F32),
    ],
    interpret=backend.interpret(plat),
    compiler_params=_params(plat),
    name="emojax_flash_fwd_tpu",
  )(*args)
  return _heads_first(o_BHTE)[0], lse_BHT1


def _seg_specs(index, bq, bk):
  """q segments [B, T, 1] and kv segments [B, 1, S]; index -> (b, i, j)."""
  return [
    pl.BlockSpec((None, bq, 1), lambda *g: (index(*g)[0], index(*g)[1], 0)),
    pl.BlockSpec((None, 1, bk), lambda *g: (index(*g)[0], 0, index(*g)[2])),
  ]


def _unpack(refs, use_seg, n_in):
  ins, rest = refs[:n_in], refs[n_in:]
  segs = (None, None)
  if use_seg:
    segs, rest = rest[:2], rest[2:]
  return ins, segs, rest


def _fwd_kernel(*refs, causal, offset, use_seg, bq, bk, scale):
  (q_ref, k_ref, v_ref), (qs_ref, ks_ref), rest = _unpack(refs, use_seg, 3)
  o_ref, lse_ref, acc_ref, m_ref, l_ref = rest
  i, j = pl.program_id(2), pl.program_id(3)

  @pl.when(j == 0)
  def _init():
    acc_ref[...] = jnp.zeros_like(acc_ref)
    m_ref[...] = jnp.full_like(m_ref, backend.NEG)
    l_ref[...] = jnp.zeros_like(l_ref)

  last = _last_kv_block(i, bq, bk, pl.num_programs(3), offset)

  @_when(j <= last if causal else None)
  def _step():
    q_seg = qs_ref[...] if use_seg else None
    kv_seg = ks_ref[...] if use_seg else None
    s, mask = backend.masked_scores(
      q_ref[...],
      k_ref[...],
      q_seg,
      kv_seg,
      i * bq + offset,
      j * bk,
      causal,
      scale,
    )
    m = m_ref[...]
    m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
    p = jnp.exp(s - m_new)
    if mask is not None:
      p = jnp.where(mask, p, 0.0)
    alpha = jnp.exp(m - m_new)
    l_ref[...] = alpha * l_ref[...] + jnp.sum(p, axis=1, keepdims=True)
    v = v_ref[...]
    acc_ref[...] = acc_ref[...] * alpha + backend.dot(
      p.astype(v.dtype), v, (1, 0)
    )
    m_ref[...] = m_new

  @pl.when(j == pl.num_programs(3) - 1)
  def _finish():
    den = l_ref[...]
    empty = den == 0.0
    l_safe = jnp.where(empty, 1.0, den)
    o_ref[...] = (acc_ref[...] / l_safe).astype(o_ref.dtype)
    lse_ref[...] = jnp.where(empty, 0.0, m_ref[...] + jnp.log(l_safe))


def backward_dq(static, q_BTHE, k_BSKE, v_BSKE, q_seg, kv_seg, do, lse, delta):
  causal, plat, (_, _, bq, bk, *_), offset = static
  B, T, H, E = q_BTHE.shape
  S, K = k_BSKE.shape[1], k_BSKE.shape[2]
  q_spec, kv_spec, row_spec, seg_specs = _q_major_specs(
    causal, offset, bq, bk, S // bk, E, H // K
  )
  in_specs = [q_spec, kv_spec, kv_spec, q_spec, row_spec, row_spec]
  args = [*_heads_first(q_BTHE, k_BSKE, v_BSKE, do), lse, delta]
  use_seg = q_seg is not None
  if use_seg:
    in_specs += seg_specs
    args += [q_seg, kv_seg]
  kernel = functools.partial(
    _dq_kernel, **backend.flash_kw(causal, offset, use_seg, bq, bk, E)
  )
  dq_BHTE = pl.pallas_call(
    kernel,
    out_shape=jax.ShapeDtypeStruct((B, H, T, E), q_BTHE.dtype),
    grid=(B, H, T // bq, S // bk),
    in_specs=in_specs,
    out_specs=q_spec,
    scratch_shapes=[pltpu.VMEM((bq, E), _F32)],
    interpret=backend.interpret(plat),
    compiler_params=_params(plat),
    name="emojax_flash_dq_tpu",
  )(*args)
  return _heads_first(dq_BHTE)[0]


def _dq_kernel(*refs, causal, offset, use_seg, bq, bk, scale):
  ins, (qs_ref, ks_ref), (dq_ref, acc_ref) = _unpack(refs, use_seg, 6)
  q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref = ins
  i, j = pl.program_id(2), pl.program_id(3)

  @pl.when(j == 0)
  def _init():
    acc_ref[...] = jnp.zeros_like(acc_ref)

  last = _last_kv_block(i, bq, bk, pl.num_programs(3), offset)

  @_when(j <= last if causal else None)
  def _step():
    q_seg = qs_ref[...] if use_seg else None
    kv_seg = ks_ref[...] if use_seg else None
    k, v = k_ref[...], v_ref[...]
    s, mask = backend.masked_scores(
      q_ref[...], k, q_seg, kv_seg, i * bq + offset, j * bk, causal, scale
    )
    _, ds = backend.probs_and_dscores(
      s, mask, lse_ref[...], do_ref[...], v, d_ref[...]
    )
    acc_ref[...] += backend.dot(ds.astype(k.dtype), k, (1, 0))

  @pl.when(j == pl.num_programs(3) - 1)
  def _finish():
    dq_ref[...] = (acc_ref[...] * scale).astype(dq_ref.dtype)


def backward_dkv(static, q_BTHE, k_BSKE, v_BSKE, q_seg, kv_seg, do, lse, delta):
  causal, plat, (_, _, bq, bk, *_), offset = static
  B, T, H, E = q_BTHE.shape
  S, K = k_BSKE.shape[1], k_BSKE.shape[2]
  G, nq = H // K, T // bq

  def q_block(j, step):
    """(query head within the group, q block) of inner step `step`."""
    i = step % nq
    if causal:
      first = jnp.minimum(_first_q_block(j, bq, bk, nq, offset), nq - 1)
      i = jnp.maximum(i, first)
    return step // nq, i

  def q_index(b, n, j, step):
    g, i = q_block(j, step)
    return b, n * G + g, i, 0

  q_spec = pl.BlockSpec((None, None, bq, E), q_index)
  row_spec = pl.BlockSpec((None, None, bq, 1), q_index)
  kv_spec = pl.BlockSpec((None, None, bk, E), lambda b, n, j, s: (b, n, j, 0))
  in_specs = [q_spec, kv_spec, kv_spec, q_spec, row_spec, row_spec]
  args = [*_heads_first(q_BTHE, k_BSKE, v_BSKE, do), lse, delta]
  use_seg = q_seg is not None
  if use_seg:
    in_specs += _seg_specs(lambda b, n, j, s: (b, q_block(j, s)[1], j), bq, bk)
    args += [q_seg, kv_seg]
  kernel = functools.partial(
    _dkv_kernel, nq=nq, **backend.flash_kw(causal, offset, use_seg, bq, bk, E)
  )
  kv_shape = jax.ShapeDtypeStruct((B, K, S, E), k_BSKE.dtype)
  dk_BKSE, dv_BKSE = pl.pallas_call(
    kernel,
    out_shape=[kv_shape, kv_shape],
    grid=(B, K, S // bk, G * nq),
    in_specs=in_specs,
    out_specs=[kv_spec, kv_spec],
    scratch_shapes=[pltpu.VMEM((bk, E), _F32), pltpu.VMEM((bk, E), _F32)],
    interpret=backend.interpret(plat),
    compiler_params=_params(plat),
    name="emojax_flash_dkv_tpu",
  )(*args)
  return tuple(_heads_first(dk_BKSE, dv_BKSE))


def _dkv_kernel(*refs, causal, offset, use_seg, nq, bq, bk, scale):
  ins, (qs_ref, ks_ref), rest = _unpack(refs, use_seg, 6)
  q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref = ins
  dk_ref, dv_ref, dk_acc, dv_acc = rest
  j, step = pl.program_id(2), pl.program_id(3)
  i = step % nq

  @pl.when(step == 0)
  def _init():
    dk_acc[...] = jnp.zeros_like(dk_acc)
    dv_acc[...] = jnp.zeros_like(dv_acc)

  # Causal: q blocks before this kv block see none of it.
  @_when(i >= _first_q_block(j, bq, bk, nq, offset) if causal else None)
  def _step():
    q_seg = qs_ref[...] if use_seg else None
    kv_seg = ks_ref[...] if use_seg else None
    q, do, k, v = q_ref[...], do_ref[...], k_ref[...], v_ref[...]
    s, mask = backend.masked_scores(
      q, k, q_seg, kv_seg, i * bq + offset, j * bk, causal, scale
    )
    p, ds = backend.probs_and_dscores(s, mask, lse_ref[...], do, v, d_ref[...])
    dv_acc[...] += backend.dot(p.astype(do.dtype), do, (0, 0))
    dk_acc[...] += backend.dot(ds.astype(q.dtype), q, (0, 0))

  @pl.when(step == pl.num_programs(3) - 1)
  def _finish():
    dk_ref[...] = (dk_acc[...] * scale).astype(dk_ref.dtype)
    dv_ref[...] = dv_acc[...].astype(dv_ref.dtype)
