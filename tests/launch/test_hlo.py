"""launch/benchmarks/_hlo.py: collective bytes of compiled programs, on the
8 fake CPU devices, against what the program was written to move."""

import jax
import jax.numpy as jnp
import launch_scripts
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from emojax import sharding

hlo = launch_scripts.load("benchmarks/_hlo")


def _compiled_text(body, x):
  mesh = sharding.make_mesh({"data": 1, "fsdp": 8, "tensor": 1})
  fn = jax.shard_map(body, mesh=mesh, in_specs=P("fsdp"), out_specs=P("fsdp"))
  x = jax.device_put(x, NamedSharding(mesh, P("fsdp")))
  return jax.jit(fn).lower(x).compile().as_text()


def test_loops_multiply_their_collectives():
  # A psum of one device's f32[8, 16] in a loop of 5 inside a loop of 3,
  # and one all_gather of it outside (f32[64, 16] gathered).
  def body(a_816):
    def outer(i, c):
      def inner(j, c):
        return c + jax.lax.psum(a_816 * (i + j), "fsdp")

      return jax.lax.fori_loop(0, 5, inner, c)

    c = jax.lax.fori_loop(0, 3, outer, jnp.zeros_like(a_816))
    g = jax.lax.all_gather(a_816, "fsdp", tiled=True)
    return c + g.sum(0, keepdims=True)

  x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 16)), jnp.float32)
  got, unknown = hlo.collective_bytes(_compiled_text(body, x))
  assert unknown == 0
  assert got["all-reduce"] == 3 * 5 * 8 * 16 * 4
  assert got["all-gather"] == 64 * 16 * 4
  assert got["reduce-scatter"] == got["all-to-all"] == 0


def test_a_program_without_collectives_moves_nothing():
  text = jax.jit(lambda x: x * 2).lower(jnp.ones(4)).compile().as_text()
  got, unknown = hlo.collective_bytes(text)
  assert set(got.values()) == {0} and unknown == 0
