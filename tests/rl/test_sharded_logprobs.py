"""The fused logprob kernel on a mesh of the 8 fake CPU devices: each
device scores its own rows (and its vocab columns where the rules split
them), and the values and gradients are the twin's."""

import jax
import numpy as np
import pytest

from emojax import kernels, sharding
from emojax.kernels import backend
from emojax.rl import sharded_logprobs

# Shares that are whole GPU blocks (64 tokens, 128 columns), so the kernel
# sees them unpadded.
B, C, D, V = 8, 64, 64, 1024


def _inputs():
  ks = jax.random.split(jax.random.key(0), 4)
  h = jax.random.normal(ks[0], (B, C, D))
  w = jax.random.normal(ks[1], (D, V)) * D**-0.5
  t = jax.random.randint(ks[2], (B, C), 0, V)
  g = jax.random.normal(ks[3], (2, B, C))
  return h, w, t, g


def _value_and_grads(fn, t, g):
  def run(h, w):
    out, vjp = jax.vjp(lambda h, w: fn(h, w, t, temperature=0.7), h, w)
    return out, vjp((g[0], g[1]))

  return run


def _kernel_inputs(jaxpr):
  """Shapes of (hidden, weights) at every fused-logprobs Pallas call."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "pallas_call":
      found.append(tuple(v.aval.shape for v in eqn.invars[:2]))
    for sub in jax.core.jaxprs_in_params(eqn.params):
      found += _kernel_inputs(sub)
  return found


@pytest.mark.parametrize(
  "axes,rows,cols",
  [
    ({"data": 1, "fsdp": 8, "tensor": 1}, 8, 1),
    ({"data": 2, "fsdp": 2, "tensor": 2}, 4, 2),
    ({"data": 1, "fsdp": 1, "tensor": 8}, 1, 8),
  ],
  ids=["fsdp8", "dp2-fsdp2-tp2", "tp8"],
)
def test_each_device_scores_its_share_and_matches_the_twin(axes, rows, cols):
  h, w, t, g = _inputs()
  mesh = sharding.make_mesh(axes)
  fn = _value_and_grads(sharded_logprobs.fused_logprobs, t, g)
  # The Triton code path in Pallas's interpreter (on plain CPU the fused
  # path would take XLA's chunked one).
  with sharding.use_rules(mesh), backend.target("gpu", simulate=True):
    shapes = _kernel_inputs(jax.make_jaxpr(fn)(h, w).jaxpr)
    got = jax.jit(fn)(h, w)
  # XLA gathers a bare Pallas call's operands onto every device (all rows
  # on each): here the forward kernel sees one device's rows and columns.
  assert ((B * C // rows, D), (D, V // cols)) in shapes, shapes
  want = jax.jit(_value_and_grads(kernels.fused_logprobs_ref, t, g))(h, w)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


def test_outside_a_mesh_it_is_the_kernel():
  h, w, t, g = _inputs()
  got = sharded_logprobs.fused_logprobs(h, w, t, temperature=0.7)
  want = kernels.fused_logprobs(h, w, t, temperature=0.7)
  for a, b in zip(got, want, strict=True):
    np.testing.assert_array_equal(a, b)


def test_rules_that_split_rows_and_vocab_on_one_axis_split_rows_only():
  h, w, t, g = _inputs()
  mesh = sharding.make_mesh({"data": 1, "fsdp": 8, "tensor": 1})
  rules = dict(sharding.rules_dict(None), vocab="fsdp")
  fn = _value_and_grads(sharded_logprobs.fused_logprobs, t, g)
  with sharding.use_rules(mesh, rules), backend.target("gpu", simulate=True):
    shapes = _kernel_inputs(jax.make_jaxpr(fn)(h, w).jaxpr)
    got = jax.jit(fn)(h, w)
  assert ((B * C // 8, D), (D, V)) in shapes, shapes
  want = jax.jit(_value_and_grads(kernels.fused_logprobs_ref, t, g))(h, w)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)
