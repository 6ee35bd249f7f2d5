"""Parameters described once: `ParamSpec` and what derives from it.

A model's parameters are a nested dict whose leaves are `ParamSpec`s. From
that one description come the initial values (`init`), the abstract shapes
(`abstract`, no allocation) and the shardings (`shardings`), so shape,
sharding and initialisation cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from emojax import sharding as sharding_lib

Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]


def normal(stddev: float) -> Initializer:
  """Truncation-free normal init, as transformers' `_init_weights`."""

  def init(key, shape, dtype):
    return (stddev * jax.random.normal(key, shape, jnp.float32)).astype(dtype)

  return init


def zeros(key, shape, dtype):
  del key
  return jnp.zeros(shape, dtype)


def ones(key, shape, dtype):
  del key
  return jnp.ones(shape, dtype)


@dataclasses.dataclass(frozen=True)
class ParamSpec:
  """One weight: its shape, dtype, logical axis names and initialiser."""

  shape: tuple[int, ...]
  dtype: Any
  logical_axes: tuple[str | None, ...]
  init: Initializer = dataclasses.field(default=zeros, compare=False)

  def __post_init__(self):
    if len(self.shape) != len(self.logical_axes):
      raise ValueError(
        f"ParamSpec shape {self.shape} and logical axes "
        f"{self.logical_axes} have different ranks."
      )

  @property
  def size(self) -> int:
    return math.prod(self.shape)


def is_spec(x) -> bool:
  return isinstance(x, ParamSpec)


def _map(fn, specs):
  return jax.tree.map(fn, specs, is_leaf=is_spec)


def abstract(specs) -> Any:
  """`jax.ShapeDtypeStruct`s for every spec; allocates nothing."""
  return _map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), specs)


def logical_axes(specs) -> Any:
  """The tree of logical axis tuples (leaves are tuples, so wrap them)."""
  return _map(lambda s: sharding_lib.LogicalAxes(s.logical_axes), specs)


def shardings(specs, mesh: jax.sharding.Mesh, rules) -> Any:
  """`NamedSharding` of every spec under `rules` on `mesh`."""
  return _map(
    lambda s: sharding_lib.named_sharding(
      mesh, s.logical_axes, rules, shape=s.shape
    ),
    specs,
  )


def constrain(tree, specs) -> Any:
  """A tree shaped like the params (their gradients) constrained to the
  params' logical shardings under `sharding.use_rules`; as is without.

  Left to itself XLA replicated FSDP gradients: a full fp32 copy on every
  device (30 GB for a 7B model) and an all-reduce where a reduce-scatter
  does (`tests/train/test_grad_sharding.py`).
  """
  return jax.tree.map(
    lambda x, axes: sharding_lib.constrain(x, axes.names),
    tree,
    logical_axes(specs),
  )


def count(specs) -> int:
  """Number of parameters, from shapes alone."""
  leaves = jax.tree.leaves(specs, is_leaf=is_spec)
  return sum(s.size for s in leaves)


def init(specs, key: jax.Array, mesh=None, rules=None) -> Any:
  """Initial values; each leaf is created directly on its sharding.

  Keys are derived from each leaf's path so adding a parameter does not
  change the others' values.
  """
  paths_and_specs = jax.tree_util.tree_flatten_with_path(
    specs, is_leaf=is_spec
  )[0]
  treedef = jax.tree.structure(specs, is_leaf=is_spec)

  def make(key):
    leaves = []
    for path, spec in paths_and_specs:
      name = jax.tree_util.keystr(path)
      leaf_key = jax.random.fold_in(key, _stable_hash(name))
      leaves.append(spec.init(leaf_key, spec.shape, spec.dtype))
    return jax.tree.unflatten(treedef, leaves)

  out_shardings = None
  if mesh is not None:
    out_shardings = shardings(specs, mesh, rules)
  return jax.jit(make, out_shardings=out_shardings)(key)


def _stable_hash(name: str) -> int:
  # Python's hash() is salted per process; crc32 is not.
  return zlib.crc32(name.encode()) & 0x7FFFFFFF


def cast(params, dtype) -> Any:
  """Casts floating leaves to `dtype` (e.g. bf16 compute from fp32)."""

  def f(x):
    if jnp.issubdtype(x.dtype, jnp.floating):
      return x.astype(dtype)
    return x

  return jax.tree.map(f, params)


def flatten(tree) -> dict[tuple[str, ...], Any]:
  """{('layers', 'w_q_LDHE'): leaf, ...} for a dict tree of specs/arrays."""
  items = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_spec)[0]
  return {tuple(str(k.key) for k in path): v for path, v in items}


def check_tree(specs, params, where: str = "params") -> None:
  """Raises if `params` does not have the structure and shapes of `specs`."""
  flat_specs = {"/".join(k): v for k, v in flatten(specs).items()}
  flat_params = {"/".join(k): v for k, v in flatten(params).items()}
  missing = sorted(set(flat_specs) - set(flat_params))
  extra = sorted(set(flat_params) - set(flat_specs))
  if missing or extra:
    raise ValueError(
      f"{where}: tree does not match the model's ParamSpecs; "
      f"missing {missing[:5]}, unexpected {extra[:5]}."
    )
  for name, spec in flat_specs.items():
    got = tuple(np.shape(flat_params[name]))
    if got != spec.shape:
      raise ValueError(
        f"{where}: {name} has shape {got}, the model expects {spec.shape}."
      )
