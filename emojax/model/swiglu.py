"""The SwiGLU MLP `(silu(x W_g + b_g) * (x W_u + b_u)) W_d + b_d`, with a
hand-written backward.

Why not autodiff: XLA:CPU (jax 0.10-0.11) fuses the SiLU derivative into
the transpose that feeds each weight-gradient matmul, and that fused,
strided loop ran at a fraction of memory speed: 5x the forward time for the
whole MLP. Materialising the two pre-activation gradients first (an
optimisation barrier) and writing the weight gradients as plain
contractions over the row axis brings the backward to about 2.5x the
forward on CPU. On GPU/TPU the result is the same maths; the barrier only
fixes the order of two elementwise ops.
"""

from __future__ import annotations

import jax

from emojax import sharding


def _pre(x_RD, w_gate_DF, w_up_DF, b_gate_F, b_up_F):
  gate_RF = x_RD @ w_gate_DF
  up_RF = x_RD @ w_up_DF
  if b_gate_F is not None:
    gate_RF = gate_RF + b_gate_F[None]
    up_RF = up_RF + b_up_F[None]
  return gate_RF, up_RF


def _forward(x_RD, w_gate_DF, w_up_DF, w_down_FD, biases, act_axes):
  b_gate_F, b_up_F, b_down_D = biases
  gate_RF, up_RF = _pre(x_RD, w_gate_DF, w_up_DF, b_gate_F, b_up_F)
  act_RF = sharding.constrain(jax.nn.silu(gate_RF) * up_RF, act_axes)
  out_RD = act_RF @ w_down_FD
  if b_down_D is not None:
    out_RD = out_RD + b_down_D[None]
  return out_RD, (gate_RF, up_RF, act_RF)


def _mlp(x_RD, w_gate_DF, w_up_DF, w_down_FD, biases, act_axes):
  return _forward(x_RD, w_gate_DF, w_up_DF, w_down_FD, biases, act_axes)[0]


def _mlp_fwd(x_RD, w_gate_DF, w_up_DF, w_down_FD, biases, act_axes):
  out_RD, (gate_RF, up_RF, act_RF) = _forward(
    x_RD, w_gate_DF, w_up_DF, w_down_FD, biases, act_axes
  )
  res = (x_RD, w_gate_DF, w_up_DF, w_down_FD, gate_RF, up_RF, act_RF)
  return out_RD, (res, biases)


def _mlp_bwd(act_axes, saved, dout_RD):
  (x_RD, w_gate_DF, w_up_DF, w_down_FD, gate_RF, up_RF, act_RF), biases = saved
  dact_RF = dout_RD @ w_down_FD.T
  sig_RF = jax.nn.sigmoid(gate_RF)
  dsilu_RF = sig_RF * (1 + gate_RF * (1 - sig_RF))
  dgate_RF, dup_RF = jax.lax.optimization_barrier(
    (dact_RF * up_RF * dsilu_RF, dact_RF * gate_RF * sig_RF)
  )
  rows = (((0,), (0,)), ((), ()))  # contract the row axis of both
  dw_gate_DF = jax.lax.dot_general(x_RD, dgate_RF, rows)
  dw_up_DF = jax.lax.dot_general(x_RD, dup_RF, rows)
  dw_down_FD = jax.lax.dot_general(act_RF, dout_RD, rows)
  dx_RD = dgate_RF @ w_gate_DF.T + dup_RF @ w_up_DF.T
  dbiases = (None, None, None)
  if biases[0] is not None:
    dbiases = (dgate_RF.sum(0), dup_RF.sum(0), dout_RD.sum(0))
  return (
    dx_RD,
    dw_gate_DF.astype(w_gate_DF.dtype),
    dw_up_DF.astype(w_up_DF.dtype),
    dw_down_FD.astype(w_down_FD.dtype),
    jax.tree.map(lambda d, b: d.astype(b.dtype), dbiases, biases),
  )


_swiglu = jax.custom_vjp(_mlp, nondiff_argnums=(5,))
_swiglu.defvjp(_mlp_fwd, _mlp_bwd)


def swiglu_mlp(
  x_RD: jax.Array,
  w_gate_DF: jax.Array,
  w_up_DF: jax.Array,
  w_down_FD: jax.Array,
  *,
  b_gate_F: jax.Array | None = None,
  b_up_F: jax.Array | None = None,
  b_down_D: jax.Array | None = None,
  act_axes: tuple = ("batch", "mlp"),
) -> jax.Array:
  """Rows `x_RD` -> `out_RD`; biases all given or all None.

  `act_axes` are the logical axes of the hidden activation `[R, F]`.
  """
  biases = (b_gate_F, b_up_F, b_down_D)
  if any(b is None for b in biases) and any(b is not None for b in biases):
    raise ValueError("swiglu_mlp: give all three biases or none.")
  return _swiglu(x_RD, w_gate_DF, w_up_DF, w_down_FD, biases, tuple(act_axes))


def swiglu_mlp_ref(x_RD, w_gate_DF, w_up_DF, w_down_FD, **kw) -> jax.Array:
  """The same maths through autodiff (the twin the tests compare against)."""
  gate_RF, up_RF = _pre(
    x_RD, w_gate_DF, w_up_DF, kw.get("b_gate_F"), kw.get("b_up_F")
  )
  out_RD = (jax.nn.silu(gate_RF) * up_RF) @ w_down_FD
  b_down_D = kw.get("b_down_D")
  return out_RD if b_down_D is None else out_RD + b_down_D[None]
