"""Fused logprobs' Mosaic (TPU) forward: logits tiles never leave VMEM.

A TPU core copies each block from HBM into VMEM before the kernel runs,
so the GPU kernel's loop over vocabulary tiles becomes the inner grid
axis here: grid (token blocks, vocab tiles), with the running max, sum,
sum of p * z and the target's logit of the block's tokens in VMEM
scratch across it (online logsumexp). The token block's hidden rows are
resident across the vocab axis (their block index does not change, so
Mosaic copies them once) and the unembedding streams once per token
block: bt = 256 tokens give 256 flops per bf16 weight byte, about what
v5e's MXU needs from its HBM (197 TF/s over 0.82 TB/s; v6e would want
twice the tokens). The MXU contracts all of D at once: no D loop.

V need not divide the tile: the last tile's columns past V are read from
past the array's end (unspecified) and masked before they meet the
softmax. Default blocks fit the 16 MiB default VMEM budget at D = 3584:
hidden 2 x 1.75 MiB, weights 2 x 1.75 MiB, the rest under 3 MiB.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from emojax.kernels import backend

_F32 = jnp.float32
BLOCK_T = 256
BLOCK_V = 256


def blocks(N: int, V: int, dtype) -> tuple[int, int]:
  """(block_t, block_v) for N tokens and V columns: a sublane tile of
  tokens at least (16 rows for 16-bit hidden states), whole V if short."""
  rows = 32 // jnp.dtype(dtype).itemsize
  return min(BLOCK_T, backend.round_up(N, rows)), min(BLOCK_V, V)


def forward(h_ND, w_DV, t_N, *, temperature, V, bt, bv, interpret):
  """(logp_N, entropy_N, lse_N), fp32, over w's first V columns; N
  divides by bt, targets int32."""
  N, D = h_ND.shape
  col = pl.BlockSpec((bt, 1), lambda i, j: (i, 0))
  out = jax.ShapeDtypeStruct((N, 1), _F32)
  kernel = functools.partial(_kernel, bv=bv, V=V, temperature=temperature)
  outs = pl.pallas_call(
    kernel,
    out_shape=[out, out, out],
    grid=(N // bt, pl.cdiv(V, bv)),
    in_specs=[
      pl.BlockSpec((bt, D), lambda i, j: (i, 0)),
      pl.BlockSpec((D, bv), lambda i, j: (0, j)),
      col,
    ],
    out_specs=[col, col, col],
    scratch_shapes=[pltpu.VMEM((bt, 1), _F32) for _ in range(4)],
    interpret=interpret,
    compiler_params=pltpu.CompilerParams(
      dimension_semantics=("parallel", "arbitrary")
    ),
    name="emojax_fused_logprobs_tpu",
  )(h_ND, w_DV, t_N.reshape(N, 1))
  return tuple(x[:, 0] for x in outs)


def _kernel(h_ref, w_ref, t_ref, logp_ref, ent_ref, lse_ref, *scratch, **kw):
  m_ref, den_ref, s1_ref, zt_ref = scratch
  bv, V, temperature = kw["bv"], kw["V"], kw["temperature"]
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    m_ref[...] = jnp.full_like(m_ref, backend.NEG)
    for ref in (den_ref, s1_ref, zt_ref):
      ref[...] = jnp.zeros_like(ref)

  z = backend.dot(h_ref[...], w_ref[...], (1, 0)) / temperature
  cols = j * bv + jax.lax.broadcasted_iota(jnp.int32, z.shape, 1)
  # Past V the tile holds whatever lay beyond the weights (maybe NaN).
  z = jnp.where(cols < V, z, backend.NEG)
  m = m_ref[...]
  m_new = jnp.maximum(m, jnp.max(z, axis=1, keepdims=True))
  alpha = jnp.exp(m - m_new)
  # Tile 0 always holds a real column, so m_new > NEG and masked p are 0.
  p = jnp.exp(z - m_new)
  den_ref[...] = alpha * den_ref[...] + jnp.sum(p, axis=1, keepdims=True)
  s1_ref[...] = alpha * s1_ref[...] + jnp.sum(p * z, axis=1, keepdims=True)
  hit = cols == t_ref[...]
  zt_ref[...] += jnp.sum(jnp.where(hit, z, 0.0), axis=1, keepdims=True)
  m_ref[...] = m_new

  @pl.when(j == pl.num_programs(1) - 1)
  def _finish():
    den = den_ref[...]
    lse = m_ref[...] + jnp.log(den)
    logp_ref[...] = zt_ref[...] - lse
    ent_ref[...] = lse - s1_ref[...] / den
    lse_ref[...] = lse
