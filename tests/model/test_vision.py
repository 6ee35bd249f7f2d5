"""Vision tower: layout and features against transformers' Qwen2.5-VL."""

import jax
import numpy as np
import pytest
import tiny_vlm_hf
import torch
from transformers import vision_utils

from emojax.model import config as config_lib
from emojax.model import params as params_lib
from emojax.model import vision

CFG = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)
VCFG = CFG.vision
GRIDS = [
  [[1, 8, 6], [1, 4, 10]],
  [[1, 8, 8]],  # merged grid a multiple of the window: empty pad windows
  [[2, 6, 4], [1, 12, 2]],  # a two-frame entry keeps frames apart
]


def _segments_from_cu(cu, n):
  ids = np.zeros(n, np.int64)
  for k, (s, e) in enumerate(zip(cu[:-1], cu[1:], strict=True)):
    ids[s:e] = k
  return ids


@pytest.mark.parametrize("grid", GRIDS)
def test_layout_matches_transformers(grid):
  g = torch.tensor(grid)
  m, unit = VCFG.spatial_merge_size, VCFG.spatial_merge_size**2
  index, cu_window = vision_utils.get_vision_window_index(
    g, m, VCFG.window_size, VCFG.patch_size
  )
  cu_full = vision_utils.get_vision_cu_seqlens(g).numpy()
  pos = vision_utils.get_vision_position_ids(g, m).numpy()
  lay = vision.layout(VCFG, grid)
  n = len(lay["perm_N"])
  np.testing.assert_array_equal(lay["perm_N"][::unit] // unit, index.numpy())
  np.testing.assert_array_equal(lay["pos_N2"], pos[lay["perm_N"]])
  np.testing.assert_array_equal(lay["unperm_U"], torch.argsort(index).numpy())
  # Same partition of the window-ordered axis as transformers' cu_seqlens.
  for got, cu in (
    (lay["window_segment_N"], cu_window.numpy()),
    (lay["full_segment_N"], cu_full),
  ):
    ref = _segments_from_cu(cu, n)
    change = np.flatnonzero(np.diff(got)) + 1
    np.testing.assert_array_equal(change, np.flatnonzero(np.diff(ref)) + 1)
    assert got.min() > 0


@pytest.fixture(scope="module")
def hf_and_params():
  hf = tiny_vlm_hf.model(CFG)
  return hf, tiny_vlm_hf.emojax_params(CFG, hf)


def _hf_features(hf, pixels, grid):
  with torch.no_grad():
    out = hf.model.get_image_features(
      torch.as_tensor(pixels), torch.as_tensor(grid)
    )
  return torch.cat(out.pooler_output).numpy()


def test_features_match_transformers(hf_and_params):
  hf, params = hf_and_params
  proc = tiny_vlm_hf.processor(CFG)(
    images=tiny_vlm_hf.images(), return_tensors="np"
  )
  pixels, grid = proc["pixel_values"], proc["image_grid_thw"]
  assert len({tuple(g) for g in grid.tolist()}) == 2  # two sizes
  ref = _hf_features(hf, pixels, grid)
  encode = jax.jit(vision.encode, static_argnums=1)
  got = encode(params["vision"], VCFG, pixels, vision.layout(VCFG, grid))
  assert (
    got.shape
    == ref.shape
    == (vision.num_merged_tokens(VCFG, grid).sum(), CFG.hidden_size)
  )
  np.testing.assert_allclose(np.asarray(got), ref, atol=1e-4, rtol=0)
  # Padding the patch axis (one program for many image sizes) changes
  # nothing in the real rows.
  padded = vision.layout(VCFG, grid, num_patches=len(pixels) + 32)
  got = encode(
    params["vision"], VCFG, np.pad(pixels, ((0, 32), (0, 0))), padded
  )
  np.testing.assert_allclose(
    np.asarray(got)[: len(ref)], ref, atol=1e-4, rtol=0
  )


def test_video_like_frames_match_transformers(hf_and_params):
  hf, params = hf_and_params
  grid = np.array([[2, 6, 4], [1, 4, 8]])
  rng = np.random.RandomState(1)
  pixels = rng.randn(grid.prod(-1).sum(), vision.patch_dim(VCFG))
  pixels = pixels.astype(np.float32)
  ref = _hf_features(hf, pixels, grid)
  got = vision.encode(params["vision"], VCFG, pixels, vision.layout(VCFG, grid))
  np.testing.assert_allclose(np.asarray(got), ref, atol=1e-4, rtol=0)


def test_param_count_is_tiny_and_matches_transformers(hf_and_params):
  hf, _ = hf_and_params
  n = params_lib.count(vision.specs(VCFG, CFG.hidden_size))
  assert n == sum(p.numel() for p in hf.model.visual.parameters())


def test_bad_channel_count_names_the_fix():
  grid = np.array([[1, 4, 4]])
  gray = np.zeros((16, 1 * 2 * 8 * 8), np.float32)
  with pytest.raises(ValueError, match=r"got 1 channel.*RGB"):
    vision.check_inputs(VCFG, gray, grid)


def test_bad_grid_and_patch_count():
  with pytest.raises(ValueError, match=r"image_grid_thw\[0\].*multiple"):
    vision.check_inputs(VCFG, np.zeros((15, 384)), np.array([[1, 3, 5]]))
  with pytest.raises(ValueError, match="describes 16"):
    vision.check_inputs(VCFG, np.zeros((20, 384)), np.array([[1, 4, 4]]))
