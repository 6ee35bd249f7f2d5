"""Logprobs on a mesh of the 8 fake CPU devices, with the fused kernel and
with the chunked XLA loop: each device scores its share of rows x vocab
columns, and the values and gradients are the twin's."""

import contextlib
import functools

import jax
import numpy as np
import pytest

from emojax import kernels, sharding
from emojax.kernels import backend
from emojax.rl import sharded_logprobs

# Shares that are whole GPU blocks (64 tokens, 128 columns), so the kernel
# sees them unpadded.
B, C, D, V = 8, 64, 64, 1024


def _inputs(V=V):
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


def _spied(fn, seen):
  """fn, noting the (rows, columns) each call of it is given."""

  def spy(h, w, t, **kw):
    seen.append((h.shape[0] * h.shape[1], w.shape[1]))
    return fn(h, w, t, **kw)

  return spy


# The fused kernel's Triton code path in Pallas's interpreter (on plain CPU
# the fused path would take XLA's chunked one), and the chunked loop.
IMPLS = {
  "fused": (
    kernels.fused_logprobs,
    lambda: backend.target("gpu", simulate=True),
  ),
  "chunked": (kernels.chunked_logprobs, contextlib.nullcontext),
}


# (mesh, rules changed, V, the kernel's rows, its columns). Rows are
# gathered over the FSDP axis and its columns split instead when the group's
# rows are fewer than the columns (512 < 1024); not when they are more
# (512 > 256); not gathered when the FSDP axis does not split rows. Rules
# that put the vocab on the rows' axis (and the weights' D nowhere) lose
# the vocab split: a device's columns would belong to other devices' rows.
FSDP8 = {"data": 1, "fsdp": 8, "tensor": 1}
CASES = {
  "fsdp8": (FSDP8, {}, 1024, 512, 128),
  "fsdp8-few-columns": (FSDP8, {}, 256, 64, 256),
  "dp2-fsdp2-tp2": ({"data": 2, "fsdp": 2, "tensor": 2}, {}, 1024, 256, 256),
  "tp8": ({"data": 1, "fsdp": 1, "tensor": 8}, {}, 1024, 512, 128),
  "rows-on-data": (
    {"data": 2, "fsdp": 4, "tensor": 1},
    {"batch": "data"},
    1024,
    256,
    256,
  ),
  "vocab-on-rows-axis": (
    FSDP8,
    {"vocab": "fsdp", "embed": None},
    1024,
    64,
    1024,
  ),
}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_each_device_scores_its_share_and_matches_the_twin(case, impl):
  axes, changed, V, rows, cols = CASES[case]
  fn, context = IMPLS[impl]
  h, w, t, g = _inputs(V)
  mesh = sharding.make_mesh(axes)
  rules = dict(sharding.rules_dict(None), **changed)
  seen = []
  placed = functools.partial(sharded_logprobs.logprobs, fn=_spied(fn, seen))
  run = jax.jit(_value_and_grads(placed, t, g))
  with sharding.use_rules(mesh, rules), context():
    got = run(h, w)
  # Left to XLA, the fused kernel got every row on every device, and the
  # chunked loop all-reduced each logits tile over the devices.
  assert seen == [(rows, cols)]
  want = jax.jit(_value_and_grads(kernels.fused_logprobs_ref, t, g))(h, w)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


def test_outside_a_mesh_it_is_the_kernel():
  h, w, t, g = _inputs()
  fn = kernels.fused_logprobs
  got = sharded_logprobs.logprobs(h, w, t, temperature=0.7, fn=fn)
  want = kernels.fused_logprobs(h, w, t, temperature=0.7)
  for a, b in zip(got, want, strict=True):
    np.testing.assert_array_equal(a, b)
