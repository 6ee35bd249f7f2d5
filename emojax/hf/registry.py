"""Which table module serves which HF architecture and emojax family."""

from __future__ import annotations

from types import ModuleType

from emojax.hf import qwen2, qwen2_5_omni, qwen2_5_vl
from emojax.hf.errors import CheckpointError

# Each module exposes ARCHITECTURES ({hf architecture: emojax family}),
# IGNORED_SUFFIXES, IGNORED_PREFIXES, canonical_name(hf_name),
# config_from_hf(hf, where), config_to_hf(cfg, dtype) and entries(cfg).
MODULES: tuple[ModuleType, ...] = (qwen2, qwen2_5_vl, qwen2_5_omni)


def for_architecture(arch: str, where: str) -> ModuleType:
  for module in MODULES:
    if arch in module.ARCHITECTURES:
      return module
  supported = sorted(a for m in MODULES for a in m.ARCHITECTURES)
  raise CheckpointError(
    f"{where}: architectures={arch!r} is not supported; emojax converts "
    f"{supported}."
  )


def for_family(family: str) -> ModuleType:
  for module in MODULES:
    if family in module.ARCHITECTURES.values():
      return module
  raise CheckpointError(f"no HF table for model family {family!r}.")
