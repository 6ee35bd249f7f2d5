"""Host-side preparation of a prompt batch for the sampler.

The sampler writes every row at the same cache slot, so prompts must end
together: rows are left-aligned (real tokens moved to the right end, so a
right-padded batch works too) and the length is rounded up to a bucket so
batches of similar lengths share one compiled program. Positions count real
tokens, as transformers' `generate` derives them; with images they are
Qwen2.5-VL's 3-D positions (`vlm.prepare`). Clips (Qwen2.5-Omni) travel as
`input_features` and `audio_feature_lengths`, checked against their
placeholders (`audio_lm.check_batch`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from emojax.model import audio_lm, vlm
from emojax.model.config import ModelConfig

# Keys of the HF batch that the sampler uses; anything else is rejected so a
# misspelt key does not silently change nothing.
KNOWN_KEYS = (
  "input_ids",
  "attention_mask",
  "position_ids",
  "pixel_values",
  "image_grid_thw",
  "second_per_grid_ts",
  "pixel_values_videos",
  "video_grid_thw",
  "video_second_per_grid",  # Qwen2.5-Omni's name for second_per_grid_ts
  "input_features",
  "feature_attention_mask",
  "audio_feature_lengths",
)
# The visuals' keys, in emojax's one stream or transformers' video layout.
VISUAL_KEYS = (
  "pixel_values",
  "image_grid_thw",
  "second_per_grid_ts",
  "pixel_values_videos",
  "video_grid_thw",
  "video_second_per_grid",
)
# Keys a batch may carry that do not affect generation (Qwen2.5-Omni's
# use_audio_in_video: emojax reads a video's sound from its tokens).
IGNORED_KEYS = ("loss_mask", "use_audio_in_video")


def _mask(batch: Mapping) -> tuple[np.ndarray, np.ndarray]:
  if "input_ids" not in batch:
    raise ValueError("batch needs 'input_ids' [P, T] (HF names).")
  ids_PT = np.asarray(batch["input_ids"])
  if ids_PT.ndim != 2 or not np.issubdtype(ids_PT.dtype, np.integer):
    raise ValueError(
      f"batch['input_ids'] must be a 2-D integer array [P, T], got "
      f"{ids_PT.dtype} {ids_PT.shape}."
    )
  mask = batch.get("attention_mask")
  mask_PT = np.ones_like(ids_PT) if mask is None else np.asarray(mask)
  if mask_PT.shape != ids_PT.shape:
    raise ValueError(
      f"attention_mask {mask_PT.shape} and input_ids {ids_PT.shape} differ "
      "in shape."
    )
  if not np.isin(mask_PT, (0, 1)).all():
    raise ValueError("attention_mask must hold only 0 (padding) and 1.")
  return ids_PT, mask_PT.astype(bool)


def _spans(mask_PT: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Start and length of each row's one run of real tokens."""
  lengths_P = mask_PT.sum(axis=1)
  starts_P = np.argmax(mask_PT, axis=1)
  for p in range(mask_PT.shape[0]):
    if lengths_P[p] == 0:
      raise ValueError(
        f"row {p} of the prompt batch is all padding; every prompt needs "
        "at least one token."
      )
    if not mask_PT[p, starts_P[p] : starts_P[p] + lengths_P[p]].all():
      raise ValueError(
        f"row {p}: attention_mask has holes; padding must sit only before "
        "or after the prompt."
      )
  return starts_P, lengths_P


def left_align(x, starts_P, lengths_P, width: int) -> np.ndarray:
  """Moves each row's real span of `x` (`[..., P, T]`) to end at `width`."""
  x = np.asarray(x)
  out = np.zeros((*x.shape[:-1], width), x.dtype)
  for p, (s, n) in enumerate(zip(starts_P, lengths_P, strict=True)):
    out[..., p, width - n :] = x[..., p, s : s + n]
  return out


def prepare(cfg: ModelConfig, batch: Mapping, bucket: int = 16) -> dict:
  """`{input_ids, attention_mask, position_ids[, pixel_values, layout,
  input_features, audio_feature_lengths]}`.

  Everything is int32/float32 numpy with width a multiple of `bucket`;
  `position_ids` is `[P, T]`, or `[3, P, T]` for prompts with images.
  """
  unknown = sorted(set(batch) - set(KNOWN_KEYS) - set(IGNORED_KEYS))
  if unknown:
    raise ValueError(
      f"batch keys {unknown} are not used by generation; known keys: "
      f"{KNOWN_KEYS}. Drop them or fix their names."
    )
  ids_PT, mask_PT = _mask(batch)
  starts_P, lengths_P = _spans(mask_PT)
  width = -(-int(lengths_P.max()) // bucket) * bucket
  out = {
    "input_ids": left_align(ids_PT, starts_P, lengths_P, width),
    "attention_mask": left_align(mask_PT, starts_P, lengths_P, width),
  }
  if "position_ids" in batch:
    out["position_ids"] = left_align(
      batch["position_ids"], starts_P, lengths_P, width
    )
  visual_keys = [k for k in VISUAL_KEYS if batch.get(k) is not None]
  if visual_keys:
    if cfg.vision is None:
      raise ValueError(
        f"batch has {visual_keys[0]} but the model has no vision tower "
        f"(family={cfg.family!r}); drop the images or load a VLM."
      )
    out.update({k: batch[k] for k in visual_keys})
    out = vlm.prepare(cfg, out)
    for key in ("image_grid_thw", "second_per_grid_ts"):
      out.pop(key, None)
  lens = audio_lm.feature_lens(batch)
  if batch.get("input_features") is not None or lens is not None:
    out["input_features"] = np.asarray(batch["input_features"], np.float32)
    out["audio_feature_lengths"] = np.asarray(lens, np.int32)
  out = audio_lm.prepare(cfg, out)
  if "position_ids" not in out:
    real_PT = out["attention_mask"] > 0
    out["position_ids"] = (np.cumsum(real_PT, axis=1) - 1) * real_PT
  out["input_ids"] = out["input_ids"].astype(np.int32)
  out["attention_mask"] = out["attention_mask"].astype(np.int32)
  out["position_ids"] = np.asarray(out["position_ids"], np.int32)
  return out
