"""Hugging Face checkpoint folder -> emojax params, placed on their shardings.

Every check (architecture, config fields, tensor names, shapes, complete
files) runs before any tensor is read. Tensors are memory-mapped and each
device receives only its own slice, so a 7B model never needs a full host
copy.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import jax
import numpy as np

from emojax.hf import registry, safetensors_io
from emojax.hf.errors import CheckpointError
from emojax.model import params as params_lib
from emojax.model import specs as model_specs
from emojax.model.config import ModelConfig


def read_config(hf_dir: str) -> tuple[dict, str]:
  path = os.path.join(hf_dir, "config.json")
  if not os.path.exists(path):
    raise CheckpointError(
      f"{hf_dir}: no config.json; point at a transformers model folder."
    )
  with open(path) as f:
    hf = json.load(f)
  if not hf.get("architectures"):
    raise CheckpointError(f"{path}: no 'architectures' entry.")
  return hf, path


def check_tensors(entries, cfg: ModelConfig, specs, infos, module, hf_dir):
  """Every expected tensor present with its shape; nothing unexplained.

  A layered entry stacks as many HF tensors as its leaf's leading dim
  (text layers, or vision blocks).
  """
  expected = {}
  for e in entries:
    layers = range(specs[e.path].shape[0]) if e.layered else [None]
    expected |= {name: e.hf_shape for i in layers for name in e.names(i)}
  for name, shape in expected.items():
    if name not in infos:
      raise CheckpointError(f"{hf_dir}: tensor {name} is missing.")
    if infos[name].shape != shape:
      raise CheckpointError(
        f"{infos[name].path}: tensor {name} has shape {infos[name].shape}; "
        f"the config implies {shape}. The config.json and weights disagree."
      )
  extra = [
    n
    for n in infos
    if n not in expected
    and not n.endswith(module.IGNORED_SUFFIXES)
    and not n.startswith(module.IGNORED_PREFIXES)
    and not (cfg.tie_embeddings and n == "lm_head.weight")
  ]
  if extra:
    raise CheckpointError(
      f"{hf_dir}: tensors {extra[:4]} (and {max(len(extra) - 4, 0)} more) "
      f"are not part of a {cfg.family} model as configured; emojax would "
      "drop them silently, so it refuses."
    )


def _leaf(entry, infos, shape, dtype, sharding):
  """One emojax array built slice by slice from memory-mapped tensors."""

  def piece(i, index):
    read = lambda name: safetensors_io.read(infos[name])
    return np.asarray(entry.read(i, read)[index], dtype)

  def callback(index):
    if not entry.layered:
      return piece(None, index)
    layers = range(shape[0])[index[0]]
    return np.stack([piece(i, index[1:]) for i in layers])

  return jax.make_array_from_callback(shape, sharding, callback)


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def load(hf_dir: str, mesh=None, dtype=None, rules=None):
  """Reads a transformers folder; returns `(model_config, params)`.

  `dtype=None` keeps the stored dtype (so export round-trips bit for bit);
  with a `mesh`, each leaf lands directly on its logical sharding.
  """
  hf, path = read_config(hf_dir)
  module = registry.for_architecture(hf["architectures"][0], path)
  cfg = module.config_from_hf(hf, path)
  infos = {
    module.canonical_name(n): i for n, i in safetensors_io.index(hf_dir).items()
  }
  entries = module.entries(cfg)
  # The dtype most of the model's own tensors have (not skipped modules').
  wanted = {e.names(0)[0] for e in entries} & set(infos)
  stored = Counter(str(infos[n].dtype) for n in wanted or infos)
  stored = stored.most_common(1)[0][0]
  target = np.dtype(dtype) if dtype is not None else None
  cfg = cfg.replace(param_dtype=str(target or stored))
  specs = model_specs(cfg)
  flat_specs = params_lib.flatten(specs)
  check_tensors(entries, cfg, flat_specs, infos, module, hf_dir)
  if mesh is None:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shardings = jax.tree.map(
      lambda _: device, specs, is_leaf=params_lib.is_spec
    )
  else:
    shardings = params_lib.shardings(specs, mesh, rules)
  flat_shardings = params_lib.flatten(shardings)
  params: dict = {}
  for e in entries:
    leaf_dtype = target or infos[e.names(0)[0]].dtype
    leaf = _leaf(
      e, infos, flat_specs[e.path].shape, leaf_dtype, flat_shardings[e.path]
    )
    _set(params, e.path, leaf)
  params_lib.check_tree(specs, params, where=hf_dir)
  return cfg, params
