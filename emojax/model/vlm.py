"""Merging images into the language model: placeholders, features, positions.

A Qwen2.5-VL prompt holds one run of `<|image_pad|>` tokens per image, as
many as the image has merged patches (t * h * w / merge^2). The host side
(`expand_image_placeholders`, `check_batch`, `get_rope_index`, `prepare`)
works on numpy before any compute and fails with a message naming the row;
the device side (`input_embeddings`) encodes the images and scatters their
features into those runs, inside jit.

  batch = vlm.prepare(cfg, batch)        # host: checks, 3-D positions, layout
  logits_BTV = jax.jit(forward, static_argnums=1)(params, cfg, batch)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emojax.model import decoder, placeholders, vision
from emojax.model.config import ModelConfig

LAYOUT_KEY = "vision_layout"


def specs(cfg: ModelConfig) -> dict:
  """The `vision` subtree (tower and merger) added to the decoder's specs."""
  if cfg.vision.out_hidden_size != cfg.hidden_size:
    raise ValueError(
      f"VisionConfig.out_hidden_size={cfg.vision.out_hidden_size} must "
      f"equal the language model's hidden_size={cfg.hidden_size}: the "
      "merger writes image features into token embeddings."
    )
  return {"vision": vision.specs(cfg.vision, cfg.hidden_size, cfg.param_dtype)}


def trainable_mask(params, freeze_vision: bool, train_merger: bool = False):
  """A bool tree like `params`: False for the frozen towers.

  `freeze_vision` freezes the perception towers: the vision tower and
  merger, and Qwen2.5-Omni's audio tower (which a text or image recipe
  never runs: trained, weight decay alone would erode it). Feed the mask
  to `optax.masked` (or multiply gradients) to train the language model
  only, as Facial-R1's SFT and GRPO stages do. `train_merger` keeps the
  merger trainable (the base model's caption stage: tower frozen).
  """

  def mask(path, _):
    top = path[0].key
    merger = len(path) > 1 and getattr(path[1], "key", None) == "merger"
    tower = top == "audio" or (
      top == "vision" and not (train_merger and merger)
    )
    return not (freeze_vision and tower)

  return jax.tree_util.tree_map_with_path(mask, params)


def stop_frozen(params, freeze_vision: bool, train_merger: bool = False):
  """`params` with the frozen leaves (`trainable_mask`) behind
  stop_gradient, so a gradient is all zeros there and XLA drops the
  tower's backward (the tiny VLM's SFT gradient: 30% fewer FLOPs, 45%
  less temporary memory). Zeroing their updates alone still paid for it."""
  mask = trainable_mask(params, freeze_vision, train_merger)
  keep = lambda x, trained: x if trained else jax.lax.stop_gradient(x)
  return jax.tree.map(keep, params, mask)


def placeholder_ids(cfg) -> tuple[int, ...]:
  """Ids a model must never write: image/video slots, vision start/end and,
  with an audio tower, the audio slot and audio start/end (none: text)."""
  out = ()
  if cfg.vision is not None:
    start = cfg.vision_start_token_id
    out += (start, start + 1, cfg.image_token_id, cfg.video_token_id)
  if cfg.audio is not None:
    a = cfg.audio_token_id
    out += (a, a + 1, a + 2)
  return out


def expand_image_placeholders(
  cfg: ModelConfig, input_ids: Sequence[int], image_grid_thw
) -> list[int]:
  """Repeats each single `<|image_pad|>` by its image's merged-token count.

  Use it on one tokenised prompt (one placeholder per image, the chat
  template's output) with that prompt's images' grids, in order.
  """
  counts = vision.num_merged_tokens(cfg.vision, image_grid_thw).tolist()
  return placeholders.expand(
    placeholders.IMAGE, input_ids, cfg.image_token_id, counts
  )


def check_batch(
  cfg: ModelConfig, input_ids_BT, attention_mask_BT, pixel_values, grid_thw
) -> None:
  """Raises, naming the row and the fix, when images and prompts disagree.

  Checks the pixels' channel count and grids, then that each row's image
  runs (in order across rows, as transformers consumes them) match the
  images' token counts, so a prompt truncated through its image tokens or
  a placeholder/image count mismatch fails here, before any compute.
  """
  ids_BT = np.asarray(input_ids_BT)
  valid_BT = placeholders.valid_mask(ids_BT, attention_mask_BT)
  if np.any(ids_BT[valid_BT] == cfg.video_token_id):
    raise ValueError(
      f"input_ids hold video placeholders (id {cfg.video_token_id}); emojax "
      "supports images only. Sample frames and pass them as images."
    )
  if pixel_values is None and grid_thw is None:
    grid_thw = np.zeros((0, 3), np.int64)
  elif pixel_values is None or grid_thw is None:
    raise ValueError(
      "pass pixel_values and image_grid_thw together (the image processor "
      "returns both)."
    )
  else:
    vision.check_inputs(cfg.vision, pixel_values, grid_thw)
  grid = np.asarray(grid_thw).reshape(-1, 3)
  placeholders.check(
    placeholders.IMAGE,
    ids_BT,
    attention_mask_BT,
    cfg.image_token_id,
    vision.num_merged_tokens(cfg.vision, grid).tolist(),
    lambda j: f"image {j} (grid {grid[j].tolist()})",
    open_ids=(cfg.image_token_id, cfg.vision_start_token_id),
    count_fix=" (image_grid_thw lists the images; fix the prompts or the "
    "image list of the rows that differ)",
  )


def get_rope_index(
  cfg: ModelConfig, input_ids_BT, image_grid_thw=None, attention_mask_BT=None
) -> tuple[np.ndarray, np.ndarray]:
  """Qwen2.5-VL's 3-D positions `[3, B, T]` and rope deltas `[B]`.

  Text advances all three components by one per token; an image's tokens
  take (t, row, column) offsets from the position where it starts, and the
  text after it resumes at start + max(h, w) / merge. Padding gets 0. The
  delta (max position + 1 - length) continues positions during decoding.
  """
  ids_BT = np.asarray(input_ids_BT)
  valid_BT = placeholders.valid_mask(ids_BT, attention_mask_BT)
  m = cfg.vision.spatial_merge_size
  grids = iter(np.asarray(image_grid_thw, np.int64).reshape(-1, 3).tolist())
  positions_3BT = np.zeros((3, *ids_BT.shape), np.int32)
  deltas_B = np.zeros(ids_BT.shape[0], np.int32)
  for b in range(ids_BT.shape[0]):
    row = ids_BT[b][valid_BT[b]]
    pieces, pos, prev = [], 0, 0
    image_runs = placeholders.runs(row == cfg.image_token_id)
    for s, e in image_runs + [(len(row), len(row))]:
      text = np.arange(s - prev) + pos
      pieces.append(np.broadcast_to(text, (3, len(text))))
      pos += s - prev
      prev = e
      if s == e:
        continue
      t, h, w = next(grids)
      tt, hh, ww = np.meshgrid(
        np.arange(t), np.arange(h // m), np.arange(w // m), indexing="ij"
      )
      pieces.append(np.stack([tt, hh, ww]).reshape(3, -1) + pos)
      pos += max(h, w) // m
    row_3T = np.concatenate(pieces, axis=1)
    positions_3BT[:, b, valid_BT[b]] = row_3T
    deltas_B[b] = (row_3T.max() + 1 if len(row) else 0) - len(row)
  return positions_3BT, deltas_B


def prepare(
  cfg: ModelConfig, batch: Mapping, num_patches: int | None = None
) -> dict:
  """Host step before jit: checks, 3-D `position_ids`, the vision layout.

  `num_patches` pads `pixel_values` to a fixed patch budget so batches with
  different image sizes reuse one compiled forward.
  """
  out = dict(batch)
  pixels = batch.get("pixel_values")
  grid = batch.get("image_grid_thw")
  mask = batch.get("attention_mask")
  check_batch(cfg, batch["input_ids"], mask, pixels, grid)
  if pixels is None:
    return out
  if "position_ids" not in batch:
    out["position_ids"], _ = get_rope_index(cfg, batch["input_ids"], grid, mask)
  layout = vision.layout(cfg.vision, grid, num_patches)
  pad = len(layout["perm_N"]) - np.shape(pixels)[0]
  out["pixel_values"] = np.pad(np.asarray(pixels), ((0, pad), (0, 0)))
  out[LAYOUT_KEY] = layout
  return out


def _concrete(x) -> bool:
  return x is not None and not isinstance(x, jax.core.Tracer)


def _need_host(what: str):
  return ValueError(
    f"{what} is traced, so Qwen2.5-VL's {what} cannot be derived inside "
    "jit; call emojax.model.vlm.prepare(cfg, batch) on the host first and "
    "pass its output."
  )


def image_features(params, cfg: ModelConfig, batch) -> jax.Array:
  """Merged features `[U, D]` of the batch's images, in placeholder order."""
  layout = batch.get(LAYOUT_KEY)
  if layout is None:
    if not _concrete(batch["image_grid_thw"]):
      raise _need_host("image_grid_thw")
    check_batch(
      cfg,
      batch["input_ids"],
      batch.get("attention_mask"),
      batch["pixel_values"],
      batch["image_grid_thw"],
    )
    layout = vision.layout(cfg.vision, batch["image_grid_thw"])
  return vision.encode(
    params["vision"],
    cfg.vision,
    jnp.asarray(batch["pixel_values"]),
    layout,
    dtype=jnp.dtype(cfg.dtype),
    impl=cfg.attention,
  )


def position_ids(cfg: ModelConfig, batch) -> jax.Array | None:
  """The batch's 3-D positions; None when it has no images (1-D is used)."""
  if "position_ids" in batch:
    return jnp.asarray(batch["position_ids"], jnp.int32)
  if batch.get("image_grid_thw") is None:
    return None
  if not _concrete(batch["input_ids"]):
    raise _need_host("input_ids")
  positions_3BT, _ = get_rope_index(
    cfg,
    batch["input_ids"],
    batch["image_grid_thw"],
    batch.get("attention_mask"),
  )
  return jnp.asarray(positions_3BT)


def scatter(x_BTD, features_UD, input_ids_BT, image_token_id: int):
  """Replaces image placeholder embeddings by features, in row-major order."""
  is_image_BT = input_ids_BT == image_token_id
  index_BT = jnp.cumsum(is_image_BT.reshape(-1)).reshape(is_image_BT.shape) - 1
  index_BT = jnp.clip(index_BT, 0, features_UD.shape[0] - 1)
  feats_BTD = features_UD.astype(x_BTD.dtype)[index_BT]
  return jnp.where(is_image_BT[..., None], feats_BTD, x_BTD)


def input_embeddings(params, cfg: ModelConfig, batch) -> jax.Array:
  """Token embeddings with image features in the placeholder slots."""
  x_BTD = decoder.embed_tokens(params, cfg, batch["input_ids"])
  if cfg.vision is None or batch.get("pixel_values") is None:
    return x_BTD
  features_UD = image_features(params, cfg, batch)
  return scatter(x_BTD, features_UD, batch["input_ids"], cfg.image_token_id)
