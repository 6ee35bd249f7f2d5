"""Greedy Qwen2.5-VL rollout with images against transformers' `generate`."""

import jax
import numpy as np
import tiny_vlm_hf

from emojax import rollout
from emojax.model import config as config_lib

CFG = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)
N = 8


def test_greedy_with_images_equals_transformers_generate():
  hf_model = tiny_vlm_hf.sharpen(tiny_vlm_hf.model(CFG))
  params = tiny_vlm_hf.emojax_params(CFG, hf_model)
  # Row 0: left-padded image + text; row 1: text only; row 2: text + image,
  # right padded (the engine left-aligns it).
  batch = tiny_vlm_hf.batch(CFG)
  aligned = tiny_vlm_hf.left_aligned(batch)
  mm = {"mm_token_type_ids": aligned["input_ids"] == CFG.image_token_id}
  want = tiny_vlm_hf.hf_greedy(hf_model, {**aligned, **mm}, N)
  got = rollout.generate(
    params,
    CFG,
    batch,
    jax.random.key(0),
    num_generations=2,
    max_new_tokens=N,
    greedy=True,
    stop_token_ids=(),
  )
  np.testing.assert_array_equal(got.group(got.completion_ids)[:, 0], want)
  np.testing.assert_array_equal(got.group(got.completion_ids)[:, 1], want)
  assert len(np.unique(want)) > 6  # a real path, not one repeated token
  # The images steer generation: other pixels change the image rows only.
  other = rollout.generate(
    params,
    CFG,
    {**batch, "pixel_values": -batch["pixel_values"]},
    jax.random.key(0),
    num_generations=2,
    max_new_tokens=N,
    greedy=True,
    stop_token_ids=(),
  )
  has_image = (batch["input_ids"] == CFG.image_token_id).any(axis=1)
  changed = (other.group(other.completion_ids)[:, 0] != want).any(axis=1)
  np.testing.assert_array_equal(changed, has_image)


def test_greedy_with_videos_equals_transformers_generate():
  """Videos (transformers' layout, time-scaled positions) decode as
  transformers decodes them; other frames change the video rows only."""
  hf_model = tiny_vlm_hf.sharpen(tiny_vlm_hf.model(CFG))
  params = tiny_vlm_hf.emojax_params(CFG, hf_model)
  batch = tiny_vlm_hf.video_batch(CFG)
  aligned = tiny_vlm_hf.left_aligned(batch)
  mm = {
    "mm_token_type_ids": tiny_vlm_hf.mm_token_types(CFG, aligned["input_ids"])
  }
  want = tiny_vlm_hf.hf_greedy(hf_model, {**aligned, **mm}, N)

  def greedy(b):
    out = rollout.generate(
      params,
      CFG,
      b,
      jax.random.key(0),
      num_generations=1,
      max_new_tokens=N,
      greedy=True,
      stop_token_ids=(),
    )
    return out.group(out.completion_ids)[:, 0]

  np.testing.assert_array_equal(greedy(batch), want)
  assert len(np.unique(want)) > 6
  other = {**batch, "pixel_values_videos": -batch["pixel_values_videos"]}
  changed = (greedy(other) != want).any(axis=1)
  np.testing.assert_array_equal(changed, [True, True, False])
