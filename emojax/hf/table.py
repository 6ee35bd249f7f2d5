"""What a family's name/shape table is made of."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]


class Entry(NamedTuple):
  """One emojax leaf and the HF tensor(s) it comes from.

  `hf` holds `{i}` when the leaf is stacked over layers: HF tensor i is
  slice i of the leaf's leading axis. The transforms convert one HF tensor
  to one (unstacked) emojax slice and back.
  """

  path: tuple[str, ...]
  hf: str
  to_emojax: Transform
  to_hf: Transform
  hf_shape: tuple[int, ...]

  @property
  def layered(self) -> bool:
    return "{i}" in self.hf


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
