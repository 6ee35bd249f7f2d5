"""Host-side batch surgery: device keys, row slices, repeats, VLM prep.

Pipeline batches carry one visual, an image or a video, (or none) per row,
with `pixel_values` concatenated over the batch's visuals in row order
(`image_grid_thw`, `second_per_grid_ts` one per visual), and one clip (or none)
per row, `input_features` stacked over the clips in row order; slicing or
repeating rows must carry each row's patches and clip along.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

from emojax import multihost, sharding
from emojax.model import audio_lm, vlm
from emojax.model.config import ModelConfig

DEVICE_KEYS = (
  "input_ids",
  "attention_mask",
  "segment_ids",
  "position_ids",
  "pixel_values",
  "image_grid_thw",
  "second_per_grid_ts",
  "input_features",
  "audio_feature_lengths",
  "loss_mask",
)
CLIP_KEYS = ("input_features", "audio_feature_lengths")
# Per-visual keys besides the patches (`pixel_values`).
VISUAL_KEYS = ("image_grid_thw", "second_per_grid_ts")
# Keys whose rows are the batch's rows and whose columns are its tokens.
ROW_KEYS = ("input_ids", "attention_mask", "loss_mask", "segment_ids")


def _image_rows(cfg: ModelConfig, batch: Mapping) -> tuple[np.ndarray, list]:
  """Per row: its visual's index or -1; and each visual's patch slice."""
  if batch.get("image_grid_thw") is None or not len(batch["image_grid_thw"]):
    return np.full(len(batch["input_ids"]), -1), []
  ids_BT = np.asarray(batch["input_ids"])
  has_image_B = np.isin(ids_BT, vlm.visual_ids(cfg)).any(1)
  image_of_B = np.where(has_image_B, np.cumsum(has_image_B) - 1, -1)
  sizes = np.prod(np.asarray(batch["image_grid_thw"]), axis=1)
  ends = np.cumsum(sizes)
  slices = [slice(int(e - s), int(e)) for s, e in zip(sizes, ends, strict=True)]
  if has_image_B.sum() != len(slices):
    raise ValueError(
      f"{has_image_B.sum()} rows hold image or video tokens but the batch "
      f"has {len(slices)} visuals; emojax batches carry one per row."
    )
  return image_of_B, slices


def _clip_rows(cfg: ModelConfig, batch: Mapping) -> np.ndarray:
  """Per row: its clip index (rows holding `<|AUDIO|>`, in order) or -1."""
  n = len(batch["input_ids"])
  if batch.get("input_features") is None or cfg.audio is None:
    return np.full(n, -1)
  has_clip_B = (np.asarray(batch["input_ids"]) == cfg.audio_token_id).any(1)
  if has_clip_B.sum() != len(batch["input_features"]):
    raise ValueError(
      f"{has_clip_B.sum()} rows hold audio tokens but the batch has "
      f"{len(batch['input_features'])} clips; emojax batches carry one clip "
      "per row, in row order (the pipeline's, unpacked: packing several "
      "examples with clips into a row is not supported)."
    )
  return np.where(has_clip_B, np.cumsum(has_clip_B) - 1, -1)


def take_rows(cfg: ModelConfig, batch: Mapping, rows) -> dict:
  """The batch restricted (or repeated) to `rows`, images and clips
  following."""
  rows = np.asarray(rows)
  image_of_B, slices = _image_rows(cfg, batch)
  clip_of_B = _clip_rows(cfg, batch)
  out = {}
  for key, value in batch.items():
    if key in ("pixel_values", *VISUAL_KEYS, *CLIP_KEYS):
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
    out["pixel_values"] = np.concatenate(
      [pixels[slices[i]] for i in images] or [pixels[:0]]
    )
    for key in VISUAL_KEYS:
      if batch.get(key) is not None:
        out[key] = np.asarray(batch[key])[np.asarray(images, int)]
  clips = [int(clip_of_B[r]) for r in rows if clip_of_B[r] >= 0]
  if clips:
    for key in CLIP_KEYS:
      out[key] = np.asarray(batch[key])[clips]
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
  columns, clips checked against their placeholders, VLM positions/layout
  added."""
  out = {k: np.asarray(batch[k]) for k in DEVICE_KEYS if k in batch}
  if "positions" in batch:
    out["positions"] = np.asarray(batch["positions"])
  if bucket:
    out = trim(out, bucket)
  if "positions" in out:
    positions = out.pop("positions")
    out.setdefault("position_ids", positions)
  if cfg.audio is None:
    for key in CLIP_KEYS:
      out.pop(key, None)
  else:
    audio_lm.check_batch(cfg, out)
  no_visuals = out.get("pixel_values") is not None and not len(
    out["pixel_values"]
  )
  if cfg.vision is None or no_visuals:
    for key in ("pixel_values", *VISUAL_KEYS):
      out.pop(key, None)
  if cfg.vision is None:
    return out
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
