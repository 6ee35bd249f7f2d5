"""What differs when a run spans several JAX processes (hosts).

Every process reads the same global batch (the pipeline does not shard
rows by process) and does the same host work: tokenising, rewards,
advantages, the dynamic-sampling and stopping decisions. So every
decision is identical everywhere, with no cross-host reductions to get
wrong; only the device work is split, by the mesh. The price is that
each host tokenises and scores the whole batch, which is small next to a
step of a 7B model.

So a host array becomes a global array by each process placing its own
devices' slices (`put`; `jax.device_put` of host data with a global
sharding instead checks that the value is equal on every process, a
cross-host gather of each input on every call), and a device output comes
back to the host whole (`to_host`). Files shared by the processes are
written by process 0 while the others wait (`leader_first`).
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


def barrier(name: str) -> None:
  """Every process waits here until all have arrived (no-op alone)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def leader_first(name: str, fn: Callable[[], T]) -> T:
  """`fn()` on process 0, then on the others (a tfds copy prepared once
  in a shared folder, which the others then read)."""
  out = fn() if is_leader() else None
  barrier(name)
  return out if is_leader() else fn()


def leader_only(name: str, fn: Callable[[], object]) -> None:
  """`fn()` on process 0 alone (a report, a file); the others wait."""
  if is_leader():
    fn()
  barrier(name)


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
