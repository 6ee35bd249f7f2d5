"""What differs when a run spans several JAX processes (hosts).

Every process reads the same global batch (the pipeline does not shard
rows by process) and does the same host work: tokenising, rewards,
advantages, the dynamic-sampling decisions. So those decisions are
identical everywhere, with no cross-host reductions to get wrong; only the
device work is split, by the mesh. What one host alone sees, a SIGTERM, is
agreed on (`any_process`) before anyone acts on it. The price is that each
host tokenises and scores the whole batch, which is small next to a step
of a 7B model.

So a host array becomes a global array by each process placing its own
devices' slices (`put`; `jax.device_put` of host data with a global
sharding instead checks that the value is equal on every process, a
cross-host gather of each input on every call), and a device output comes
back to the host whole (`to_host`). Files shared by the processes are
written by process 0 while the others wait (`leader_only`,
`leader_first`); if it fails there, every process raises, instead of the
others waiting at the next collective for a process that has gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

T = TypeVar("T")


def is_leader() -> bool:
  return jax.process_index() == 0


def any_process(flag: bool) -> bool:
  """Whether `flag` is set on any process (every process gets the answer;
  a collective, so every process must call it at the same point)."""
  if jax.process_count() == 1:
    return flag
  flags = multihost_utils.process_allgather(np.int32(flag))
  return bool(np.asarray(flags).any())


def leader_only(name: str, fn: Callable[[], T]) -> T | None:
  """`fn()` on process 0 alone (a report, a file); the others wait, and
  raise too if it failed."""
  out, error = None, None
  if is_leader():
    try:
      out = fn()
    except Exception as e:  # Raised below, once every process knows.
      error = e
  if any_process(error is not None):
    if error is not None:
      raise error
    raise RuntimeError(f"{name}: process 0 failed; its log says why.")
  return out


def leader_first(name: str, fn: Callable[[], T]) -> T:
  """`fn()` on process 0, then on the others (a tfds copy prepared once
  in a shared folder, which the others then read)."""
  out = leader_only(name, fn)
  return out if is_leader() else fn()


def put(x, sharding: jax.sharding.Sharding) -> jax.Array:
  """The global array of host value `x` (the same on every process)."""
  x = np.asarray(x)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def to_host(x) -> np.ndarray:
  """The whole of a (possibly multi-host) array, on this host."""
  if not isinstance(x, jax.Array) or x.is_fully_addressable:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
