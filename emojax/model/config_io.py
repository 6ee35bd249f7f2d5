"""`ModelConfig` <-> JSON-able dict, for emojax checkpoints."""

from __future__ import annotations

import dataclasses
from typing import Any

from emojax.model.config import (
  AudioConfig,
  ModelConfig,
  RopeScaling,
  VisionConfig,
)

_NESTED = {
  "rope_scaling": RopeScaling,
  "vision": VisionConfig,
  "audio": AudioConfig,
}


def to_dict(cfg: ModelConfig) -> dict[str, Any]:
  return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> ModelConfig:
  """Inverse of `to_dict`; lists become tuples so the config stays hashable."""
  known = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = sorted(set(d) - known)
  if unknown:
    raise ValueError(
      f"model config has unknown fields {unknown}; it was written by a "
      "different emojax version."
    )
  kw = {}
  for key, value in d.items():
    if key in _NESTED and value is not None:
      value = _NESTED[key](**_tuples(value))
    kw[key] = tuple(value) if isinstance(value, list) else value
  return ModelConfig(**kw)


def _tuples(d: dict) -> dict:
  return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
