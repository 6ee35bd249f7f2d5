"""Reading and writing safetensors files without loading them whole.

Our own reader (the format is 8 bytes of header length, a JSON header, then
raw little-endian tensor bytes) so that bf16 works through numpy (via
ml_dtypes), tensors are memory-mapped and read one at a time, and a
truncated or malformed file is reported by name before any work.
"""

from __future__ import annotations

import json
import os
import struct
from typing import NamedTuple

import ml_dtypes
import numpy as np

from emojax.hf.errors import CheckpointError

DTYPES = {
  "F64": np.dtype(np.float64),
  "F32": np.dtype(np.float32),
  "F16": np.dtype(np.float16),
  "BF16": np.dtype(ml_dtypes.bfloat16),
  "I64": np.dtype(np.int64),
  "I32": np.dtype(np.int32),
  "I16": np.dtype(np.int16),
  "I8": np.dtype(np.int8),
  "U8": np.dtype(np.uint8),
  "BOOL": np.dtype(np.bool_),
}
NAMES = {v: k for k, v in DTYPES.items()}
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class TensorInfo(NamedTuple):
  path: str
  dtype: np.dtype
  shape: tuple[int, ...]
  offset: int  # absolute byte offset of the data in the file
  nbytes: int


def read_header(path: str) -> dict[str, TensorInfo]:
  """Names, dtypes, shapes and offsets; checks the file is complete."""
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    head = f.read(8)
    if len(head) < 8:
      raise CheckpointError(f"{path}: not a safetensors file (too short).")
    (n,) = struct.unpack("<Q", head)
    if n > size - 8:
      raise CheckpointError(
        f"{path}: header says {n} bytes but the file has {size}; the file "
        "is truncated or not safetensors. Re-download or re-export it."
      )
    try:
      header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise CheckpointError(f"{path}: unreadable header ({e}).") from e
  header.pop("__metadata__", None)
  out, data_start, end_max = {}, 8 + n, 0
  for name, entry in header.items():
    dtype_name = entry.get("dtype")
    if dtype_name not in DTYPES:
      raise CheckpointError(
        f"{path}: tensor {name} has dtype {dtype_name}; supported: "
        f"{sorted(DTYPES)}."
      )
    begin, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    dtype = DTYPES[dtype_name]
    if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
      raise CheckpointError(
        f"{path}: tensor {name} has {end - begin} bytes for shape {shape} "
        f"of {dtype_name}; the file is corrupt."
      )
    end_max = max(end_max, end)
    out[name] = TensorInfo(path, dtype, shape, data_start + begin, end - begin)
  if data_start + end_max > size:
    raise CheckpointError(
      f"{path}: truncated: tensors need {data_start + end_max} bytes but "
      f"the file has {size}. Re-download or re-export it."
    )
  return out


def index(folder: str) -> dict[str, TensorInfo]:
  """Every tensor of a checkpoint folder, single-file or sharded."""
  single = os.path.join(folder, SINGLE_FILE)
  index_path = os.path.join(folder, INDEX_FILE)
  if os.path.exists(index_path):
    with open(index_path) as f:
      weight_map = json.load(f).get("weight_map")
    if not isinstance(weight_map, dict):
      raise CheckpointError(f"{index_path}: no 'weight_map' object.")
    out = {}
    for file in sorted(set(weight_map.values())):
      path = os.path.join(folder, file)
      if not os.path.exists(path):
        raise CheckpointError(
          f"{index_path} lists {file}, which is missing from {folder}."
        )
      out |= read_header(path)
    listed_only = sorted(set(weight_map) - set(out))
    if listed_only:
      raise CheckpointError(
        f"{index_path} lists {listed_only[:3]} but no shard holds them."
      )
    return out
  if os.path.exists(single):
    return read_header(single)
  raise CheckpointError(
    f"{folder}: no {SINGLE_FILE} or {INDEX_FILE}. emojax reads safetensors "
    "checkpoints only; convert .bin files with transformers' "
    "save_pretrained(safe_serialization=True) first."
  )


def read(info: TensorInfo) -> np.ndarray:
  """The tensor as a read-only memory map (nothing is read until used)."""
  if info.nbytes == 0:
    return np.zeros(info.shape, info.dtype)
  return np.memmap(
    info.path, dtype=info.dtype, mode="r", offset=info.offset, shape=info.shape
  )


def write(path: str, tensors: dict[str, np.ndarray], metadata=None) -> None:
  """Writes one safetensors file, tensors in name order."""
  header, offset = {}, 0
  names = sorted(tensors)
  for name in names:
    a = tensors[name]
    if a.dtype not in NAMES:
      raise CheckpointError(f"cannot write {name}: dtype {a.dtype}.")
    header[name] = {
      "dtype": NAMES[a.dtype],
      "shape": list(a.shape),
      "data_offsets": [offset, offset + a.nbytes],
    }
    offset += a.nbytes
  header["__metadata__"] = {"format": "pt", **(metadata or {})}
  blob = json.dumps(header, separators=(",", ":")).encode()
  blob += b" " * (-len(blob) % 8)  # align data to 8 bytes, as safetensors
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(blob)))
    f.write(blob)
    for name in names:
      f.write(np.ascontiguousarray(tensors[name]).tobytes())
