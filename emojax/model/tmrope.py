"""A video with its soundtrack in Qwen2.5-Omni (TMRoPE): interleaved
placeholders and time-aligned positions.

With its sound, a video's prompt is `<|vision_bos|><|audio_bos|>`, then
chunks of `seconds_per_chunk` seconds, each the frames' `<|video_pad|>`
tokens followed by the sound's `<|AUDIO|>` tokens of that time, then
`<|audio_eos|><|vision_eos|>` (Qwen2.5-Omni's processor,
`replace_video_with_audio_token`). Positions share one time axis at
`tokens_per_second` (25) a second, the audio tokens' own rate: from a
start s, a video token of grid step i sits at s + floor(i *
second_per_grid_t * 25) in t (its row and column in h and w) and audio
token k at s + k in all three. Both bos tokens sit at s - 1, both eos one
past the largest position of the last chunk (transformers'
`get_rope_index` with `use_audio_in_video=True`, which this reproduces,
quirks included: its chunks pair by index, not by time, when a video's
steps are over a chunk apart).

emojax tells a video with sound by its tokens (the two bos in a row), so
one batch may mix videos with and without sound, where transformers takes
one flag for the whole batch. The host helpers here run before any
compute; the tokens' features are scattered by kind in row-major order as
for any visual or clip (`vlm`, `audio_lm`), which the interleaving keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emojax.model import audio, placeholders, vision
from emojax.model.config import ModelConfig


def chunks(values: Sequence[int], per_chunk: int) -> list[tuple[int, int]]:
  """[start, end) slices of non-decreasing `values`, a new one each time a
  value reaches the next multiple of `per_chunk` (transformers'
  `get_chunked_index`: the window advances by one per cut)."""
  out, start, window = [], 0, 1
  for i, v in enumerate(values):
    if v >= window * per_chunk:
      out.append((start, i))
      start, window = i, window + 1
  out.append((start, len(values)))
  return out


def times(t: int, second: float, rate: float) -> np.ndarray:
  """Time positions of a video's t grid steps: floor(i * second * rate),
  in float32 and in that order, as transformers computes them (1/3 s
  steps land on a chunk edge only so)."""
  steps = np.arange(t, dtype=np.float32) * np.float32(second)
  return (steps * np.float32(rate)).astype(np.int64)


def grid_positions(cfg: ModelConfig, grid_thw, second: float) -> np.ndarray:
  """A visual's (t, h, w) position offsets [3, t * h * w / merge^2], in
  its tokens' order; t is `times` at `tokens_per_second`."""
  t, h, w = (int(x) for x in grid_thw)
  m = cfg.vision.spatial_merge_size
  tt, hh, ww = np.meshgrid(
    times(t, second, cfg.vision.tokens_per_second),
    np.arange(h // m),
    np.arange(w // m),
    indexing="ij",
  )
  return np.stack([tt, hh, ww]).reshape(3, -1)


def chunk_lengths(
  grid_thw,
  merge: int,
  second: float,
  rate: float,
  seconds_per_chunk: float,
  num_audio: int,
) -> list[tuple[int, int]]:
  """(video tokens, audio tokens) of each chunk of a video with its sound,
  in prompt order: chunk j of the frames, then chunk j of the sound (the
  processor pairs them by index). Model-free, for the data pipeline."""
  t, h, w = (int(x) for x in grid_thw)
  per_step = (h // merge) * (w // merge)
  per = int(rate * seconds_per_chunk)
  video = chunks(np.repeat(times(t, second, rate), per_step), per)
  sound = chunks(np.arange(num_audio), per)
  n = lambda c, j: c[j][1] - c[j][0] if j < len(c) else 0
  return [
    (n(video, j), n(sound, j)) for j in range(max(len(video), len(sound)))
  ]


def interleaved_ids(
  cfg: ModelConfig, grid_thw, second: float, num_audio: int
) -> list[int]:
  """The tokens between `<|audio_bos|>` and `<|audio_eos|>` of a video
  (`grid_thw`, `second` per grid step) and its `num_audio` audio tokens."""
  lengths = chunk_lengths(
    grid_thw,
    cfg.vision.spatial_merge_size,
    second,
    cfg.vision.tokens_per_second,
    cfg.audio.seconds_per_chunk,
    num_audio,
  )
  ids = []
  for n_video, n_audio in lengths:
    ids += [cfg.video_token_id] * n_video + [cfg.audio_token_id] * n_audio
  return ids


def expand_video_audio_placeholders(
  cfg: ModelConfig,
  input_ids: Sequence[int],
  video_grid_thw,
  second_per_grid_ts,
  feature_lens,
) -> list[int]:
  """Replaces the i-th single `<|video_pad|>` by video i's frames and clip
  i's sound interleaved, inside `<|audio_bos|>` ... `<|audio_eos|>` (the
  prompt's `<|vision_bos|>`/`<|vision_eos|>` stay around it), as the
  processor does with `use_audio_in_video=True`. `feature_lens`: each
  clip's log-mel frames."""
  grids = np.asarray(video_grid_thw).reshape(-1, 3)
  seconds = np.asarray(second_per_grid_ts, np.float64).reshape(-1)
  counts = audio.num_tokens(np.asarray(feature_lens).reshape(-1))
  ids = [int(i) for i in input_ids]
  n = ids.count(cfg.video_token_id)
  if not n == len(grids) == len(seconds) == len(counts):
    raise ValueError(
      f"the prompt has {n} video placeholders (id {cfg.video_token_id}) "
      f"but {len(grids)} videos, {len(seconds)} second_per_grid_ts and "
      f"{len(counts)} clips were given; put one <|video_pad|> per video and "
      "give each video its grid, its seconds per grid step and its sound."
    )
  out, j = [], 0
  a = cfg.audio_token_id
  for i in ids:
    if i != cfg.video_token_id:
      out.append(i)
      continue
    body = interleaved_ids(cfg, grids[j], seconds[j], int(counts[j]))
    out += [a + 1, *body, a + 2]
    j += 1
  return out


def spans(cfg: ModelConfig, row: np.ndarray, b: int) -> list[tuple[int, int]]:
  """[start, end) of each video-with-sound's interleaved tokens in valid
  row `b`: after `<|vision_bos|><|audio_bos|>`, up to the
  `<|audio_eos|><|vision_eos|>` that must close it."""
  if cfg.audio is None or len(row) < 2:
    return []
  bos, eos = cfg.audio_token_id + 1, cfg.audio_token_id + 2
  pairs = (row[:-1] == cfg.vision_start_token_id) & (row[1:] == bos)
  out = []
  for s in np.flatnonzero(pairs) + 2:
    ends = np.flatnonzero(row[s:] == eos) + s
    if not len(ends) or ends[0] + 1 >= len(row):
      raise ValueError(
        f"row {b}: the prompt ends inside a video with its sound (no "
        f"<|audio_eos|><|vision_eos|> after valid token {s}); it was "
        "truncated through them. Raise the maximum prompt length or "
        "shorten the text, never the video."
      )
    if row[ends[0] + 1] != cfg.vision_start_token_id + 1:
      raise ValueError(
        f"row {b}: the video with its sound at valid token {s} is not "
        "closed by <|audio_eos|><|vision_eos|>; build the prompt with "
        "tmrope.expand_video_audio_placeholders."
      )
    out.append((int(s), int(ends[0])))
  return out


def grouped(cfg: ModelConfig, input_ids_BT, attention_mask_BT) -> np.ndarray:
  """The ids with each span's video tokens moved before its audio tokens,
  so that every video and every clip is one run for the placeholder
  checks and the visual stream's order (positions use the real order)."""
  ids_BT = np.array(input_ids_BT, copy=True)
  if cfg.audio is None:
    return ids_BT
  valid_BT = placeholders.valid_mask(ids_BT, attention_mask_BT)
  for b in range(len(ids_BT)):
    idx = np.flatnonzero(valid_BT[b])
    row = ids_BT[b, idx]
    for s, e in spans(cfg, row, b):
      seg = row[s:e]
      is_audio = seg == cfg.audio_token_id
      row[s:e] = np.concatenate([seg[~is_audio], seg[is_audio]])
    ids_BT[b, idx] = row
  return ids_BT


def span_positions(
  cfg: ModelConfig, seg: np.ndarray, grid_thw, second: float, start: int, row
) -> tuple[np.ndarray, int]:
  """Positions [3, len(seg)] of one span's tokens from `start`, and the
  position its two eos tokens share. Raises, naming `row`, unless `seg`
  is the processor's interleaving of this video and its clip."""
  num_audio = int(np.sum(seg == cfg.audio_token_id))
  want = interleaved_ids(cfg, grid_thw, second, num_audio)
  if len(seg) != len(want) or np.any(seg != want):
    frames = int(vision.num_merged_tokens(cfg.vision, [grid_thw])[0])
    raise ValueError(
      f"row {row}: a video with its sound (grid {list(grid_thw)}, "
      f"{frames} video tokens, {num_audio} audio tokens) is not "
      f"interleaved as Qwen2.5-Omni's processor does ({len(seg)} tokens, "
      f"{len(want)} expected); build the prompt with "
      "tmrope.expand_video_audio_placeholders."
    )
  out_3N = np.zeros((3, len(seg)), np.int64)
  out_3N[:, seg == cfg.video_token_id] = grid_positions(cfg, grid_thw, second)
  out_3N[:, seg == cfg.audio_token_id] = np.arange(num_audio)
  out_3N += start
  # The eos follow the last chunk (a run of one kind), not the span's max.
  cut = np.flatnonzero(seg != seg[-1])
  last = cut[-1] + 1 if len(cut) else 0
  return out_3N, int(out_3N[:, last:].max()) + 1
