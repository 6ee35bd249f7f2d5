"""Device mesh from config, logical-axis rules, and activation constraints.

Code names logical axes (`batch`, `embed`, `heads`, ...); the config maps
them onto mesh axes (`data`, `fsdp`, `tensor`). This file is the only place
that turns one into the other.

  mesh = make_mesh(config.mesh)              # {'data': 2, 'fsdp': -1, ...}
  with use_rules(mesh, config.rules):        # activations constrained inside
    ...
  named_sharding(mesh, ('batch', 'embed'), rules)
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Default logical -> mesh rules: rows over data+fsdp, weights' embed dim over
# fsdp (ZeRO-3 style), heads/mlp/vocab over tensor. Configs may override.
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
  ("batch", ("data", "fsdp")),
  ("embed", "fsdp"),
  ("mlp", "tensor"),
  ("heads", "tensor"),
  ("kv_heads", "tensor"),
  ("vocab", "tensor"),
  ("head_dim", None),
  ("layers", None),
  ("seq", None),
  ("cache_seq", None),
  ("act_embed", None),
  ("act_seq", None),
  ("patches", None),
  ("vision_embed", "fsdp"),
  ("vision_mlp", "tensor"),
  ("vision_heads", "tensor"),
  ("audio_embed", "fsdp"),
  ("audio_mlp", "tensor"),
  ("audio_heads", "tensor"),
  ("norm", None),
)


@dataclasses.dataclass(frozen=True)
class LogicalAxes:
  """A tuple of logical axis names that pytrees treat as one leaf."""

  names: tuple[str | None, ...]


def mesh_shape(axes: Mapping[str, int], num_devices: int) -> dict[str, int]:
  """Resolves `-1` ("the rest") and checks the product equals the devices."""
  unknown = [k for k in axes if k not in MESH_AXES]
  if unknown:
    raise ValueError(
      f"config.mesh has unknown axes {unknown}; use only {MESH_AXES}."
    )
  sizes = {k: int(axes.get(k, 1)) for k in MESH_AXES}
  rest = [k for k, v in sizes.items() if v == -1]
  if len(rest) > 1:
    raise ValueError(
      f"config.mesh: at most one axis may be -1, got {rest}. Give explicit "
      "sizes for the others."
    )
  known = math.prod(v for v in sizes.values() if v != -1)
  if rest:
    if num_devices % known:
      raise ValueError(
        f"config.mesh: {num_devices} devices do not divide by the fixed "
        f"axes' product {known} ({sizes}). Change the fixed sizes."
      )
    sizes[rest[0]] = num_devices // known
  if math.prod(sizes.values()) != num_devices:
    raise ValueError(
      f"config.mesh {sizes} needs {math.prod(sizes.values())} devices, but "
      f"{num_devices} are available. Set one axis to -1 to use the rest."
    )
  return sizes


def make_mesh(axes: Mapping[str, int], devices=None) -> Mesh:
  """A `Mesh` over all (or the given) devices, axes ordered data/fsdp/tensor.

  Works single- and multi-process: `jax.devices()` lists every process's
  devices, and `mesh_utils` lays them out so `tensor` stays within a host.
  """
  devices = jax.devices() if devices is None else list(devices)
  sizes = mesh_shape(axes, len(devices))
  shape = tuple(sizes[k] for k in MESH_AXES)
  try:
    from jax.experimental import mesh_utils

    grid = mesh_utils.create_device_mesh(
      shape, devices=devices, allow_split_physical_axes=True
    )
  except (ValueError, NotImplementedError, AssertionError):
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, MESH_AXES)


def rules_dict(rules) -> dict[str, tuple[str, ...] | str | None]:
  """Normalises rules given as pairs or a mapping."""
  if rules is None:
    rules = DEFAULT_RULES
  items = rules.items() if isinstance(rules, Mapping) else rules
  out = {}
  for name, target in items:
    if isinstance(target, list):
      target = tuple(target)
    out[name] = target
  return out


def logical_to_spec(
  axes: Sequence[str | None] | LogicalAxes, rules=None, mesh: Mesh = None
) -> PartitionSpec:
  """Maps logical axis names to a `PartitionSpec`.

  A mesh axis is used at most once per array (the first logical axis that
  claims it wins), and mesh axes of size 1 are dropped, so one rule set
  serves every mesh.
  """
  if isinstance(axes, LogicalAxes):
    axes = axes.names
  table = rules_dict(rules)
  used: set[str] = set()
  out = []
  for name in axes:
    if name is None:
      out.append(None)
      continue
    if name not in table:
      raise KeyError(
        f"logical axis {name!r} has no sharding rule; add it to "
        "config.sharding_rules (map it to a mesh axis or None)."
      )
    target = table[name]
    targets = (target,) if isinstance(target, str) else tuple(target or ())
    keep = []
    for t in targets:
      if t in used:
        continue
      if mesh is not None and mesh.shape.get(t, 1) == 1:
        continue
      keep.append(t)
    used.update(keep)
    if not keep:
      out.append(None)
    elif len(keep) == 1:
      out.append(keep[0])
    else:
      out.append(tuple(keep))
  return PartitionSpec(*out)


def named_sharding(
  mesh: Mesh,
  axes: Sequence[str | None] | LogicalAxes,
  rules=None,
  shape: Sequence[int] | None = None,
) -> NamedSharding:
  """The `NamedSharding` for logical `axes`.

  With `shape`, dims that do not divide by their mesh axes stay replicated
  (tiny test models on big meshes) instead of failing.
  """
  spec = logical_to_spec(axes, rules, mesh)
  if shape is not None:
    spec = _drop_misfits(shape, spec, mesh)
  return NamedSharding(mesh, spec)


def fits(shape: Sequence[int], spec: PartitionSpec, mesh: Mesh) -> bool:
  """Whether every sharded dim divides by its mesh axes' product."""
  for dim, entry in zip(shape, spec, strict=False):
    if entry is None:
      continue
    names = (entry,) if isinstance(entry, str) else entry
    if dim % math.prod(mesh.shape[n] for n in names):
      return False
  return True


# The active (mesh, rules) for `constrain`, set by `use_rules`.
_ACTIVE: contextvars.ContextVar[tuple[Mesh, dict] | None] = (
  contextvars.ContextVar("emojax_sharding", default=None)
)


def active() -> tuple[Mesh, dict] | None:
  """The (mesh, rules) `use_rules` activated, or None outside it."""
  return _ACTIVE.get()


@contextlib.contextmanager
def use_rules(mesh: Mesh, rules=None) -> Iterator[None]:
  """Activates `constrain` for code traced inside this block."""
  token = _ACTIVE.set((mesh, rules_dict(rules)))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
  """`with_sharding_constraint` by logical names; a no-op with no mesh.

  Dimensions that do not divide by their mesh axes are left replicated
  rather than failing, so odd tiny test shapes still run sharded.
  """
  active = _ACTIVE.get()
  if active is None:
    return x
  mesh, rules = active
  spec = _drop_misfits(x.shape, logical_to_spec(axes, rules, mesh), mesh)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def _drop_misfits(shape, spec: PartitionSpec, mesh: Mesh) -> PartitionSpec:
  return PartitionSpec(
    *(
      e if fits((d,), PartitionSpec(e), mesh) else None
      for d, e in zip(shape, spec, strict=False)
    )
  )


def shard_like(tree, axes_tree, mesh: Mesh, rules=None):
  """`device_put` every leaf of `tree` on its logical sharding."""

  def put(x, axes):
    spec = logical_to_spec(axes, rules, mesh)
    return jax.device_put(x, NamedSharding(mesh, spec))

  return jax.tree.map(put, tree, axes_tree)
