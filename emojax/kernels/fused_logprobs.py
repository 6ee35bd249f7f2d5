"""Fused per-token logprob and entropy: a Pallas forward over vocab tiles.

One program per block of tokens walks the vocabulary in tiles, computing
each [block_t, block_v] logits tile by a loop over D chunks and folding it
into an online logsumexp, the target's logit and the entropy sum; no
logits leave the chip. The backward is `xla_logprobs.backward`
(recompute each tile from the saved logsumexp, matmuls through XLA) in
XLA's own tiles (1024 x 8192), not the kernel's: the kernel's 64 x 128
made a scan of 150k tiny matmuls at V = 152k, N = 8k.

Which path runs: this Pallas kernel on GPU (Triton) or with
interpret=True; on TPU `fused_logprobs_tpu` (Mosaic: the vocab tiles as a
grid axis); on CPU without interpret the XLA `chunked_logprobs`, with the
same values and gradients.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from emojax.kernels import backend, fused_logprobs_tpu, xla_logprobs

# (block_t, block_v, block_d, num_warps, num_stages); block_d None = all D.
_BLOCKS = {"gpu": (64, 128, 64, 4, 3), "interpret": (16, 32, None, 0, 0)}


def _blocks(plat, N, V, dtype):
  """_BLOCKS' entry for `plat`; TPU's depend on the shapes."""
  if plat == "tpu":
    return (*fused_logprobs_tpu.blocks(N, V, dtype), None, 0, 0)
  return _BLOCKS[plat]


def fused_logprobs_ref(
  hidden_BTD: jax.Array,
  w_vocab_DV: jax.Array,
  targets_BT: jax.Array,
  *,
  temperature: float = 1.0,
  block_t: int | None = None,
  block_v: int | None = None,
  interpret: bool = False,
  with_lse: bool = False,
) -> tuple[jax.Array, ...]:
  """Plain-jnp twin: materialises the [B, T, V] fp32 logits."""
  del block_t, block_v, interpret
  xla_logprobs.check(hidden_BTD, w_vocab_DV, targets_BT, temperature)
  logits_BTV = jnp.einsum(
    "btd,dv->btv", hidden_BTD, w_vocab_DV, preferred_element_type=jnp.float32
  )
  z_BTV = logits_BTV / temperature
  logp_BTV = jax.nn.log_softmax(z_BTV, axis=-1)
  logp_BT = jnp.take_along_axis(logp_BTV, targets_BT[..., None], axis=-1)
  entropy_BT = -jnp.sum(jnp.exp(logp_BTV) * logp_BTV, axis=-1)
  outs = (logp_BT[..., 0], entropy_BT, jax.nn.logsumexp(z_BTV, axis=-1))
  return outs if with_lse else outs[:2]


def fused_logprobs(
  hidden_BTD: jax.Array,
  w_vocab_DV: jax.Array,
  targets_BT: jax.Array,
  *,
  temperature: float = 1.0,
  block_t: int | None = None,
  block_v: int | None = None,
  interpret: bool = False,
  with_lse: bool = False,
) -> tuple[jax.Array, ...]:
  """(logp_BT, entropy_BT) in fp32 of softmax(hidden @ w / temperature),
  and lse_BT (its logsumexp) when `with_lse`.

  Never holds [B, T, V]. Blocks default per backend. Differentiable in
  hidden and w_vocab.
  """
  xla_logprobs.check(hidden_BTD, w_vocab_DV, targets_BT, temperature)
  plat = "interpret" if interpret else backend.platform(False)
  # On CPU the Pallas interpreter is for tests: training takes XLA's path.
  if plat == "interpret" and not interpret:
    return xla_logprobs.chunked_logprobs(
      hidden_BTD,
      w_vocab_DV,
      targets_BT,
      temperature=temperature,
      with_lse=with_lse,
      **{
        k: v
        for k, v in (("block_t", block_t), ("block_v", block_v))
        if v is not None
      },
    )
  B, T, D = hidden_BTD.shape
  V = w_vocab_DV.shape[1]
  blocks = _blocks(plat, B * T, V, hidden_BTD.dtype)
  bt, bv, bd, warps, stages = blocks
  bt, bv = block_t or bt, block_v or bv
  bd = bd or D
  if D % bd:
    raise ValueError(
      f"fused_logprobs: hidden size D={D} must divide by {bd} on {plat}; "
      "use chunked_logprobs for this model."
    )
  if V < bv:
    w_vocab_DV = backend.pad_axis(w_vocab_DV, 1, bv)
  N = B * T
  N_pad = backend.round_up(N, bt)
  h_ND = backend.pad_axis(hidden_BTD.reshape(N, D), 0, N_pad)
  t_N = backend.pad_axis(targets_BT.reshape(N).astype(jnp.int32), 0, N_pad)
  static = (float(temperature), bt, bv, bd, V, plat, warps, stages)
  outs = _fused(static, h_ND, w_vocab_DV, t_N)
  return xla_logprobs.unpad(outs, B, T, with_lse)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(static, h_ND, w_DV, t_N):
  return tuple(_pallas_forward(static, h_ND, w_DV, t_N))


def _fused_fwd(static, h_ND, w_DV, t_N):
  _, ent_N, lse_N = outs = tuple(_pallas_forward(static, h_ND, w_DV, t_N))
  return outs, (h_ND, w_DV, t_N, lse_N, ent_N)


def _fused_bwd(static, res, cotangents):
  temperature, _, _, _, V, *_ = static
  h_ND, w_DV, t_N, lse_N, ent_N = res
  # Padded vocab columns (V < block_v) must not enter the softmax again.
  dh_ND, dw_DV = xla_logprobs.backward_any_rows(
    temperature, h_ND, w_DV[:, :V], t_N, lse_N, ent_N, *cotangents
  )
  return dh_ND, backend.pad_axis(dw_DV, 1, w_DV.shape[1]), None


_fused.defvjp(_fused_fwd, _fused_bwd)


def _pallas_forward(static, h_ND, w_DV, t_N):
  temperature, bt, bv, bd, V, plat, warps, stages = static
  if plat == "tpu":
    return fused_logprobs_tpu.forward(
      h_ND,
      w_DV,
      t_N,
      temperature=temperature,
      V=V,
      bt=bt,
      bv=bv,
      interpret=backend.interpret(plat),
    )
  N, D = h_ND.shape
  Vw = w_DV.shape[1]
  kernel = functools.partial(
    _kernel, bv=bv, bd=bd, V=V, temperature=temperature
  )
  vec = jax.ShapeDtypeStruct((N,), jnp.float32)
  vec_spec = pl.BlockSpec((bt,), lambda i: (i,))
  return pl.pallas_call(
    kernel,
    out_shape=[vec, vec, vec],
    grid=(N // bt,),
    in_specs=[
      pl.BlockSpec((bt, D), lambda i: (i, 0)),
      pl.BlockSpec((D, Vw), lambda i: (0, 0)),
      pl.BlockSpec((bt,), lambda i: (i,)),
    ],
    out_specs=[vec_spec, vec_spec, vec_spec],
    interpret=backend.interpret(plat),
    compiler_params=backend.compiler_params(plat, warps, stages),
    name="emojax_fused_logprobs",
  )(h_ND, w_DV, t_N)


def _kernel(h_ref, w_ref, t_ref, logp_ref, ent_ref, lse_ref, **kw):
  bv, bd, V, temperature = kw["bv"], kw["bd"], kw["V"], kw["temperature"]
  bt, D = h_ref.shape
  Vw = w_ref.shape[1]
  t = t_ref[...]

  def vocab_tile(j, carry):
    m, den, s1, zt = carry
    # The last tile slides back to end at Vw; columns below j*bv are done.
    s0 = jnp.minimum(j * bv, Vw - bv)

    def d_chunk(c, z):
      ds = pl.ds(pl.multiple_of(c * bd, bd), bd)
      return z + backend.dot(h_ref[:, ds], w_ref[ds, pl.ds(s0, bv)], (1, 0))

    z = jax.lax.fori_loop(0, D // bd, d_chunk, jnp.zeros((bt, bv), jnp.float32))
    z = z / temperature
    cols = s0 + jax.lax.broadcasted_iota(jnp.int32, (bt, bv), 1)
    new = (cols >= j * bv) & (cols < V)
    z = jnp.where(new, z, backend.NEG)
    m_new = jnp.maximum(m, jnp.max(z, axis=1))
    alpha = jnp.exp(m - m_new)
    p = jnp.where(new, jnp.exp(z - m_new[:, None]), 0.0)
    den = alpha * den + jnp.sum(p, axis=1)
    s1 = alpha * s1 + jnp.sum(p * z, axis=1)
    zt = zt + jnp.sum(jnp.where(new & (cols == t[:, None]), z, 0.0), axis=1)
    return m_new, den, s1, zt

  zeros = jnp.zeros((bt,), jnp.float32)
  init = (jnp.full((bt,), backend.NEG, jnp.float32), zeros, zeros, zeros)
  nv = -(-V // bv)
  m, den, s1, zt = jax.lax.fori_loop(0, nv, vocab_tile, init)
  lse = m + jnp.log(den)
  logp_ref[...] = zt - lse
  ent_ref[...] = lse - s1 / den
  lse_ref[...] = lse
