"""Which Pallas lowering runs, and block sizes per backend.

Pallas has no CPU lowering, so on CPU every kernel runs in interpret mode
(slow, for tests); on GPU it lowers through Triton, on TPU through Mosaic.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

# Finite "minus infinity" for masked scores: exp(NEG - m) is exactly 0 and,
# unlike -inf, NEG - NEG is 0 rather than NaN for fully masked rows.
NEG = -1e30

# (platform, simulate, hopper) set by `target`; None: trace for this host.
_TARGET = contextvars.ContextVar("emojax_kernels_target", default=None)

# Which GPU flash-attention kernels run on a Hopper GPU: 'auto' (Mosaic GPU
# on compute capability 9.x, Triton elsewhere), 'mosaic' or 'triton'.
GPU_KERNELS_ENV = "EMOJAX_PALLAS_GPU"


@contextlib.contextmanager
def target(plat: str, *, simulate: bool = False, hopper: bool = False):
  """Traces kernels for `plat` ('gpu' or 'tpu') whatever this host has.

  Cross-lowering: `with target('gpu'): jax.jit(f).trace(...).lower(
  lowering_platforms=('cuda',))` runs Pallas's Triton lowering (block
  shapes, supported ops) on a CPU-only machine; for 'tpu', Mosaic's lowering
  also needs a chip, given by `jax.sharding.use_abstract_mesh` with an
  `AbstractDevice`. Running the result needs the device. hopper=True
  picks the Hopper (Mosaic GPU) kernels where a kernel has them.

  simulate=True runs the `plat` code path (its blocks, layouts and padding)
  on this host instead: TPU kernels in Pallas's TPU interpreter (which
  also poisons uninitialised memory and checks bounds), Hopper kernels in
  the Mosaic GPU interpreter (threads, barriers, TMA), Triton kernels in
  the generic interpreter. Slow; for tests.

  jax.jit caches traces by function, not by target: jit a fresh function
  inside the context.
  """
  if plat not in ("gpu", "tpu"):
    raise ValueError(
      f"kernels.backend.target: want 'gpu' or 'tpu', got {plat!r}."
    )
  token = _TARGET.set((plat, simulate, hopper))
  try:
    yield
  finally:
    _TARGET.reset(token)


def platform(interpret: bool) -> str:
  """'interpret', 'gpu' or 'tpu': the code path a kernel call takes."""
  if interpret:
    return "interpret"
  if _TARGET.get() is not None:
    return _TARGET.get()[0]
  backend = jax.default_backend()
  if backend == "cpu":
    return "interpret"
  if backend in ("gpu", "cuda", "rocm"):
    return "gpu"
  return "tpu"


def simulating() -> bool:
  """Whether `target(..., simulate=True)` is in force."""
  target = _TARGET.get()
  return target is not None and target[1]


def hopper() -> bool:
  """Whether GPU kernels with a Hopper (Mosaic GPU) version use it.

  Under `target`, its `hopper` flag; on a GPU, $EMOJAX_PALLAS_GPU
  ('mosaic', 'triton', or 'auto' = compute capability 9.x).
  """
  target = _TARGET.get()
  if target is not None:
    return target[2]
  choice = os.environ.get(GPU_KERNELS_ENV, "auto")
  if choice not in ("auto", "mosaic", "triton"):
    raise ValueError(
      f"${GPU_KERNELS_ENV}={choice!r}: want 'auto', 'mosaic' or 'triton'."
    )
  if choice != "auto":
    return choice == "mosaic"
  return hopper_device()


def hopper_device() -> bool:
  """Whether this host's first device is a Hopper GPU (compute capability
  9.x: H100, H200), whatever $EMOJAX_PALLAS_GPU says."""
  capability = getattr(jax.devices()[0], "compute_capability", "")
  return str(capability).split(".")[0] == "9"


def interpret(plat: str):
  """pallas_call's `interpret` argument for the code path `plat`."""
  if plat == "interpret":
    return True
  if not simulating():
    return False
  if plat == "tpu":
    from jax.experimental.pallas import tpu as pltpu

    return pltpu.InterpretParams()
  return True


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


def flash_kw(causal, offset, use_seg, bq, bk, E) -> dict:
  """The keyword arguments every flash-attention kernel body takes."""
  return dict(
    causal=causal, offset=offset, use_seg=use_seg, bq=bq, bk=bk, scale=E**-0.5
  )


def causal_kv_blocks(q0, n_rows, bk, nk):
  """(unmasked, seen) under a causal mask for the queries at key positions
  q0 .. q0 + n_rows - 1: how many kv blocks (of bk, nk in all) they see,
  and how many of those lie wholly at or before q0, so need no mask."""
  seen = jnp.minimum(nk, jax.lax.div(q0 + n_rows - 1, bk) + 1)
  return jnp.minimum(jax.lax.div(q0 + 1, bk), seen), seen


def causal_q_blocks(k0, n_keys, bq, nq, offset):
  """(first, unmasked) under a causal mask for the keys at positions k0 ..
  k0 + n_keys - 1: the first query block (of bq, nq in all; query 0 at key
  position `offset`) that sees any of them, and the first whose every
  query sees all of them."""
  first = jax.lax.div(jnp.maximum(k0 - offset, 0), bq)
  # ceil((last key - offset) / bq), as a floor of nonnegatives.
  last = k0 + n_keys - 1 - offset
  unmasked = jax.lax.div(jnp.maximum(last + bq - 1, 0), bq)
  return jnp.minimum(first, nq), jnp.minimum(unmasked, nq)


def masked_scores(q, k, q_seg, kv_seg, q0, k0, causal, scale):
  """Masked scaled scores [bq, bk] (fp32) and the mask.

  q_seg is a [bq, 1] column and kv_seg a [1, bk] row (or both None);
  padding keys carry -1, which no query's id equals, so one compare masks
  both other segments and padding (`flash_attention` sets this up).
  """
  s = dot(q, k, (1, 1)) * scale
  mask = None
  if causal:
    rows = q0 + jax.lax.broadcasted_iota(jnp.int32, s.shape, 0)
    cols = k0 + jax.lax.broadcasted_iota(jnp.int32, s.shape, 1)
    mask = rows >= cols
  if q_seg is not None:
    seg = q_seg == kv_seg
    mask = seg if mask is None else mask & seg
  if mask is not None:
    s = jnp.where(mask, s, NEG)
  return s, mask


def probs_and_dscores(s, mask, lse, do, v, delta):
  """Flash backward for one block: probabilities recomputed from the saved
  logsumexp (0 where masked) and the scores' gradient p * (dO v^T - delta).
  """
  p = jnp.exp(s - lse)
  if mask is not None:
    p = jnp.where(mask, p, 0.0)
  return p, p * (dot(do, v, (1, 1)) - delta)
