"""Decode attention: one new query per row against its KV cache.

The rollout engine writes every row at the same cache slot and left-pads
prompts, so row b's valid keys are the slots `[starts_B[b], lengths_B[b])`
(starts default to 0). One program per (row, kv head) handles that head's G
query heads together and walks only the valid slots' blocks, so each valid
K/V byte is read once and empty cache slots are never read. It is
memory-bound by design: no split over S (B * K programs already fill a
GPU at rollout batch sizes).

The cache is read in place, in the rollout engine's layout (k [B, K, E, S],
v [B, K, S, E]: each program's keys and values are contiguous); a last
partial block is handled by sliding its window back to end at S and masking
slots the previous block already covered, so S need not divide the block.
On TPU it runs `decode_attention_tpu`, which streams the same valid
blocks through the grid.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from emojax.kernels import backend, decode_attention_tpu

# (block_s, num_warps, num_stages) per platform.
_BLOCKS = {"gpu": (64, 4, 3), "interpret": (32, 0, 0)}


def decode_attention_ref(
  q_BHE: jax.Array,
  k_BKES: jax.Array,
  v_BKSE: jax.Array,
  lengths_B: jax.Array,
  *,
  starts_B: jax.Array | None = None,
  interpret: bool = False,
) -> jax.Array:
  """Plain-jnp twin of `decode_attention`."""
  del interpret
  _check(q_BHE, k_BKES, v_BKSE, lengths_B, starts_B)
  B, H, E = q_BHE.shape
  K, S = v_BKSE.shape[1], v_BKSE.shape[2]
  starts_B = jnp.zeros((B,), jnp.int32) if starts_B is None else starts_B
  q_BKGE = q_BHE.reshape(B, K, H // K, E)
  s_BKGS = jnp.einsum(
    "bkge,bkes->bkgs", q_BKGE, k_BKES, preferred_element_type=jnp.float32
  ) / math.sqrt(E)
  pos_1S = jnp.arange(S)[None]
  valid_BS = (pos_1S >= starts_B[:, None]) & (pos_1S < lengths_B[:, None])
  valid_B11S = valid_BS[:, None, None]
  s_BKGS = jnp.where(valid_B11S, s_BKGS, backend.NEG)
  m_BKG1 = jnp.max(s_BKGS, axis=-1, keepdims=True)
  p_BKGS = jnp.where(valid_B11S, jnp.exp(s_BKGS - m_BKG1), 0.0)
  l_BKG1 = jnp.sum(p_BKGS, axis=-1, keepdims=True)
  o_BKGE = jnp.einsum(
    "bkgs,bkse->bkge",
    p_BKGS.astype(v_BKSE.dtype),
    v_BKSE,
    preferred_element_type=jnp.float32,
  ) / jnp.where(l_BKG1 == 0, 1.0, l_BKG1)
  return o_BKGE.reshape(B, H, E).astype(q_BHE.dtype)


def _check(q_BHE, k_BKES, v_BKSE, lengths_B, starts_B):
  ok = q_BHE.ndim == 3 and v_BKSE.ndim == 4
  if ok:
    B, K, S, E = v_BKSE.shape
    ok = k_BKES.shape == (B, K, E, S)
  if not ok:
    raise ValueError(
      "decode_attention: want q [B, H, E], k [B, K, E, S] and v "
      f"[B, K, S, E]; got q {q_BHE.shape}, k {k_BKES.shape}, "
      f"v {v_BKSE.shape}."
    )
  B, H, E = q_BHE.shape
  if v_BKSE.shape[0] != B or v_BKSE.shape[3] != E or H % v_BKSE.shape[1]:
    raise ValueError(
      f"decode_attention: q {q_BHE.shape} vs v {v_BKSE.shape}: need the "
      "same B and E, and H a multiple of K."
    )
  for name, x in (("lengths_B", lengths_B), ("starts_B", starts_B)):
    if x is not None and x.shape != (B,):
      raise ValueError(
        f"decode_attention: {name} must be int [B] = [{B}], got {x.shape}."
      )


def decode_attention(
  q_BHE: jax.Array,
  k_BKES: jax.Array,
  v_BKSE: jax.Array,
  lengths_B: jax.Array,
  *,
  starts_B: jax.Array | None = None,
  interpret: bool = False,
) -> jax.Array:
  """Attention of q over cache slots [starts_B, lengths_B) of each row.

  lengths_B is the exclusive end of the valid slots (the filled length for
  right-aligned caches); starts_B, for left-padded prompts, the first valid
  slot. Rows with no valid slot return 0. Forward only (rollout).
  """
  _check(q_BHE, k_BKES, v_BKSE, lengths_B, starts_B)
  plat = backend.platform(interpret)
  if plat == "tpu":
    starts_B = jnp.zeros_like(lengths_B) if starts_B is None else starts_B
    return decode_attention_tpu.decode(
      q_BHE,
      k_BKES,
      v_BKSE,
      starts_B,
      lengths_B,
      interpret=backend.interpret(plat),
    )
  B, H, E = q_BHE.shape
  K, S = v_BKSE.shape[1], v_BKSE.shape[2]
  G = H // K
  bs, warps, stages = _BLOCKS[plat]
  if S < bs:
    # A tiny cache: pad it to one block (cheap) so loads keep block shape.
    k_BKES = backend.pad_axis(k_BKES, 3, bs)
    v_BKSE = backend.pad_axis(v_BKSE, 2, bs)
    S = bs
  # Triton's dot needs >= 16 rows and power-of-two tiles: pad the group of
  # query heads (q is tiny; the cache is not touched).
  Gp = max(16, backend.next_pow2(G)) if plat == "gpu" else G
  q_BKGE = backend.pad_axis(q_BHE.reshape(B, K, G, E), 2, Gp)
  starts_B = jnp.zeros((B,), jnp.int32) if starts_B is None else starts_B
  kernel = functools.partial(_kernel, bs=bs, scale=E**-0.5)
  o_BKGE = pl.pallas_call(
    kernel,
    out_shape=jax.ShapeDtypeStruct((B, K, Gp, E), q_BHE.dtype),
    grid=(B, K),
    in_specs=[
      pl.BlockSpec((B,), lambda b, n: (0,)),
      pl.BlockSpec((B,), lambda b, n: (0,)),
      pl.BlockSpec((None, None, Gp, E), lambda b, n: (b, n, 0, 0)),
      pl.BlockSpec((None, None, E, S), lambda b, n: (b, n, 0, 0)),
      pl.BlockSpec((None, None, S, E), lambda b, n: (b, n, 0, 0)),
    ],
    out_specs=pl.BlockSpec((None, None, Gp, E), lambda b, n: (b, n, 0, 0)),
    interpret=backend.interpret(plat),
    compiler_params=backend.compiler_params(plat, warps, stages),
    name="emojax_decode_attention",
  )(
    starts_B.astype(jnp.int32),
    lengths_B.astype(jnp.int32),
    q_BKGE,
    k_BKES,
    v_BKSE,
  )
  return o_BKGE[:, :, :G].reshape(B, H, E)


def _kernel(start_ref, end_ref, q_ref, k_ref, v_ref, o_ref, *, bs, scale):
  b = pl.program_id(0)
  S = v_ref.shape[0]
  Gp, E = q_ref.shape
  start = jnp.maximum(start_ref[b], 0)
  end = jnp.minimum(end_ref[b], S)
  q = q_ref[...]

  def body(j, carry):
    acc, m, den = carry
    lo = j * bs
    # The last block slides back to end at S; slots below `lo` were done.
    s0 = jnp.minimum(lo, S - bs)
    ks = pl.ds(s0, bs)
    s = backend.dot(q, k_ref[:, ks], (1, 0)) * scale
    pos = s0 + jax.lax.broadcasted_iota(jnp.int32, s.shape, 1)
    valid = (pos >= jnp.maximum(start, lo)) & (pos < end)
    s = jnp.where(valid, s, backend.NEG)
    m_new = jnp.maximum(m, jnp.max(s, axis=1))
    p = jnp.where(valid, jnp.exp(s - m_new[:, None]), 0.0)
    alpha = jnp.exp(m - m_new)
    den = alpha * den + jnp.sum(p, axis=1)
    v = v_ref[ks, :]
    acc = acc * alpha[:, None] + backend.dot(p.astype(v.dtype), v, (1, 0))
    return acc, m_new, den

  init = (
    jnp.zeros((Gp, E), jnp.float32),
    jnp.full((Gp,), backend.NEG, jnp.float32),
    jnp.zeros((Gp,), jnp.float32),
  )
  first = jax.lax.div(start, bs)
  last = jnp.maximum(jax.lax.div(end + bs - 1, bs), first)
  acc, _, den = jax.lax.fori_loop(first, last, body, init)
  den = jnp.where(den == 0.0, 1.0, den)
  o_ref[...] = (acc / den[:, None]).astype(o_ref.dtype)
