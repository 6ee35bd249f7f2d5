"""Per-token logprob and entropy without [B, T, V] logits, in plain XLA.

A loop over token chunks with vocab chunks inside keeps one [block_t,
block_v] logits tile alive at a time (online logsumexp). The custom VJP
saves only the per-token logsumexp and entropy and recomputes each tile in
the backward, summing the smaller of dhidden [N, D] and dw [D, V] in fp32
across the loop and the other tile by tile. Runs on every backend; it is
the `chunked` logprobs, and the backward of the Pallas `fused_logprobs`.

The logsumexp is an output too (`with_lse=True`), differentiable: the
vocab-sharded combine (`rl.sharded_logprobs`) needs each shard's, and
recomputing it from the target's logit took a [D, rows] gather of w.

Vocab tiles need not divide V: the last tile slides back to end at V and
masks the columns the previous tile already covered, so the weight matrix
is never padded (copied).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from emojax.kernels import backend

# Token and vocab tile of the XLA loops. Each step is a [1024, D] x
# [D, 8192] matmul, big enough to keep a GPU's or TPU's matrix units busy
# (a Pallas kernel's 64 x 128 tile would make 150k tiny steps of one scan
# at V = 152k, N = 8k), and its fp32 tile is 32 MiB.
BLOCK_T = 1024
BLOCK_V = 8192


def check(hidden_BTD, w_vocab_DV, targets_BT, temperature):
  """Shared argument checks of the logprob functions."""
  if hidden_BTD.ndim != 3 or w_vocab_DV.ndim != 2:
    raise ValueError(
      f"logprobs: want hidden [B, T, D] and w_vocab [D, V]; got "
      f"{hidden_BTD.shape} and {w_vocab_DV.shape}."
    )
  if hidden_BTD.shape[2] != w_vocab_DV.shape[0]:
    raise ValueError(
      f"logprobs: hidden's D={hidden_BTD.shape[2]} != w_vocab's "
      f"D={w_vocab_DV.shape[0]} (pass the [D, V] unembedding, transposed "
      "if the model stores [V, D])."
    )
  if targets_BT.shape != hidden_BTD.shape[:2]:
    raise ValueError(
      f"logprobs: targets must be [B, T] = {hidden_BTD.shape[:2]}, got "
      f"{targets_BT.shape}."
    )
  if not temperature > 0:
    raise ValueError(f"logprobs: temperature={temperature} must be > 0.")


def chunked_logprobs(
  hidden_BTD: jax.Array,
  w_vocab_DV: jax.Array,
  targets_BT: jax.Array,
  *,
  temperature: float = 1.0,
  block_t: int = BLOCK_T,
  block_v: int = BLOCK_V,
  with_lse: bool = False,
) -> tuple[jax.Array, ...]:
  """(logp_BT, entropy_BT) in fp32 of softmax(hidden @ w / temperature),
  and lse_BT (its logsumexp) when `with_lse`."""
  check(hidden_BTD, w_vocab_DV, targets_BT, temperature)
  B, T, D = hidden_BTD.shape
  V = w_vocab_DV.shape[1]
  N = B * T
  bt, bv = min(block_t, N), min(block_v, V)
  N_pad = backend.round_up(N, bt)
  h_ND = backend.pad_axis(hidden_BTD.reshape(N, D), 0, N_pad)
  t_N = backend.pad_axis(targets_BT.reshape(N).astype(jnp.int32), 0, N_pad)
  static = (float(temperature), bt, bv)
  outs = _logprobs(static, h_ND, w_vocab_DV, t_N)
  return unpad(outs, B, T, with_lse)


def unpad(outs_N, B, T, with_lse):
  """The (logp, entropy[, lse]) rows [B, T] of padded [N_pad] outputs."""
  return tuple(x[: B * T].reshape(B, T) for x in outs_N[: 3 if with_lse else 2])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _logprobs(static, h_ND, w_DV, t_N):
  return forward(static, h_ND, w_DV, t_N)


def _logprobs_fwd(static, h_ND, w_DV, t_N):
  _, ent_N, lse_N = outs = forward(static, h_ND, w_DV, t_N)
  return outs, (h_ND, w_DV, t_N, lse_N, ent_N)


def _logprobs_bwd(static, res, cotangents):
  h_ND, w_DV, t_N, lse_N, ent_N = res
  dh_ND, dw_DV = backward(static, h_ND, w_DV, t_N, lse_N, ent_N, *cotangents)
  return dh_ND, dw_DV, None


_logprobs.defvjp(_logprobs_fwd, _logprobs_bwd)


def _tile(h_bD, w_DV, j, bv, temperature):
  """Logits tile j (fp32, / temperature), its columns, and which are new."""
  V = w_DV.shape[1]
  s0 = jnp.minimum(j * bv, V - bv)
  w_Dv = jax.lax.dynamic_slice_in_dim(w_DV, s0, bv, axis=1)
  z_bv = jnp.dot(h_bD, w_Dv, preferred_element_type=jnp.float32)
  z_bv = z_bv / temperature
  cols_1v = s0 + jnp.arange(bv)[None]
  return z_bv, cols_1v, cols_1v >= j * bv, s0


def forward(static, h_ND, w_DV, t_N):
  """(logp_N, entropy_N, lse_N); N must divide by block_t."""
  temperature, bt, bv = static
  N, D = h_ND.shape
  nv = -(-w_DV.shape[1] // bv)

  def token_chunk(args):
    h_bD, t_b = args

    def vocab_tile(carry, j):
      m_b, l_b, s1_b, zt_b = carry
      z_bv, cols_1v, new_1v, _ = _tile(h_bD, w_DV, j, bv, temperature)
      z_bv = jnp.where(new_1v, z_bv, backend.NEG)
      m_new = jnp.maximum(m_b, z_bv.max(axis=1))
      alpha = jnp.exp(m_b - m_new)
      p_bv = jnp.where(new_1v, jnp.exp(z_bv - m_new[:, None]), 0.0)
      l_b = alpha * l_b + p_bv.sum(axis=1)
      s1_b = alpha * s1_b + (p_bv * z_bv).sum(axis=1)
      hit_bv = new_1v & (cols_1v == t_b[:, None])
      zt_b = zt_b + jnp.where(hit_bv, z_bv, 0.0).sum(axis=1)
      return (m_new, l_b, s1_b, zt_b), None

    zeros = jnp.zeros((bt,), jnp.float32)
    init = (jnp.full((bt,), backend.NEG, jnp.float32), zeros, zeros, zeros)
    (m_b, l_b, s1_b, zt_b), _ = jax.lax.scan(vocab_tile, init, jnp.arange(nv))
    lse_b = m_b + jnp.log(l_b)
    return zt_b - lse_b, lse_b - s1_b / l_b, lse_b

  out = jax.lax.map(
    token_chunk, (h_ND.reshape(N // bt, bt, D), t_N.reshape(N // bt, bt))
  )
  return tuple(x.reshape(N) for x in out)


def backward_any_rows(
  temperature, h_ND, w_DV, t_N, lse_N, ent_N, g_logp_N, g_ent_N, g_lse_N
):
  """`backward` in this module's own tiles for any N (rows padded with
  zero cotangents, which contribute nothing): the backward of the Pallas
  forward, whose saved rows are padded to its own, far smaller, tile."""
  N, V = h_ND.shape[0], w_DV.shape[1]
  bt, bv = min(BLOCK_T, N), min(BLOCK_V, V)
  N_pad = backend.round_up(N, bt)
  rows = [
    backend.pad_axis(x, 0, N_pad)
    for x in (h_ND, t_N, lse_N, ent_N, g_logp_N, g_ent_N, g_lse_N)
  ]
  dh_ND, dw_DV = backward((temperature, bt, bv), rows[0], w_DV, *rows[1:])
  return dh_ND[:N], dw_DV


def backward(static, h_ND, w_DV, t_N, lse_N, ent_N, g_logp_N, g_ent_N, g_lse_N):
  """(dh_ND, dw_DV) given the forward's lse and entropy and cotangents.

  d logp / dz_v = 1[v = t] - p_v;  d H / dz_v = -p_v (z_v - lse + H);
  d lse / dz_v = p_v.
  One of dh and dw is summed in fp32 across the whole loop, the other
  tile by tile and written once in its dtype: the fp32 one is the smaller,
  dh [N, D] when V > N (a 152k vocabulary), dw [D, V] when the rows
  outnumber the columns (a device's vocab shard, `rl.sharded_logprobs`).
  """
  temperature, bt, bv = static
  N, D = h_ND.shape
  chunks = tuple(
    x.reshape(N // bt, bt, *x.shape[1:])
    for x in (
      h_ND,
      t_N,
      lse_N,
      ent_N,
      g_logp_N.astype(jnp.float32),
      g_ent_N.astype(jnp.float32),
      g_lse_N.astype(jnp.float32),
    )
  )
  loop = _vocab_outer if w_DV.shape[1] > N else _rows_outer
  return loop(temperature, bv, chunks, w_DV)


def _tile_grads(rows, w_DV, j, bv, temperature):
  """(dh [bt, D], dw [D, bv], first column) of vocab tile j for one token
  chunk, in fp32; columns an earlier tile owns get zero."""
  h_bD, t_b, lse_b, ent_b, gl_b, ge_b, gz_b = rows
  z_bv, cols_1v, new_1v, s0 = _tile(h_bD, w_DV, j, bv, temperature)
  p_bv = jnp.exp(z_bv - lse_b[:, None])
  onehot_bv = (cols_1v == t_b[:, None]).astype(jnp.float32)
  # g_logp (1[v = t] - p) - g_H p (z - lse + H) + g_lse p
  dz_bv = gl_b[:, None] * onehot_bv + p_bv * (
    (gz_b - gl_b)[:, None]
    - ge_b[:, None] * (z_bv - lse_b[:, None] + ent_b[:, None])
  )
  dz_bv = jnp.where(new_1v, dz_bv, 0.0) / temperature
  w_Dv = jax.lax.dynamic_slice_in_dim(w_DV, s0, bv, axis=1)
  dh_bD = jnp.dot(
    dz_bv.astype(w_DV.dtype), w_Dv.T, preferred_element_type=jnp.float32
  )
  dw_Dv = jnp.dot(
    h_bD.T, dz_bv.astype(h_bD.dtype), preferred_element_type=jnp.float32
  )
  return dh_bD, dw_Dv, s0


def _vocab_outer(temperature, bv, chunks, w_DV):
  """Vocab tiles outside, token chunks inside: each dw tile is summed over
  all tokens in fp32 and written once in w's dtype; dh [N, D] is the fp32
  accumulator. The slid last tile goes first, its overlap masked to
  zeros, which the tile before it then overwrites: each write is a plain
  in-place update (reading the old columns back made XLA copy the whole
  [D, V] buffer)."""
  D, V = w_DV.shape
  nv = -(-V // bv)
  n, bt = chunks[0].shape[:2]

  def vocab_tile(carry, step):
    dh_nbD, dw_DV = carry
    j = (step + nv - 1) % nv  # nv - 1, 0, 1, ..., nv - 2

    def token_chunk(dw_Dv, args):
      *rows, dh_bD = args
      dh_tile, dw_tile, _ = _tile_grads(rows, w_DV, j, bv, temperature)
      return dw_Dv + dw_tile, dh_bD + dh_tile

    dw_Dv, dh_nbD = jax.lax.scan(
      token_chunk, jnp.zeros((D, bv), jnp.float32), (*chunks, dh_nbD)
    )
    s0 = jnp.minimum(j * bv, V - bv)
    dw_DV = jax.lax.dynamic_update_slice_in_dim(
      dw_DV, dw_Dv.astype(dw_DV.dtype), s0, axis=1
    )
    return (dh_nbD, dw_DV), None

  init = (jnp.zeros((n, bt, D), jnp.float32), jnp.zeros_like(w_DV))
  (dh_nbD, dw_DV), _ = jax.lax.scan(vocab_tile, init, jnp.arange(nv))
  return dh_nbD.reshape(n * bt, D).astype(chunks[0].dtype), dw_DV


def _rows_outer(temperature, bv, chunks, w_DV):
  """Token chunks outside, vocab tiles inside: each dh chunk is summed over
  all columns in fp32 and written once; dw [D, V] is the fp32 accumulator
  (tiles add in place; the slid last tile's overlap adds zeros)."""
  D, V = w_DV.shape
  nv = -(-V // bv)
  n, bt = chunks[0].shape[:2]

  def token_chunk(dw_DV, rows):
    def vocab_tile(carry, j):
      dh_bD, dw_DV = carry
      dh_tile, dw_tile, s0 = _tile_grads(rows, w_DV, j, bv, temperature)
      dw_Dv = jax.lax.dynamic_slice_in_dim(dw_DV, s0, bv, axis=1) + dw_tile
      dw_DV = jax.lax.dynamic_update_slice_in_dim(dw_DV, dw_Dv, s0, axis=1)
      return (dh_bD + dh_tile, dw_DV), None

    init = (jnp.zeros((bt, D), jnp.float32), dw_DV)
    (dh_bD, dw_DV), _ = jax.lax.scan(vocab_tile, init, jnp.arange(nv))
    return dw_DV, dh_bD.astype(rows[0].dtype)

  dw_DV, dh_nbD = jax.lax.scan(
    token_chunk, jnp.zeros((D, V), jnp.float32), chunks
  )
  return dh_nbD.reshape(n * bt, D), dw_DV.astype(w_DV.dtype)
