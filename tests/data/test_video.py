"""Video preprocessing: transformers' patch order, still == image, sampling."""

import io

import numpy as np
import pytest
from PIL import Image

from emojax.data import image_processor as ip
from emojax.data import video

SMALL = ip.ImageProcessorConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)


def _hf_patchify(videos, patch_size, merge_size, temporal_patch_size):
  """transformers' `Qwen2VLVideoProcessor.patchify`
  (models/qwen2_vl/video_processing_qwen2_vl.py), torch -> numpy line by
  line: pad with the last frame, view, permute, reshape."""
  batch_size, num_frames, channel, resized_height, resized_width = videos.shape
  if pad := -num_frames % temporal_patch_size:
    repeats = np.repeat(videos[:, -1:], pad, axis=1)
    videos = np.concatenate((videos, repeats), axis=1)
    num_frames += pad
  grid_t = num_frames // temporal_patch_size
  grid_h, grid_w = resized_height // patch_size, resized_width // patch_size
  patches = videos.reshape(
    batch_size,
    grid_t,
    temporal_patch_size,
    channel,
    grid_h // merge_size,
    merge_size,
    patch_size,
    grid_w // merge_size,
    merge_size,
    patch_size,
  )
  patches = patches.transpose(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
  flatten_patches = patches.reshape(
    batch_size,
    grid_t * grid_h * grid_w,
    channel * temporal_patch_size * patch_size * patch_size,
  )
  return flatten_patches, grid_t, grid_h, grid_w


def _frames(t, h, w, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("t", [2, 4, 6])
def test_patchify_matches_transformers_order(t):
  rng = np.random.default_rng(t)
  frames_TCHW = rng.standard_normal((t, 3, 56, 84)).astype(np.float32)
  pixel_values_NC, grid_thw = video.patchify(
    frames_TCHW, ip.ImageProcessorConfig()
  )
  ref, gt, gh, gw = _hf_patchify(frames_TCHW[None], 14, 2, 2)
  np.testing.assert_array_equal(grid_thw, [gt, gh, gw])
  np.testing.assert_array_equal(pixel_values_NC, ref[0])


@pytest.mark.parametrize("t", [1, 3, 4])
def test_preprocess_pads_and_lays_out_as_transformers(t):
  """Each frame resized as an image (pixels equal transformers' PIL image
  processor, tests/data/test_image_processor.py), then HF's padding and
  layout over the stack."""
  frames = _frames(t, 50, 70, seed=t)
  pixel_values_NC, grid_thw, second = video.preprocess_video(
    list(frames), SMALL, fps=8.0
  )
  size = ip.smart_resize(50, 70, 28, SMALL.min_pixels, SMALL.max_pixels)
  stack = np.stack([ip.resize_and_normalize(f, size, SMALL) for f in frames])
  ref, gt, gh, gw = _hf_patchify(stack[None], 14, 2, 2)
  np.testing.assert_array_equal(grid_thw, [gt, gh, gw])
  assert gt == -(-t // 2)
  np.testing.assert_array_equal(pixel_values_NC, ref[0])
  assert pixel_values_NC.dtype == np.float32
  assert second == 2 / 8.0


def test_still_frame_video_is_the_image():
  frame = _frames(1, 61, 45, seed=9)[0]
  for frames in ([frame], [frame, frame]):
    pixel_values_NC, grid_thw, _ = video.preprocess_video(frames, SMALL, fps=1)
    image_NC, image_thw = ip.preprocess(frame, SMALL)
    np.testing.assert_array_equal(grid_thw, image_thw)
    np.testing.assert_array_equal(pixel_values_NC, image_NC)


def test_frames_as_bytes_pil_or_arrays_agree():
  frames = _frames(2, 40, 40, seed=1)
  pngs = []
  for f in frames:
    out = io.BytesIO()
    Image.fromarray(f).save(out, "PNG")
    pngs.append(out.getvalue())
  a = video.preprocess_video(list(frames), SMALL, fps=4)
  b = video.preprocess_video(pngs, SMALL, fps=4)
  c = video.preprocess_video([Image.fromarray(f) for f in frames], SMALL, fps=4)
  for other in (b, c):
    np.testing.assert_array_equal(a[0], other[0])


def test_sample_frames_as_qwen_vl_utils():
  # qwen-vl-utils: torch.linspace(0, n - 1, k).round() (half to even).
  import torch

  for n, k in [(10, 4), (9, 4), (6, 3), (30, 8), (1, 8), (5, 8), (8, 8)]:
    want = torch.linspace(0, n - 1, min(n, k)).round().long().numpy()
    np.testing.assert_array_equal(video.sample_frames(n, k), want)
  np.testing.assert_array_equal(video.sample_frames(10, 4), [0, 3, 6, 9])
  np.testing.assert_array_equal(video.sample_frames(6, 3), [0, 2, 5])
  np.testing.assert_array_equal(video.sample_frames(5, 8), [0, 1, 2, 3, 4])
  assert video.sampled_fps(25.0, 8, 100) == 2.0
  with pytest.raises(ValueError, match="at least one"):
    video.sample_frames(0, 4)


def test_refusals_name_the_frame():
  frames = list(_frames(3, 40, 40))
  frames[2] = _frames(1, 40, 48)[0]
  with pytest.raises(ip.ImageError, match="frame 7 is 40x48 but frame 1"):
    video.preprocess_video(frames, SMALL, fps=4, frame_ids=[1, 4, 7])
  with pytest.raises(ip.ImageError, match="frame 1: cannot decode"):
    video.preprocess_video([frames[0], b"junk"], SMALL, fps=4)
  with pytest.raises(ValueError, match="fps=0"):
    video.preprocess_video(frames[:1], SMALL, fps=0)


def test_matches_transformers_video_processor_when_available():
  pytest.importorskip("torchvision")
  from transformers.models.qwen2_vl import video_processing_qwen2_vl as hf

  frames = _frames(4, 50, 70, seed=2)
  budget = dict(min_pixels=SMALL.min_pixels, max_pixels=SMALL.max_pixels)
  proc = hf.Qwen2VLVideoProcessor(**budget)
  out = proc(videos=[frames], return_tensors="np", do_sample_frames=False)
  pixel_values_NC, grid_thw, _ = video.preprocess_video(
    list(frames), SMALL, fps=2
  )
  np.testing.assert_array_equal(grid_thw, out["video_grid_thw"][0])
  # torchvision's resize differs from PIL's by rounding only.
  np.testing.assert_allclose(
    pixel_values_NC, out["pixel_values_videos"], atol=0.1
  )
