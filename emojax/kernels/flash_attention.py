"""Flash attention (FlashAttention-2) for training: forward and backward.

Causal and segment (packing/padding) masks, grouped-query attention that
indexes the kv head as `h // G` instead of repeating K/V, fp32 and bf16,
any sequence length (inputs are padded to block multiples; padding keys
are masked, except under a causal mask, which already hides them). The
backward recomputes scores from the saved
logsumexp: one kernel for dq (grid over query blocks) and one for dk/dv
(grid over kv blocks, looping over the G query heads of its kv head, so no
atomics and no per-query-head dk buffer).

These kernels read [B, T, H, E] directly (blocks squeeze the head axis)
and hold a head's K/V (or a group's Q) as one block, looping inside: right
for Triton, whose blocks are views of HBM. TPU copies blocks into VMEM, so
it runs `flash_attention_tpu`, which streams blocks through the grid
instead; on Hopper GPUs (H100/H200, fp16/bf16) it runs the wgmma/TMA
kernels of `flash_attention_mgpu` ($EMOJAX_PALLAS_GPU=triton keeps these).
All share this file's custom VJP and layouts. Per-row statistics
(logsumexp, delta) are [B, H, T, 1] columns, query segment ids [B, T, 1]
and key segment ids [B, 1, S]: the mask is their broadcast compare and no
kernel moves a vector between sublanes and lanes (Mosaic's block rule:
the last two block dims divide by (8, 128) or span the array).
"""

from __future__ import annotations

import functools
import math
import typing

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from emojax.kernels import backend, flash_attention_tpu


class _Blocks(typing.NamedTuple):
  """Tiles of the forward (bq, bk) and backward (bwd_bq, bwd_bk) kernels,
  and Triton's warps (forward, backward) and pipeline stages."""

  bq: int
  bk: int
  bwd_bq: int
  bwd_bk: int
  warps: int = 0
  bwd_warps: int = 0
  stages: int = 0


_BLOCKS = {
  # At E = 64 the forward takes 8 warps: with 4 it spilled 144 bytes a
  # thread on sm_80 (A100/A800; `benchmark.py kernel_build --arch=8.0`),
  # while dk/dv at 8 warps spilled 16 there and at 4 none.
  "gpu": {
    64: _Blocks(128, 64, 64, 64, warps=8, bwd_warps=4, stages=3),
    128: _Blocks(128, 64, 64, 64, warps=8, bwd_warps=8, stages=2),
  },
  "tpu": {64: _Blocks(128, 128, 128, 128), 128: _Blocks(128, 128, 128, 128)},
  "interpret": {64: _Blocks(64, 64, 64, 64), 128: _Blocks(64, 64, 64, 64)},
}


def flash_attention_ref(
  q_BTHE: jax.Array,
  k_BSKE: jax.Array,
  v_BSKE: jax.Array,
  *,
  causal: bool = True,
  segment_ids: jax.Array | None = None,
  kv_segment_ids: jax.Array | None = None,
  interpret: bool = False,
) -> jax.Array:
  """Plain-jnp twin of `flash_attention` (materialises [B, K, G, T, S])."""
  del interpret
  B, T, H, E = q_BTHE.shape
  S, K = k_BSKE.shape[1], k_BSKE.shape[2]
  _check(q_BTHE, k_BSKE, v_BSKE, causal, segment_ids, kv_segment_ids)
  q_BTKGE = q_BTHE.reshape(B, T, K, H // K, E)
  s_BKGTS = jnp.einsum(
    "btkge,bske->bkgts",
    q_BTKGE,
    k_BSKE,
    preferred_element_type=jnp.float32,
  ) / math.sqrt(E)
  mask_BTS = _mask(B, T, S, causal, segment_ids, kv_segment_ids)
  mask_B11TS = mask_BTS[:, None, None]
  s_BKGTS = jnp.where(mask_B11TS, s_BKGTS, backend.NEG)
  m_BKGT1 = jnp.max(s_BKGTS, axis=-1, keepdims=True)
  p_BKGTS = jnp.where(mask_B11TS, jnp.exp(s_BKGTS - m_BKGT1), 0.0)
  l_BKGT1 = jnp.sum(p_BKGTS, axis=-1, keepdims=True)
  p_BKGTS = p_BKGTS / jnp.where(l_BKGT1 == 0, 1.0, l_BKGT1)
  o_BTKGE = jnp.einsum(
    "bkgts,bske->btkge",
    p_BKGTS.astype(v_BSKE.dtype),
    v_BSKE,
    preferred_element_type=jnp.float32,
  )
  return o_BTKGE.reshape(B, T, H, E).astype(q_BTHE.dtype)


def _mgpu():
  """The Hopper kernels' module, imported on first use: Mosaic GPU's
  import takes 0.4 s that CPU and TPU hosts need not spend."""
  from emojax.kernels import flash_attention_mgpu

  return flash_attention_mgpu


def _mask(B, T, S, causal, segment_ids, kv_segment_ids):
  mask_BTS = jnp.ones((B, T, S), bool)
  if causal:  # queries are the last T positions
    mask_BTS &= jnp.tril(jnp.ones((T, S), bool), k=S - T)[None]
  if segment_ids is not None:
    q_BT = segment_ids
    kv_BS = q_BT if kv_segment_ids is None else kv_segment_ids
    mask_BTS &= q_BT[:, :, None] == kv_BS[:, None, :]
    mask_BTS &= (q_BT != 0)[:, :, None]
  return mask_BTS


def _check(q_BTHE, k_BSKE, v_BSKE, causal, segment_ids, kv_segment_ids):
  if q_BTHE.ndim != 4 or k_BSKE.ndim != 4 or k_BSKE.shape != v_BSKE.shape:
    raise ValueError(
      "flash_attention: want q [B, T, H, E] and k, v [B, S, K, E] of equal "
      f"shape; got q {q_BTHE.shape}, k {k_BSKE.shape}, v {v_BSKE.shape}."
    )
  B, T, H, E = q_BTHE.shape
  Bk, S, K, Ek = k_BSKE.shape
  if Bk != B or Ek != E or H % K:
    raise ValueError(
      f"flash_attention: q {q_BTHE.shape} and k {k_BSKE.shape} need the "
      "same B and E, and H a multiple of K (grouped-query attention)."
    )
  if causal and T > S:
    raise ValueError(
      f"flash_attention: a causal mask puts the T={T} queries at the last "
      f"positions of the S={S} keys, so needs T <= S."
    )
  if segment_ids is not None and segment_ids.shape != (B, T):
    raise ValueError(
      f"flash_attention: segment_ids must be int [B, T] = {(B, T)}, got "
      f"{segment_ids.shape}."
    )
  if kv_segment_ids is not None and (
    segment_ids is None or kv_segment_ids.shape != (B, S)
  ):
    raise ValueError(
      f"flash_attention: kv_segment_ids must be int [B, S] = {(B, S)}, "
      f"beside segment_ids [B, T]; got {kv_segment_ids.shape}."
    )
  if segment_ids is not None and kv_segment_ids is None and S != T:
    raise ValueError(
      f"flash_attention: with T={T} queries and S={S} keys, pass the keys' "
      "segment ids as kv_segment_ids [B, S] too."
    )


def flash_attention(
  q_BTHE: jax.Array,
  k_BSKE: jax.Array,
  v_BSKE: jax.Array,
  *,
  causal: bool = True,
  segment_ids: jax.Array | None = None,
  kv_segment_ids: jax.Array | None = None,
  interpret: bool = False,
) -> jax.Array:
  """Softmax(q k^T / sqrt(E)) v with masks, without materialising scores.

  segment_ids: int [B, T]; tokens attend only within equal nonzero ids,
  0 marks padding. With fewer queries than keys (T < S: completions
  attending to [shared prompt | themselves]) the queries are the last T
  positions (causal: query t sees keys <= S - T + t) and kv_segment_ids
  [B, S] gives the keys' ids. Rows with nothing to attend to return 0.
  Differentiable in q, k and v (custom VJP). On CPU it always runs in
  interpret mode.
  """
  _check(q_BTHE, k_BSKE, v_BSKE, causal, segment_ids, kv_segment_ids)
  B, T, H, E = q_BTHE.shape
  S = k_BSKE.shape[1]
  plat = backend.platform(interpret)
  if plat == "gpu" and _mgpu().supports(q_BTHE.dtype, E) and backend.hopper():
    plat, blocks = "mgpu", _mgpu().DEFAULT_BLOCKS
    multiple = blocks.multiple
  else:
    table = _BLOCKS[plat]
    blocks = table[64] if E <= 64 else table[128]
    multiple = math.lcm(*blocks[:4])
  T_pad, S_pad = backend.round_up(T, multiple), backend.round_up(S, multiple)
  # Causal padding needs no mask: padded keys come after every real query,
  # and padded queries are dropped (their zero cotangents add nothing).
  padded = T_pad != T or S_pad != S
  use_seg = segment_ids is not None or (padded and not causal)
  q_seg_BT1 = kv_seg_B1S = None
  if use_seg:
    if segment_ids is None:
      segment_ids = jnp.ones((B, T), jnp.int32)
      kv_segment_ids = jnp.ones((B, S), jnp.int32)
    if kv_segment_ids is None:
      kv_segment_ids = segment_ids
    q_seg_BT = segment_ids.astype(jnp.int32)
    # Padding keys (0) become -1, which no query's id equals: one compare
    # masks both segments and padding.
    kv_seg_BS = jnp.where(kv_segment_ids == 0, -1, kv_segment_ids)
    kv_seg_BS = kv_seg_BS.astype(jnp.int32)
    q_seg_BT1 = backend.pad_axis(q_seg_BT, 1, T_pad)[:, :, None]
    kv_seg_B1S = backend.pad_axis(kv_seg_BS, 1, S_pad, -1)[:, None, :]
  q_BTHE_p = backend.pad_axis(q_BTHE, 1, T_pad)
  k_BSKE_p = backend.pad_axis(k_BSKE, 1, S_pad)
  v_BSKE_p = backend.pad_axis(v_BSKE, 1, S_pad)
  static = _Static(causal, plat, blocks, S - T)
  o_BTHE = _flash(static, q_BTHE_p, k_BSKE_p, v_BSKE_p, q_seg_BT1, kv_seg_B1S)
  return o_BTHE[:, :T]


class _Static(typing.NamedTuple):
  """Hashable static arguments. offset = S - T: the position of query 0
  among the keys (0 for self-attention)."""

  causal: bool
  plat: str
  blocks: tuple
  offset: int


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _flash(static, q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S):
  return _forward(static, q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S)[0]


def _flash_fwd(static, q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S):
  o_BTHE, lse_BHT1 = _forward(
    static, q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S
  )
  return o_BTHE, (
    q_BTHE,
    k_BSKE,
    v_BSKE,
    q_seg_BT1,
    kv_seg_B1S,
    o_BTHE,
    lse_BHT1,
  )


def _flash_bwd(static, res, do_BTHE):
  q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S, o_BTHE, lse_BHT1 = res
  delta_BHT1 = jnp.einsum(
    "bthe,bthe->bht",
    o_BTHE.astype(jnp.float32),
    do_BTHE.astype(jnp.float32),
  )[..., None]
  dq, dk, dv = _backward(
    static,
    q_BTHE,
    k_BSKE,
    v_BSKE,
    q_seg_BT1,
    kv_seg_B1S,
    do_BTHE.astype(q_BTHE.dtype),
    lse_BHT1,
    delta_BHT1,
  )
  return dq, dk, dv, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _brn(idx):
  b, r, n = idx
  return b, r, n, 0


def _forward(static, q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S):
  causal, plat, blocks, offset = static
  if plat == "tpu":
    return flash_attention_tpu.forward(
      static, q_BTHE, k_BSKE, v_BSKE, q_seg_BT1, kv_seg_B1S
    )
  if plat == "mgpu":
    o_BTHE, lse_BHT = _mgpu().forward(
      q_BTHE,
      k_BSKE,
      v_BSKE,
      *_flat_segments(q_seg_BT1, kv_seg_B1S),
      causal=causal,
      offset=offset,
      sim=backend.simulating(),
      blocks=blocks,
    )
    return o_BTHE, lse_BHT[..., None]
  bq, bk, warps, stages = blocks.bq, blocks.bk, blocks.warps, blocks.stages
  B, T, H, E = q_BTHE.shape
  S, K = k_BSKE.shape[1], k_BSKE.shape[2]
  G = H // K
  use_seg = q_seg_BT1 is not None
  in_specs = [
    _full_e(bq, E, lambda b, h, i: (b, i, h)),
    _full_e(S, E, lambda b, h, i: (b, 0, h // G)),
    _full_e(S, E, lambda b, h, i: (b, 0, h // G)),
  ]
  args = [
    (q_BTHE),
    (k_BSKE),
    (v_BSKE),
  ]
  if use_seg:
    in_specs += _seg_specs(bq, S, lambda b, h, i: (b, i, 0))
    args += [q_seg_BT1, kv_seg_B1S]
  out_shape = [
    jax.ShapeDtypeStruct(args[0].shape, q_BTHE.dtype),
    jax.ShapeDtypeStruct((B, H, T, 1), jnp.float32),
  ]
  out_specs = [
    _full_e(bq, E, lambda b, h, i: (b, i, h)),
    _row_spec(bq),
  ]
  kernel = functools.partial(
    _fwd_kernel, **backend.flash_kw(causal, offset, use_seg, bq, bk, E)
  )
  o, lse_BHT1 = pl.pallas_call(
    kernel,
    out_shape=out_shape,
    grid=(B, H, T // bq),
    in_specs=in_specs,
    out_specs=out_specs,
    interpret=backend.interpret(plat),
    compiler_params=backend.compiler_params(plat, warps, stages),
    name="emojax_flash_fwd",
  )(*args)
  return (o), lse_BHT1


def _full_e(rows, E, index):
  """Block of `rows` x E of one head of a [B, T, N, E] array."""
  return pl.BlockSpec((None, rows, None, E), lambda *g: _brn(index(*g)))


def _row_spec(bq):
  """Block of a [B, H, T, 1] per-row statistic for query block i."""
  return pl.BlockSpec((None, None, bq, 1), lambda b, h, i: (b, h, i, 0))


def _seg_specs(bq, bk, index):
  """Blocks of q segments [B, T, 1] (rows `index`) and kv segments [B, 1, S].

  `index(*grid)` gives (b, q block, kv block).
  """
  return [
    pl.BlockSpec((None, bq, 1), lambda *g: (index(*g)[0], index(*g)[1], 0)),
    pl.BlockSpec((None, 1, bk), lambda *g: (index(*g)[0], 0, index(*g)[2])),
  ]


def _kv_blocks_upto(i, bq, bk, nk, causal, offset):
  """(unmasked, seen) kv blocks of query block i (all when not causal).
  Masks cost Triton an iota, a compare and two selects a score; most
  blocks of a long row skip them."""
  if not causal:
    return nk, nk
  return backend.causal_kv_blocks(i * bq + offset, bq, bk, nk)


def _causal_loops(body, unmasked, seen, carry):
  """body(j, carry, masked) over blocks [0, unmasked) then [unmasked, seen)."""
  carry = jax.lax.fori_loop(
    0, unmasked, functools.partial(body, masked=False), carry
  )
  return jax.lax.fori_loop(
    unmasked, seen, functools.partial(body, masked=True), carry
  )


def _fwd_kernel(*refs, causal, offset, use_seg, bq, bk, scale):
  if use_seg:
    q_ref, k_ref, v_ref, qs_ref, ks_ref, o_ref, lse_ref = refs
  else:
    q_ref, k_ref, v_ref, o_ref, lse_ref = refs
  i = pl.program_id(2)
  S, E = k_ref.shape
  q = q_ref[...]
  q_seg = qs_ref[...] if use_seg else None

  # Row statistics stay [bq, 1] columns (keepdims), the layout a row
  # reduction produces on every backend.
  def body(j, carry, masked):
    acc, m, den = carry
    ks = pl.ds(pl.multiple_of(j * bk, bk), bk)
    kv_seg = ks_ref[:, ks] if use_seg else None
    s, mask = backend.masked_scores(
      q, k_ref[ks, :], q_seg, kv_seg, i * bq + offset, j * bk, masked, scale
    )
    m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
    p = jnp.exp(s - m_new)
    if mask is not None:
      p = jnp.where(mask, p, 0.0)
    alpha = jnp.exp(m - m_new)
    den = alpha * den + jnp.sum(p, axis=1, keepdims=True)
    v = v_ref[ks, :]
    acc = acc * alpha + backend.dot(p.astype(v.dtype), v, (1, 0))
    return acc, m_new, den

  init = (
    jnp.zeros((bq, E), jnp.float32),
    jnp.full((bq, 1), backend.NEG, jnp.float32),
    jnp.zeros((bq, 1), jnp.float32),
  )
  acc, m, den = _causal_loops(
    body, *_kv_blocks_upto(i, bq, bk, S // bk, causal, offset), init
  )
  empty = den == 0.0
  l_safe = jnp.where(empty, 1.0, den)
  o_ref[...] = (acc / l_safe).astype(o_ref.dtype)
  lse_ref[...] = jnp.where(empty, 0.0, m + jnp.log(l_safe))


def _flat_segments(q_seg_BT1, kv_seg_B1S):
  """The [B, T] and [B, S] segment ids the Hopper kernels read (or None)."""
  if q_seg_BT1 is None:
    return None, None
  return q_seg_BT1[..., 0], kv_seg_B1S[:, 0]


def _backward(static, *args):
  """(dq, dk, dv); args: q, k, v, q_seg, kv_seg, do, lse, delta."""
  if static.plat == "tpu":
    dq = flash_attention_tpu.backward_dq(static, *args)
    dk, dv = flash_attention_tpu.backward_dkv(static, *args)
  elif static.plat == "mgpu":
    q, k, v, q_seg, kv_seg, do, lse, delta = args
    mgpu_args = (q, k, v, do, lse[..., 0], delta[..., 0])
    mgpu_args += _flat_segments(q_seg, kv_seg)
    kw = dict(
      causal=static.causal,
      offset=static.offset,
      sim=backend.simulating(),
      blocks=static.blocks,
    )
    dq = _mgpu().backward_dq(*mgpu_args, **kw)
    dk, dv = _mgpu().backward_dkv(*mgpu_args, **kw)
  else:
    dq = _backward_dq(static, *args)
    dk, dv = _backward_dkv(static, *args)
  return dq, dk, dv


def _backward_dq(static, q_BTHE, k_BSKE, v_BSKE, q_seg, kv_seg, do, lse, delta):
  causal, plat, blocks, offset = static
  bq, bk, warps = blocks.bwd_bq, blocks.bwd_bk, blocks.bwd_warps
  stages = blocks.stages
  B, T, H, E = q_BTHE.shape
  S, K = k_BSKE.shape[1], k_BSKE.shape[2]
  G = H // K
  use_seg = q_seg is not None
  q_spec = _full_e(bq, E, lambda b, h, i: (b, i, h))
  kv_spec = _full_e(S, E, lambda b, h, i: (b, 0, h // G))
  in_specs = [q_spec, kv_spec, kv_spec, q_spec, _row_spec(bq), _row_spec(bq)]
  args = [
    (q_BTHE),
    (k_BSKE),
    (v_BSKE),
    (do),
    lse,
    delta,
  ]
  if use_seg:
    in_specs += _seg_specs(bq, S, lambda b, h, i: (b, i, 0))
    args += [q_seg, kv_seg]
  kernel = functools.partial(
    _dq_kernel, **backend.flash_kw(causal, offset, use_seg, bq, bk, E)
  )
  dq = pl.pallas_call(
    kernel,
    out_shape=jax.ShapeDtypeStruct(args[0].shape, q_BTHE.dtype),
    grid=(B, H, T // bq),
    in_specs=in_specs,
    out_specs=q_spec,
    interpret=backend.interpret(plat),
    compiler_params=backend.compiler_params(plat, warps, stages),
    name="emojax_flash_dq",
  )(*args)
  return dq


def _dq_kernel(*refs, causal, offset, use_seg, bq, bk, scale):
  if use_seg:
    q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref, qs_ref, ks_ref, dq_ref = refs
  else:
    q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref, dq_ref = refs
  i = pl.program_id(2)
  S, E = k_ref.shape
  q, do = q_ref[...], do_ref[...]
  lse, delta = lse_ref[...], d_ref[...]
  q_seg = qs_ref[...] if use_seg else None

  def body(j, dq, masked):
    ks = pl.ds(pl.multiple_of(j * bk, bk), bk)
    kv_seg = ks_ref[:, ks] if use_seg else None
    k, v = k_ref[ks, :], v_ref[ks, :]
    s, mask = backend.masked_scores(
      q, k, q_seg, kv_seg, i * bq + offset, j * bk, masked, scale
    )
    _, ds = backend.probs_and_dscores(s, mask, lse, do, v, delta)
    return dq + backend.dot(ds.astype(k.dtype), k, (1, 0))

  blocks = _kv_blocks_upto(i, bq, bk, S // bk, causal, offset)
  dq = _causal_loops(body, *blocks, jnp.zeros((bq, E), jnp.float32))
  dq_ref[...] = (dq * scale).astype(dq_ref.dtype)


def _backward_dkv(
  static, q_BTHE, k_BSKE, v_BSKE, q_seg, kv_seg, do, lse, delta
):
  causal, plat, blocks, offset = static
  bq, bk, warps = blocks.bwd_bq, blocks.bwd_bk, blocks.bwd_warps
  stages = blocks.stages
  B, T, H, E = q_BTHE.shape
  S, K = k_BSKE.shape[1], k_BSKE.shape[2]
  G = H // K
  use_seg = q_seg is not None
  # The G query heads of kv head n are heads n*G .. n*G+G-1: view H as
  # (K, G) (free for both layouts) and take the whole group in one block.
  qg = q_BTHE.reshape(B, T, K, G, E)
  dog = do.reshape(B, T, K, G, E)
  group_spec = pl.BlockSpec(
    (None, T, None, G, E), lambda b, n, j: (b, 0, n, 0, 0)
  )
  rows_spec = pl.BlockSpec(
    (None, None, G, T, 1), lambda b, n, j: (b, n, 0, 0, 0)
  )
  kv_spec = _full_e(bk, E, lambda b, n, j: (b, j, n))
  in_specs = [group_spec, kv_spec, kv_spec, group_spec, rows_spec, rows_spec]
  args = [
    qg,
    (k_BSKE),
    (v_BSKE),
    dog,
    lse.reshape(B, K, G, T, 1),
    delta.reshape(B, K, G, T, 1),
  ]
  if use_seg:
    in_specs += _seg_specs(T, bk, lambda b, n, j: (b, 0, j))
    args += [q_seg, kv_seg]
  kernel = functools.partial(
    _dkv_kernel, G=G, **backend.flash_kw(causal, offset, use_seg, bq, bk, E)
  )
  kv_shape = args[1].shape
  dk, dv = pl.pallas_call(
    kernel,
    out_shape=[
      jax.ShapeDtypeStruct(kv_shape, k_BSKE.dtype),
      jax.ShapeDtypeStruct(kv_shape, v_BSKE.dtype),
    ],
    grid=(B, K, S // bk),
    in_specs=in_specs,
    out_specs=[kv_spec, kv_spec],
    interpret=backend.interpret(plat),
    compiler_params=backend.compiler_params(plat, warps, stages),
    name="emojax_flash_dkv",
  )(*args)
  return (dk), (dv)


def _dkv_kernel(*refs, causal, offset, use_seg, G, bq, bk, scale):
  if use_seg:
    q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref, qs_ref, ks_ref = refs[:8]
  else:
    q_ref, k_ref, v_ref, do_ref, lse_ref, d_ref = refs[:6]
  dk_ref, dv_ref = refs[-2:]
  j = pl.program_id(2)
  T = lse_ref.shape[1]
  bk_, E = k_ref.shape
  k, v = k_ref[...], v_ref[...]
  kv_seg = ks_ref[...] if use_seg else None

  def rows(ref, g, qs):
    return ref[qs, g, :]

  def body(i, carry, g, masked):
    dk, dv = carry
    qs = pl.ds(pl.multiple_of(i * bq, bq), bq)
    q, do = rows(q_ref, g, qs), rows(do_ref, g, qs)
    lse, delta = lse_ref[g, qs, :], d_ref[g, qs, :]
    q_seg = qs_ref[qs, :] if use_seg else None
    s, mask = backend.masked_scores(
      q, k, q_seg, kv_seg, i * bq + offset, j * bk, masked, scale
    )
    p, ds = backend.probs_and_dscores(s, mask, lse, do, v, delta)
    dv = dv + backend.dot(p.astype(do.dtype), do, (0, 0))
    dk = dk + backend.dot(ds.astype(q.dtype), q, (0, 0))
    return dk, dv

  # Causal: query blocks before this kv block see none of it; those from
  # `unmasked` on see all of it.
  nq = T // bq
  first, unmasked = 0, 0
  if causal:
    first, unmasked = backend.causal_q_blocks(j * bk, bk, bq, nq, offset)

  def head(g, carry):
    step = functools.partial(body, g=g, masked=True)
    carry = jax.lax.fori_loop(first, unmasked, step, carry)
    step = functools.partial(body, g=g, masked=False)
    return jax.lax.fori_loop(jnp.maximum(first, unmasked), nq, step, carry)

  zeros = jnp.zeros((bk_, E), jnp.float32)
  dk, dv = jax.lax.fori_loop(0, G, head, (zeros, zeros))
  dk_ref[...] = (dk * scale).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)
