"""Which Pallas lowering runs, and block sizes per backend.

Pallas has no CPU lowering, so on CPU every kernel runs in interpret mode
(slow, for tests); on GPU it lowers through Triton, on TPU through Mosaic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

# Finite "minus infinity" for masked scores: exp(NEG - m) is exactly 0 and,
# unlike -inf, NEG - NEG is 0 rather than NaN for fully masked rows.
NEG = -1e30


def platform(interpret: bool) -> str:
  """'interpret', 'gpu' or 'tpu': the lowering a kernel call will use."""
  if interpret:
    return "interpret"
  backend = jax.default_backend()
  if backend == "cpu":
    return "interpret"
  if backend in ("gpu", "cuda", "rocm"):
    return "gpu"
  return "tpu"


def compiler_params(plat: str, num_warps: int, num_stages: int):
  """Triton launch parameters on GPU; the defaults elsewhere."""
  if plat == "gpu":
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages)
  return None


def dot(a: jax.Array, b: jax.Array, contract: tuple[int, int]) -> jax.Array:
  """2-D matmul contracting a's and b's given dims, accumulating in fp32."""
  return jax.lax.dot_general(
    a,
    b,
    (((contract[0],), (contract[1],)), ((), ())),
    preferred_element_type=jnp.float32,
  )


def round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def pad_axis(x: jax.Array, axis: int, size: int, value=0) -> jax.Array:
  """Pads `axis` of x at the end up to `size`."""
  if x.shape[axis] == size:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, size - x.shape[axis])
  return jnp.pad(x, widths, constant_values=value)


def next_pow2(n: int) -> int:
  return pl.next_power_of_2(n)
