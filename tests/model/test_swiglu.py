"""The hand-written SwiGLU backward equals autodiff of the plain maths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.model import swiglu


def _inputs(dtype, with_bias: bool, R=37, D=24, F=40):
  k = jax.random.split(jax.random.key(3), 7)
  x = jax.random.normal(k[0], (R, D), dtype)
  ws = [
    jax.random.normal(k[i], s, dtype) * 0.2
    for i, s in zip((1, 2, 3), ((D, F), (D, F), (F, D)), strict=True)
  ]
  bias = {}
  if with_bias:
    bias = {
      name: jax.random.normal(k[i], (n,), dtype) * 0.1
      for i, name, n in (
        (4, "b_gate_F", F),
        (5, "b_up_F", F),
        (6, "b_down_D", D),
      )
    }
  return x, ws, bias


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize(
  "dtype, tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)]
)
def test_values_and_grads_match_autodiff(with_bias, dtype, tol):
  x, ws, bias = _inputs(dtype, with_bias)
  cot = jax.random.normal(jax.random.key(9), (x.shape[0], x.shape[1]), dtype)

  def loss(fn):
    def f(x, ws, bias):
      out = fn(x, *ws, **bias)
      return (out.astype(jnp.float32) * cot.astype(jnp.float32)).sum()

    return f

  argnums = (0, 1, 2) if with_bias else (0, 1)
  got = jax.value_and_grad(loss(swiglu.swiglu_mlp), argnums)(x, ws, bias)
  want = jax.value_and_grad(loss(swiglu.swiglu_mlp_ref), argnums)(x, ws, bias)
  flat_got, flat_want = jax.tree.leaves(got), jax.tree.leaves(want)
  assert len(flat_got) == len(flat_want) == (8 if with_bias else 5)
  for g, w in zip(flat_got, flat_want, strict=True):
    assert g.dtype == w.dtype
    g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
    scale = max(np.abs(w).max(), 1e-6)
    np.testing.assert_array_less(np.abs(g - w).max() / scale, tol)


def test_partial_biases_refused():
  x, ws, _ = _inputs(jnp.float32, False)
  with pytest.raises(ValueError, match="all three biases"):
    swiglu.swiglu_mlp(x, *ws, b_gate_F=jnp.zeros(ws[0].shape[1]))
