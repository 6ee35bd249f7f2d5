"""Host-side batch surgery: device keys, row slices, repeats, VLM prep.

Pipeline batches carry one image (or none) per row, with `pixel_values`
concatenated over the batch's images in row order; slicing or repeating
rows must carry each row's patches along.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

from emojax import multihost, sharding
from emojax.model import vlm
from emojax.model.config import ModelConfig

DEVICE_KEYS = (
  "input_ids",
  "attention_mask",
  "segment_ids",
  "position_ids",
  "pixel_values",
  "image_grid_thw",
  "loss_mask",
)
# Keys whose rows are the batch's rows and whose columns are its tokens.
ROW_KEYS = ("input_ids", "attention_mask", "loss_mask", "segment_ids")


def _image_rows(cfg: ModelConfig, batch: Mapping) -> tuple[np.ndarray, list]:
  """Per row: its image index or -1; and each image's patch slice."""
  if batch.get("image_grid_thw") is None or not len(batch["image_grid_thw"]):
    return np.full(len(batch["input_ids"]), -1), []
  has_image_B = (np.asarray(batch["input_ids"]) == cfg.image_token_id).any(1)
  image_of_B = np.where(has_image_B, np.cumsum(has_image_B) - 1, -1)
  sizes = np.prod(np.asarray(batch["image_grid_thw"]), axis=1)
  ends = np.cumsum(sizes)
  slices = [slice(int(e - s), int(e)) for s, e in zip(sizes, ends, strict=True)]
  if has_image_B.sum() != len(slices):
    raise ValueError(
      f"{has_image_B.sum()} rows hold image tokens but the batch has "
      f"{len(slices)} images; emojax batches carry one image per row."
    )
  return image_of_B, slices


def take_rows(cfg: ModelConfig, batch: Mapping, rows) -> dict:
  """The batch restricted (or repeated) to `rows`, images following."""
  rows = np.asarray(rows)
  image_of_B, slices = _image_rows(cfg, batch)
  out = {}
  for key, value in batch.items():
    if key in ("pixel_values", "image_grid_thw"):
      continue
    if (
      isinstance(value, np.ndarray)
      and value.ndim
      and len(value) == len(image_of_B)
    ):
      out[key] = value[rows]
    elif isinstance(value, list | tuple) and rows.max(initial=-1) < len(value):
      # Host lists (labels, line, ...) cover the real rows, which come
      # before any pad rows.
      out[key] = [value[r] for r in rows]
  if slices:
    images = [int(image_of_B[r]) for r in rows if image_of_B[r] >= 0]
    pixels = np.asarray(batch["pixel_values"])
    grid = np.asarray(batch["image_grid_thw"])
    out["pixel_values"] = np.concatenate(
      [pixels[slices[i]] for i in images] or [pixels[:0]]
    )
    out["image_grid_thw"] = grid[images] if images else grid[:0]
  return out


def repeat_rows(cfg: ModelConfig, batch: Mapping, times: int) -> dict:
  """Each row `times` times in a row (the [P, G] layout of a rollout)."""
  n = len(batch["input_ids"])
  return take_rows(cfg, batch, np.repeat(np.arange(n), times))


def trim(batch: dict, bucket: int) -> dict:
  """Drops all-padding columns, keeping a multiple of `bucket` columns.

  Pipelines pad every batch to `max_len`; trimming to the longest row
  (rounded up, so few distinct shapes compile) halves the work of typical
  batches. Left-padded rows lose columns on the left, right-padded on the
  right.
  """
  mask_BT = np.asarray(batch["attention_mask"])
  used = np.flatnonzero(mask_BT.any(0))
  if not len(used):
    return batch
  T = mask_BT.shape[1]
  width = min(-(-(used[-1] - used[0] + 1) // bucket) * bucket, T)
  lo = min(used[0], T - width)
  cols = slice(lo, lo + width)
  out = dict(batch)
  for key in ROW_KEYS + ("positions",):
    if key in out:
      out[key] = np.asarray(out[key])[:, cols]
  if "position_ids" in out:
    out["position_ids"] = np.asarray(out["position_ids"])[..., cols]
  return out


def device_batch(cfg: ModelConfig, batch: Mapping, bucket: int = 32) -> dict:
  """The arrays jit sees: host lists dropped, padding trimmed to `bucket`
  columns, VLM positions/layout added."""
  out = {k: np.asarray(batch[k]) for k in DEVICE_KEYS if k in batch}
  if "positions" in batch:
    out["positions"] = np.asarray(batch["positions"])
  if bucket:
    out = trim(out, bucket)
  if "positions" in out:
    positions = out.pop("positions")
    out.setdefault("position_ids", positions)
  if cfg.vision is None:
    out.pop("pixel_values", None)
    out.pop("image_grid_thw", None)
    return out
  if out.get("pixel_values") is not None and not len(out["pixel_values"]):
    out.pop("pixel_values")
    out.pop("image_grid_thw")
  return vlm.prepare(cfg, out)


def place(batch: Mapping, mesh, rules) -> dict:
  """Token arrays' rows over the batch mesh axes; the rest replicated."""

  def put(x, axes):
    x = np.asarray(x)
    axes = axes or (None,) * x.ndim
    spec = sharding.named_sharding(mesh, axes, rules, shape=x.shape)
    return multihost.put(x, spec)

  out = {}
  for key, value in batch.items():
    if isinstance(value, Mapping):  # e.g. GRPO's shared `prompt` batch
      out[key] = place(value, mesh, rules)
      continue
    axes = None
    if key in ROW_KEYS or key.startswith("completion_"):
      axes = ("batch", None)
    elif key == "position_ids":
      axes = ("batch", None) if np.ndim(value) == 2 else (None, "batch", None)
    out[key] = jax.tree.map(lambda x, a=axes: put(x, a), value)
  return out
