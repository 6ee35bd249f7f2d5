"""Qwen2.5-VL preprocessing equals transformers' for the same image."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from emojax.data import image_processor as ip

hf_pil = pytest.importorskip(
  "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl"
)

SMALL = dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)


def _hf(image, **kwargs):
  proc = hf_pil.Qwen2VLImageProcessorPil(**kwargs)
  out = proc(images=image, return_tensors="np")
  return out["pixel_values"], out["image_grid_thw"][0]


def _random_image(h, w, seed=0, mode="RGB"):
  rng = np.random.default_rng(seed)
  channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
  pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
  return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)


@pytest.mark.parametrize(
  "h,w",
  [
    (56, 56),  # already on the grid, inside the budget
    (64, 64),  # snapped to the grid
    (20, 30),  # below min_pixels: resized up
    (300, 500),  # above max_pixels: resized down
    (37, 211),  # wide
    (250, 41),  # tall
  ],
)
def test_matches_transformers_pil(h, w):
  image = _random_image(h, w, seed=h * w)
  cfg = ip.ImageProcessorConfig(**SMALL)
  pixel_values_NC, grid_thw = ip.preprocess(image, cfg)
  ref_pixels, ref_grid = _hf(image, **SMALL)
  np.testing.assert_array_equal(grid_thw, ref_grid)
  assert pixel_values_NC.dtype == np.float32
  np.testing.assert_array_equal(pixel_values_NC, ref_pixels)
  assert pixel_values_NC.shape == (int(np.prod(grid_thw)), 3 * 2 * 14 * 14)


def test_default_budget_matches_transformers():
  image = _random_image(120, 90, seed=3)
  pixel_values_NC, grid_thw = ip.preprocess(image)
  ref_pixels, ref_grid = _hf(image)
  np.testing.assert_array_equal(grid_thw, ref_grid)
  np.testing.assert_array_equal(pixel_values_NC, ref_pixels)


def test_matches_transformers_fast_when_available():
  pytest.importorskip("torchvision")
  from transformers.models.qwen2_vl import image_processing_qwen2_vl as fast

  image = _random_image(90, 130, seed=5)
  cfg = ip.ImageProcessorConfig(**SMALL)
  pixel_values_NC, grid_thw = ip.preprocess(image, cfg)
  out = fast.Qwen2VLImageProcessor(**SMALL)(images=image, return_tensors="pt")
  np.testing.assert_array_equal(grid_thw, out["image_grid_thw"][0].numpy())
  # The torchvision resize differs from PIL's by rounding only.
  np.testing.assert_allclose(
    pixel_values_NC, out["pixel_values"].numpy(), atol=0.1
  )


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK"])
def test_wrong_channels_converted_like_transformers(mode):
  image = _random_image(60, 80, seed=7, mode=mode)
  pixel_values_NC, _ = ip.preprocess(image, ip.ImageProcessorConfig(**SMALL))
  ref_pixels, _ = _hf(image, **SMALL)
  np.testing.assert_array_equal(pixel_values_NC, ref_pixels)


@pytest.mark.parametrize("channels", [1, 4])
def test_array_channels_converted_like_transformers(channels):
  rng = np.random.default_rng(channels)
  pixels = rng.integers(0, 256, (60, 80, channels), dtype=np.uint8)
  pixel_values_NC, _ = ip.preprocess(pixels, ip.ImageProcessorConfig(**SMALL))
  ref_pixels, _ = _hf(pixels, **SMALL)
  np.testing.assert_array_equal(pixel_values_NC, ref_pixels)


def test_wrong_channels_refused_with_message():
  cfg = ip.ImageProcessorConfig(wrong_channels="refuse", **SMALL)
  with pytest.raises(ip.ImageError, match="'L'.*wrong_channels='convert'"):
    ip.preprocess(_random_image(56, 56, mode="L"), cfg)
  with pytest.raises(ip.ImageError, match="4 channel"):
    ip.preprocess(np.zeros((56, 56, 4), np.uint8), cfg)


def test_out_of_budget_refused_says_which_side():
  cfg = ip.ImageProcessorConfig(out_of_budget="refuse", **SMALL)
  with pytest.raises(ip.ImageError, match="below min_pixels=3136"):
    ip.preprocess(_random_image(20, 30), cfg)
  with pytest.raises(ip.ImageError, match="above max_pixels=50176"):
    ip.preprocess(_random_image(300, 500), cfg)
  _, grid = ip.preprocess(_random_image(56, 112), cfg)
  np.testing.assert_array_equal(grid, [1, 4, 8])


def test_bytes_input_and_corrupt_bytes():
  image = _random_image(64, 48, seed=11)
  buf = io.BytesIO()
  image.save(buf, format="PNG")
  cfg = ip.ImageProcessorConfig(**SMALL)
  from_bytes, _ = ip.preprocess(buf.getvalue(), cfg)
  from_pil, _ = ip.preprocess(image, cfg)
  np.testing.assert_array_equal(from_bytes, from_pil)
  with pytest.raises(ip.ImageError, match="cannot decode"):
    ip.preprocess(buf.getvalue()[:40], cfg)


def test_extreme_aspect_ratio_refused():
  with pytest.raises(ip.ImageError, match="aspect ratio"):
    ip.smart_resize(10, 2100)


def test_num_image_tokens_matches_grid():
  assert ip.num_image_tokens([1, 4, 8], merge_size=2) == 8


def test_from_hf_dir(tmp_path):
  raw = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.25, 0.25, 0.25],
    "image_processor_type": "Qwen2VLImageProcessor",
  }
  (tmp_path / "preprocessor_config.json").write_text(json.dumps(raw))
  cfg = ip.ImageProcessorConfig.from_hf_dir(str(tmp_path))
  assert cfg.max_pixels == 12845056 and cfg.mean == (0.5, 0.5, 0.5)
  raw.pop("min_pixels")
  raw["size"] = {"shortest_edge": 1000, "longest_edge": 200000}
  (tmp_path / "preprocessor_config.json").write_text(json.dumps(raw))
  cfg = ip.ImageProcessorConfig.from_hf_dir(str(tmp_path))
  assert cfg.min_pixels == 1000 and cfg.max_pixels == 12845056
  image = _random_image(70, 50, seed=2)
  ref = hf_pil.Qwen2VLImageProcessorPil.from_pretrained(str(tmp_path))
  out = ref(images=image, return_tensors="np")
  pixel_values_NC, _ = ip.preprocess(image, cfg)
  np.testing.assert_array_equal(pixel_values_NC, out["pixel_values"])
  with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
    ip.ImageProcessorConfig.from_hf_dir(str(tmp_path / "missing"))
