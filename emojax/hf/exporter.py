"""emojax params -> a folder `transformers.from_pretrained` loads.

Written into a temporary sibling folder and renamed at the end, so a
failure never leaves a half-written checkpoint where the user asked for one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import jax
import numpy as np
from jax.experimental import multihost_utils

from emojax.hf import registry, safetensors_io
from emojax.model import params as params_lib
from emojax.model import specs as model_specs
from emojax.model.config import ModelConfig

DEFAULT_MAX_SHARD_BYTES = 5 * 2**30  # transformers' default "5GB"
# Files a tokenizer/processor folder may hold; copied through unchanged.
TOKENIZER_FILES = (
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "chat_template.json",
  "chat_template.jinja",
  "preprocessor_config.json",
  "video_preprocessor_config.json",
  "generation_config.json",
)


def _host(x: jax.Array) -> np.ndarray:
  if getattr(x, "is_fully_addressable", True):
    return np.asarray(jax.device_get(x))
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _plan(entries, flat: dict, itemsize: dict, max_bytes: int):
  """Groups (entry, layer) slices into files of at most `max_bytes` each.

  A layered entry has as many slices as its leaf's leading dim; a slice's
  parts stay in one file.
  """
  files, current, size = [], [], 0
  for e in entries:
    layers = range(flat[e.path].shape[0]) if e.layered else [None]
    nbytes = int(np.prod(e.hf_shape)) * itemsize[e.path] * len(e.names())
    for i in layers:
      if current and size + nbytes > max_bytes:
        files.append(current)
        current, size = [], 0
      current.append((e, i))
      size += nbytes
  files.append(current)
  return files


def _write_tensors(folder, cfg, params, module, dtype, max_bytes):
  flat = params_lib.flatten(params)
  out_dtype = {
    path: np.dtype(dtype) if dtype else np.dtype(leaf.dtype)
    for path, leaf in flat.items()
  }
  entries = module.entries(cfg)
  itemsize = {e.path: out_dtype[e.path].itemsize for e in entries}
  files = _plan(entries, flat, itemsize, max_bytes)
  weight_map = {}
  for n, group in enumerate(files, 1):
    name = (
      safetensors_io.SINGLE_FILE
      if len(files) == 1
      else f"model-{n:05d}-of-{len(files):05d}.safetensors"
    )
    tensors = {}
    for e, i in group:
      leaf = flat[e.path] if i is None else flat[e.path][i]
      for hf_name, t in e.write(i, _host(leaf)).items():
        tensors[hf_name] = np.ascontiguousarray(t.astype(out_dtype[e.path]))
        weight_map[hf_name] = name
    if jax.process_index() == 0:
      safetensors_io.write(os.path.join(folder, name), tensors)
  if len(files) > 1 and jax.process_index() == 0:
    total = sum(
      int(np.prod(flat[e.path].shape)) * itemsize[e.path] for e in entries
    )
    with open(os.path.join(folder, safetensors_io.INDEX_FILE), "w") as f:
      json.dump(
        {"metadata": {"total_size": total}, "weight_map": weight_map},
        f,
        indent=2,
      )
  return str(next(iter(out_dtype.values())))


def _generation_config(cfg: ModelConfig) -> dict:
  return {
    "eos_token_id": list(cfg.eos_token_ids),
    "pad_token_id": cfg.pad_token_id,
  }


def save(
  cfg: ModelConfig,
  params,
  hf_dir: str,
  *,
  dtype=None,
  tokenizer_dir: str | None = None,
  max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> str:
  """Writes `hf_dir` (replacing it whole if it exists); returns its path.

  `dtype` (e.g. "bfloat16") converts on the way out; None keeps the params'
  dtype. Tokenizer and processor files in `tokenizer_dir` are copied.
  """
  module = registry.for_family(cfg.family)
  params_lib.check_tree(model_specs(cfg), params, where="save()")
  hf_dir = os.path.abspath(hf_dir)
  parent = os.path.dirname(hf_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
  try:
    stored = _write_tensors(tmp, cfg, params, module, dtype, max_shard_bytes)
    if jax.process_index() == 0:
      _write_json(tmp, "config.json", module.config_to_hf(cfg, stored))
      _write_json(tmp, "generation_config.json", _generation_config(cfg))
      _copy_tokenizer(tokenizer_dir, tmp)
      _replace(tmp, hf_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return hf_dir


def _write_json(folder, name, obj):
  with open(os.path.join(folder, name), "w") as f:
    json.dump(obj, f, indent=2)


def _copy_tokenizer(src: str | None, dst: str) -> None:
  if not src:
    return
  for name in TOKENIZER_FILES:
    path = os.path.join(src, name)
    if os.path.exists(path):
      shutil.copy2(path, os.path.join(dst, name))


def _replace(tmp: str, final: str) -> None:
  """Renames `tmp` to `final`; an old `final` is removed only afterwards."""
  old = None
  if os.path.exists(final):
    old = final + ".old"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)
  os.rename(tmp, final)
  if old:
    shutil.rmtree(old, ignore_errors=True)
