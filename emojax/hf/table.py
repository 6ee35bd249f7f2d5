"""What a family's name/shape table is made of."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from emojax.hf.errors import CheckpointError
from emojax.model import params as params_lib

Transform = Callable[[np.ndarray], np.ndarray]


class Entry(NamedTuple):
  """One emojax leaf and the HF tensor(s) it comes from.

  `hf` holds `{i}` when the leaf is stacked over layers: HF tensor i is
  slice i of the leaf's leading axis. The transforms convert one HF tensor
  to one (unstacked) emojax slice and back. With `parts`, `hf` also holds
  `{part}` and one slice is several HF tensors of shape `hf_shape` (q, k
  and v into one fused leaf): the transforms see them stacked on a new
  leading axis, in `parts` order.
  """

  path: tuple[str, ...]
  hf: str
  to_emojax: Transform
  to_hf: Transform
  hf_shape: tuple[int, ...]
  parts: tuple[str, ...] = ()

  @property
  def layered(self) -> bool:
    return "{i}" in self.hf

  def names(self, i: int | None = None) -> list[str]:
    """The HF tensors of slice `i` (None: an unlayered leaf)."""
    return [self.hf.format(i=i, part=p) for p in self.parts or ("",)]

  def read(self, i: int | None, get) -> np.ndarray:
    """Slice `i` as emojax holds it; `get(name)` returns one HF tensor."""
    arrays = [np.asarray(get(n)) for n in self.names(i)]
    return self.to_emojax(np.stack(arrays) if self.parts else arrays[0])

  def write(self, i: int | None, slice_: np.ndarray) -> dict[str, np.ndarray]:
    """Slice `i` (as emojax holds it) as {HF name: tensor}."""
    out = np.asarray(self.to_hf(slice_))
    tensors = list(out) if self.parts else [out]
    return dict(zip(self.names(i), tensors, strict=True))

  def tensors(self, leaf: np.ndarray) -> dict[str, np.ndarray]:
    """The whole leaf (all its layers) as {HF name: tensor}."""
    if not self.layered:
      return self.write(None, leaf)
    return {
      k: v for i in range(len(leaf)) for k, v in self.write(i, leaf[i]).items()
    }


def identity(x: np.ndarray) -> np.ndarray:
  return x


def linear(in_dim: int, *out_dims: int) -> tuple[Transform, Transform]:
  """torch Linear weight [out, in] <-> emojax [in, *out_dims]."""

  def to_emojax(w):
    return np.asarray(w).T.reshape(in_dim, *out_dims)

  def to_hf(w):
    return np.asarray(w).reshape(in_dim, -1).T

  return to_emojax, to_hf


def linear_in(out_dim: int, *in_dims: int) -> tuple[Transform, Transform]:
  """torch Linear weight [out, in] <-> emojax [*in_dims, out] (o_proj)."""

  def to_emojax(w):
    return np.asarray(w).T.reshape(*in_dims, out_dim)

  def to_hf(w):
    return np.asarray(w).reshape(-1, out_dim).T

  return to_emojax, to_hf


def reshape(*shape: int) -> tuple[Transform, Transform]:
  def to_emojax(w):
    return np.asarray(w).reshape(shape)

  def to_hf(w):
    return np.asarray(w).reshape(-1)

  return to_emojax, to_hf


def from_tensors(entries, tensors, canonical_name, num_layers) -> dict:
  """In-memory import: {HF name: array} -> emojax params (nested dict).

  `num_layers(entry)` says how many slices a layered entry stacks.
  """
  named = {canonical_name(k): v for k, v in tensors.items()}

  def get(name):
    if name not in named:
      raise CheckpointError(f"tensor {name} is missing.")
    return named[name]

  out: dict = {}
  for e in entries:
    if e.layered:
      leaf = np.stack([e.read(i, get) for i in range(num_layers(e))])
    else:
      leaf = e.read(None, get)
    node = out
    for key in e.path[:-1]:
      node = node.setdefault(key, {})
    node[e.path[-1]] = leaf
  return out


def to_tensors(entries, params) -> dict[str, np.ndarray]:
  """In-memory export: emojax params -> {HF name: array}."""
  flat = params_lib.flatten(params)
  out = {}
  for e in entries:
    out |= e.tensors(np.asarray(flat[e.path]))
  return out
