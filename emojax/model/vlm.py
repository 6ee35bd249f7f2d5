"""Merging images and videos into the language model: placeholders,
features, positions.

A Qwen2.5-VL prompt holds one run of `<|image_pad|>` tokens per image and
of `<|video_pad|>` per video, as many as the visual has merged patches
(t * h * w / merge^2; a video's t is its frames / temporal_patch_size).
emojax batches carry every visual in one stream, in placeholder order
across rows: `pixel_values` (their patches), `image_grid_thw` (one grid per
visual) and, with videos, `second_per_grid_ts` (seconds per temporal grid
step, one per visual), so the tower encodes images and videos in one call
and batch surgery moves one kind of item. transformers' layout (videos
apart in `pixel_values_videos` / `video_grid_thw`) is converted by
`from_hf_layout`; Qwen2.5-Omni's video with its sound is `tmrope`'s. The
host side (`expand_image_placeholders`,
`check_batch`, `get_rope_index`, `prepare`) works on numpy before any
compute and fails with a message naming the row; the device side
(`input_embeddings`) encodes the visuals and scatters their features into
those runs, inside jit.

  batch = vlm.prepare(cfg, batch)        # host: checks, 3-D positions, layout
  logits_BTV = jax.jit(forward, static_argnums=1)(params, cfg, batch)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emojax.model import decoder, placeholders, tmrope, vision
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


def expand_video_placeholders(
  cfg: ModelConfig, input_ids: Sequence[int], video_grid_thw
) -> list[int]:
  """Repeats each single `<|video_pad|>` by its video's merged-token count
  (t * h * w / merge^2), as `expand_image_placeholders` does images."""
  counts = vision.num_merged_tokens(cfg.vision, video_grid_thw).tolist()
  return placeholders.expand(
    placeholders.VIDEO, input_ids, cfg.video_token_id, counts
  )


def visual_ids(cfg: ModelConfig) -> tuple[int, int]:
  """The placeholder ids visual features replace: image and video pads."""
  return cfg.image_token_id, cfg.video_token_id


def check_batch(
  cfg: ModelConfig, input_ids_BT, attention_mask_BT, pixel_values, grid_thw
) -> None:
  """Raises, naming the row and the fix, when visuals and prompts disagree.

  Checks the pixels' channel count and grids, then that each row's image
  and video runs (in order across rows, the stream's order) match the
  visuals' token counts, so a prompt truncated through its visual tokens
  or a placeholder/visual count mismatch fails here, before any compute.
  """
  # A video with its sound is one run here (tmrope.grouped).
  ids_BT = tmrope.grouped(cfg, input_ids_BT, attention_mask_BT)
  valid_BT = placeholders.valid_mask(ids_BT, attention_mask_BT)
  has_video = bool(np.any(ids_BT[valid_BT] == cfg.video_token_id))
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
  kind = placeholders.VISUAL if has_video else placeholders.IMAGE
  # One stream: a video run counts as a visual run like an image's.
  visual_BT = np.where(ids_BT == cfg.video_token_id, cfg.image_token_id, ids_BT)
  placeholders.check(
    kind,
    visual_BT,
    attention_mask_BT,
    cfg.image_token_id,
    vision.num_merged_tokens(cfg.vision, grid).tolist(),
    lambda j: f"{kind.noun} {j} (grid {grid[j].tolist()})",
    open_ids=(cfg.image_token_id, cfg.vision_start_token_id),
    count_fix=" (image_grid_thw lists the visuals; fix the prompts or the "
    "visual list of the rows that differ)",
  )


def from_hf_layout(cfg: ModelConfig, batch: Mapping) -> dict:
  """transformers' batch (images in `pixel_values`, videos apart in
  `pixel_values_videos`, `video_grid_thw`, per-video `second_per_grid_ts`)
  as emojax's one visual stream in placeholder order (see the module
  docstring); a batch without videos comes back unchanged."""
  batch = dict(batch)
  # Qwen2.5-Omni's names: its per-video seconds, and the flag emojax reads
  # from the tokens instead (a video with sound has two bos in a row).
  batch.pop("use_audio_in_video", None)
  if "video_second_per_grid" in batch:
    batch["second_per_grid_ts"] = batch.pop("video_second_per_grid")
  if batch.get("pixel_values_videos") is None:
    return batch
  out = {k: v for k, v in batch.items() if "video" not in k}
  out.pop("second_per_grid_ts", None)
  given = lambda key, empty: empty if batch.get(key) is None else batch[key]
  grids = {
    kind: np.asarray(given(f"{kind}_grid_thw", np.zeros((0, 3))), int).reshape(
      -1, 3
    )
    for kind in ("image", "video")
  }
  pixels = {
    "image": np.asarray(given("pixel_values", np.zeros((0, 1)))),
    "video": np.asarray(batch["pixel_values_videos"]),
  }
  for kind, key in (
    ("image", "pixel_values"),
    ("video", "pixel_values_videos"),
  ):
    grid = grids[kind]
    if len(pixels[kind]) != grid.prod(-1).sum():
      raise ValueError(
        f"{key} has {len(pixels[kind])} patches but the {kind} grids "
        f"{grid.tolist()} describe {grid.prod(-1).sum()}; pass the grids "
        "that came with these pixels."
      )
  seconds = given("second_per_grid_ts", np.ones(len(grids["video"])))
  if len(seconds) != len(grids["video"]):
    raise ValueError(
      f"second_per_grid_ts has {len(seconds)} values for "
      f"{len(grids['video'])} videos (video_grid_thw); give one per video."
    )
  ends = {k: np.cumsum(g.prod(-1)) for k, g in grids.items()}
  taken = {"image": 0, "video": 0}
  order_pixels, order_grids, order_seconds = [], [], []
  ids_BT = tmrope.grouped(cfg, batch["input_ids"], batch.get("attention_mask"))
  valid_BT = placeholders.valid_mask(ids_BT, batch.get("attention_mask"))
  for b in range(len(ids_BT)):
    row = ids_BT[b][valid_BT[b]]
    is_visual = np.isin(row, visual_ids(cfg))
    for s, _ in placeholders.runs(is_visual):
      kind = "video" if row[s] == cfg.video_token_id else "image"
      j = taken[kind]
      taken[kind] += 1
      if j >= len(grids[kind]):
        raise ValueError(
          f"row {b}: more {kind} placeholder runs than the batch's "
          f"{len(grids[kind])} {kind}s; fix the prompts or the {kind} list."
        )
      start = ends[kind][j] - grids[kind][j].prod()
      order_pixels.append(pixels[kind][start : ends[kind][j]])
      order_grids.append(grids[kind][j])
      order_seconds.append(float(seconds[j]) if kind == "video" else 1.0)
  for kind, n in taken.items():
    if n != len(grids[kind]):
      raise ValueError(
        f"the batch has {len(grids[kind])} {kind}s but its prompts hold "
        f"{n} {kind} placeholder runs; each needs one run, in order."
      )
  out["pixel_values"] = np.concatenate(order_pixels).astype(np.float32)
  out["image_grid_thw"] = np.asarray(order_grids, np.int64)
  out["second_per_grid_ts"] = np.asarray(order_seconds, np.float32)
  return out


def get_rope_index(
  cfg: ModelConfig,
  input_ids_BT,
  image_grid_thw=None,
  attention_mask_BT=None,
  second_per_grid_ts=None,
) -> tuple[np.ndarray, np.ndarray]:
  """Qwen2.5-VL's 3-D positions `[3, B, T]` and rope deltas `[B]`.

  Text advances all three components by one per token; a visual's tokens
  take (t, row, column) offsets from the position where it starts, a
  video's t scaled to time: grid step i sits at
  floor(i * second_per_grid_t * tokens_per_second). The text after a
  visual resumes one past the visual's largest position, as Qwen2.5-VL's
  own code and vLLM do (transformers 5.x resumes at start + max(h, w) /
  merge, which differs only when a video's time outruns its width).
  A Qwen2.5-Omni video with its sound takes `tmrope.span_positions`.
  Padding gets 0. The delta (max position + 1 - length) continues
  positions during decoding. `second_per_grid_ts` is per visual (1.0
  when absent).
  """
  ids_BT = np.asarray(input_ids_BT)
  valid_BT = placeholders.valid_mask(ids_BT, attention_mask_BT)
  grid = np.asarray(image_grid_thw, np.int64).reshape(-1, 3)
  seconds = (
    np.ones(len(grid)) if second_per_grid_ts is None else second_per_grid_ts
  )
  if len(seconds) != len(grid):
    raise ValueError(
      f"second_per_grid_ts has {len(seconds)} values for {len(grid)} "
      "visuals; emojax's stream holds one per visual (images: 1.0). "
      "Convert transformers' per-video values with vlm.from_hf_layout."
    )
  visuals = iter(zip(grid.tolist(), np.asarray(seconds).tolist(), strict=True))
  positions_3BT = np.zeros((3, *ids_BT.shape), np.int32)
  deltas_B = np.zeros(ids_BT.shape[0], np.int32)
  for b in range(ids_BT.shape[0]):
    row = ids_BT[b][valid_BT[b]]
    pieces, pos, prev = [], 0, 0
    for s, e, with_sound in _visual_segments(cfg, row, b) + [
      (len(row),) * 2 + (0,)
    ]:
      # A video with sound: its two bos share one position (tmrope).
      n_text = s - prev - (2 if with_sound else 0)
      text = np.arange(n_text) + pos
      pieces.append(np.broadcast_to(text, (3, n_text)))
      pos += n_text
      prev = e
      if s == e:
        continue
      grid, second = next(visuals)
      if with_sound:
        pieces.append(np.full((3, 2), pos))
        block, eos = tmrope.span_positions(
          cfg, row[s:e], grid, second, pos + 1, b
        )
        pieces += [block, np.full((3, 2), eos)]
        pos, prev = eos + 1, e + 2
        continue
      if row[s] != cfg.video_token_id:
        second = 0.0  # A still: one grid step, no time (as Qwen's code).
      block = tmrope.grid_positions(cfg, grid, second) + pos
      pieces.append(block)
      pos = int(block.max()) + 1
    row_3T = np.concatenate(pieces, axis=1)
    positions_3BT[:, b, valid_BT[b]] = row_3T
    deltas_B[b] = (row_3T.max() + 1 if len(row) else 0) - len(row)
  return positions_3BT, deltas_B


def _visual_segments(
  cfg: ModelConfig, row, b: int
) -> list[tuple[int, int, bool]]:
  """(start, end, with_sound) of valid row `b`'s visual runs, a video with
  its sound being one segment (its interleaved span) in row order."""
  sound = tmrope.spans(cfg, row, b)
  inside = np.zeros(len(row) + 1, bool)
  for s, e in sound:
    inside[s:e] = True
  runs = placeholders.runs(np.isin(row, visual_ids(cfg)) & ~inside[:-1])
  return sorted(
    [(s, e, False) for s, e in runs] + [(s, e, True) for s, e in sound]
  )


def prepare(
  cfg: ModelConfig, batch: Mapping, num_patches: int | None = None
) -> dict:
  """Host step before jit: the one visual stream (`from_hf_layout`),
  checks, 3-D `position_ids`, the vision layout.

  `num_patches` pads `pixel_values` to a fixed patch budget so batches with
  different image sizes reuse one compiled forward.
  """
  out = from_hf_layout(cfg, batch)
  pixels = out.get("pixel_values")
  grid = out.get("image_grid_thw")
  mask = out.get("attention_mask")
  check_batch(cfg, out["input_ids"], mask, pixels, grid)
  if pixels is None:
    return out
  if "position_ids" not in out:
    out["position_ids"], _ = get_rope_index(
      cfg, out["input_ids"], grid, mask, out.get("second_per_grid_ts")
    )
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


def one_stream(cfg: ModelConfig, batch):
  """`batch` with its videos in the visual stream (`from_hf_layout`), for
  callers that skipped `prepare`; unchanged (the same object) when it has
  none, so calling it again costs nothing."""
  if batch.get("pixel_values_videos") is None:
    return batch
  if not _concrete(batch["input_ids"]):
    raise _need_host("pixel_values_videos' placement")
  return from_hf_layout(cfg, batch)


def image_features(params, cfg: ModelConfig, batch) -> jax.Array:
  """Merged features `[U, D]` of the batch's visuals, in placeholder
  order."""
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
  """The batch's 3-D positions; None when it has no visuals (1-D is
  used)."""
  if "position_ids" in batch:
    return jnp.asarray(batch["position_ids"], jnp.int32)
  batch = one_stream(cfg, batch)
  if batch.get("image_grid_thw") is None:
    return None
  if not _concrete(batch["input_ids"]):
    raise _need_host("input_ids")
  positions_3BT, _ = get_rope_index(
    cfg,
    batch["input_ids"],
    batch["image_grid_thw"],
    batch.get("attention_mask"),
    batch.get("second_per_grid_ts"),
  )
  return jnp.asarray(positions_3BT)


def scatter(x_BTD, features_UD, input_ids_BT, token_ids):
  """Replaces the embeddings of placeholders (`token_ids`: one id or a
  tuple) by features, in row-major order."""
  is_image_BT = jnp.isin(input_ids_BT, jnp.asarray(token_ids))
  index_BT = jnp.cumsum(is_image_BT.reshape(-1)).reshape(is_image_BT.shape) - 1
  index_BT = jnp.clip(index_BT, 0, features_UD.shape[0] - 1)
  feats_BTD = features_UD.astype(x_BTD.dtype)[index_BT]
  return jnp.where(is_image_BT[..., None], feats_BTD, x_BTD)


def input_embeddings(params, cfg: ModelConfig, batch) -> jax.Array:
  """Token embeddings with visual features in the placeholder slots."""
  x_BTD = decoder.embed_tokens(params, cfg, batch["input_ids"])
  if cfg.vision is not None:
    batch = one_stream(cfg, batch)
  if cfg.vision is None or batch.get("pixel_values") is None:
    return x_BTD
  features_UD = image_features(params, cfg, batch)
  return scatter(x_BTD, features_UD, batch["input_ids"], visual_ids(cfg))
