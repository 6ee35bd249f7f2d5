"""Qwen2.5-VL video preprocessing in numpy/PIL (runs inside a grain map).

A clip is a stack of sampled frames. Each frame is resized exactly as
`image_processor.preprocess` resizes an image (PIL bicubic to the size
`smart_resize` gives the first frame, rescale, normalise); the frame count
is padded to a multiple of temporal_patch_size by repeating the last frame;
the stack is cut into patches in the order of transformers'
`Qwen2VLVideoProcessor.patchify` (so a one-frame clip gives exactly the
patches of the same frame as an image). transformers resizes video frames
with torchvision, not PIL, so pixels differ from theirs by resampling
rounding; the layout, sizes and grids are theirs.

Frame sampling is qwen-vl-utils' (`torch.linspace(0, n - 1, k).round()`,
round half to even), and the sampled rate is `fps * k / n`, as its video
readers report it (transformers' own `sample_frames` strides with
`arange(0, n, n / k)` instead).
"""

from collections.abc import Sequence

import numpy as np

from emojax.data import image_processor as ip

# Qwen2.5-VL's video processor budget per frame (its `size`).
VIDEO_MIN_PIXELS = 128 * 28 * 28
VIDEO_MAX_PIXELS = 768 * 28 * 28
VIDEO = ip.ImageProcessorConfig(
  min_pixels=VIDEO_MIN_PIXELS, max_pixels=VIDEO_MAX_PIXELS
)


def sample_frames(num_available: int, num_frames: int) -> np.ndarray:
  """Indices (int64 [min(num_frames, num_available)]) of evenly spaced
  frames, first and last included."""
  if num_available < 1 or num_frames < 1:
    raise ValueError(
      f"sample_frames({num_available}, {num_frames}): a clip needs at least "
      "one stored frame and at least one frame to sample."
    )
  k = min(num_frames, num_available)
  return np.round(np.linspace(0, num_available - 1, k)).astype(np.int64)


def sampled_fps(fps: float, num_sampled: int, num_stored: int) -> float:
  """The rate of the sampled frames, given the stored frames' `fps`."""
  return fps * num_sampled / num_stored


def patchify(
  frames_TCHW: np.ndarray, cfg: ip.ImageProcessorConfig
) -> tuple[np.ndarray, np.ndarray]:
  """[T, C, H, W] (T a multiple of tp) -> pixel_values_NC [N, C*tp*p*p],
  video_grid_thw [3].

  Patches go time step by time step, then merge window by merge window as
  images do; each patch holds tp consecutive frames.
  """
  t, c, h, w = frames_TCHW.shape
  p, m, tp = cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size
  if t % tp:
    raise ValueError(
      f"{t} frames is not a multiple of temporal_patch_size={tp}; pad with "
      "the last frame first (preprocess_video does)."
    )
  grid_t, grid_h, grid_w = t // tp, h // p, w // p
  x = frames_TCHW.reshape(grid_t, tp, c, grid_h // m, m, p, grid_w // m, m, p)
  x = x.transpose(
    0, 3, 6, 4, 7, 2, 1, 5, 8
  )  # gt, gh, gw, mh, mw, C, tp, ph, pw
  pixel_values_NC = x.reshape(grid_t * grid_h * grid_w, c * tp * p * p)
  return pixel_values_NC, np.array([grid_t, grid_h, grid_w], dtype=np.int64)


def preprocess_video(
  frames,
  cfg: ip.ImageProcessorConfig = VIDEO,
  *,
  fps: float,
  frame_ids: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
  """Sampled frames -> (pixel_values_NC float32, video_grid_thw int64 [3],
  second_per_grid_t).

  `frames`: a sequence of PIL images, encoded bytes or uint8 arrays, all of
  one size; `fps`: their rate (after sampling); `frame_ids`: the frames'
  indices in the stored clip, for error messages (default 0, 1, ...).
  second_per_grid_t is the seconds one temporal patch spans,
  temporal_patch_size / fps.
  """
  if not fps > 0:
    raise ValueError(f"fps={fps}: a clip's frame rate must be > 0.")
  if not len(frames):
    raise ip.ImageError("the clip has no frames.")
  ids = list(range(len(frames)) if frame_ids is None else frame_ids)
  rgb = [_frame(f, i, cfg) for i, f in zip(ids, frames, strict=True)]
  height, width = rgb[0].shape[:2]
  for i, frame in zip(ids, rgb, strict=True):
    if frame.shape[:2] != (height, width):
      raise ip.ImageError(
        f"frame {i} is {frame.shape[0]}x{frame.shape[1]} but frame {ids[0]} "
        f"is {height}x{width}; a clip's frames must share one size "
        "(re-extract or resize the frames)."
      )
  size = ip.resized_size(height, width, cfg)
  frames_TCHW = np.stack([ip.resize_and_normalize(f, size, cfg) for f in rgb])
  # As transformers does: repeat the last frame up to a multiple of tp.
  pad = -len(frames_TCHW) % cfg.temporal_patch_size
  frames_TCHW = np.concatenate([frames_TCHW] + [frames_TCHW[-1:]] * pad)
  pixel_values_NC, grid_thw = patchify(frames_TCHW, cfg)
  return pixel_values_NC, grid_thw, cfg.temporal_patch_size / fps


def _frame(frame, index: int, cfg: ip.ImageProcessorConfig) -> np.ndarray:
  try:
    return ip.to_rgb(frame, cfg)
  except ip.ImageError as e:
    raise ip.ImageError(f"frame {index}: {e}") from None
