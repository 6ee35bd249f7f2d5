"""Videos in Qwen2.5-VL: the one visual stream, time-scaled 3-D positions
and logits against transformers' video path."""

import jax
import numpy as np
import pytest
import tiny_vlm_hf
import torch

from emojax.model import config as config_lib
from emojax.model import model as model_lib
from emojax.model import vlm

CFG = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)


@pytest.fixture(scope="module")
def setup():
  hf = tiny_vlm_hf.model(CFG)
  return hf, tiny_vlm_hf.emojax_params(CFG, hf)


def _hf_logits(hf, batch):
  t = {k: torch.as_tensor(v) for k, v in batch.items()}
  t["mm_token_type_ids"] = tiny_vlm_hf.mm_token_types(CFG, t["input_ids"])
  with torch.no_grad():
    return hf(**t).logits.numpy()


def test_one_stream_orders_visuals_by_placeholder():
  b = tiny_vlm_hf.video_batch(CFG)
  out = vlm.from_hf_layout(CFG, b)
  assert "pixel_values_videos" not in out and "video_grid_thw" not in out
  # Row 0's video A, then row 1's image, then row 1's video B.
  np.testing.assert_array_equal(
    out["image_grid_thw"], [[3, 4, 6], [1, 4, 4], [2, 4, 4]]
  )
  np.testing.assert_array_equal(out["second_per_grid_ts"], [0.5, 1.0, 0.25])
  a, image = 72, 16
  pixels = out["pixel_values"]
  np.testing.assert_array_equal(pixels[:a], b["pixel_values_videos"][:a])
  np.testing.assert_array_equal(pixels[a : a + image], b["pixel_values"])
  np.testing.assert_array_equal(
    pixels[a + image :], b["pixel_values_videos"][a:]
  )


def _rope_index(hf_batch):
  """emojax's positions of a transformers-layout batch."""
  one = vlm.from_hf_layout(CFG, hf_batch)
  return vlm.get_rope_index(
    CFG,
    one["input_ids"],
    one["image_grid_thw"],
    one["attention_mask"],
    one["second_per_grid_ts"],
  )


def test_rope_index_matches_transformers(setup):
  hf, _ = setup
  b = tiny_vlm_hf.video_batch(CFG)
  ref_pos, ref_delta = tiny_vlm_hf.hf_rope_index(hf, CFG, b)
  pos, delta = _rope_index(b)
  np.testing.assert_array_equal(pos, ref_pos)
  np.testing.assert_array_equal(delta, ref_delta)
  # Time is real: video A's temporal component steps 0, 1, 2 (0.5 s a
  # step at 2 per second); video B's 0.25 s steps floor to 0, 0.
  video_a = b["input_ids"][0] == CFG.video_token_id
  start = pos[0, 0, video_a].min()
  np.testing.assert_array_equal(
    np.unique(pos[0, 0, video_a]) - start, [0, 1, 2]
  )
  video_b = b["input_ids"][1] == CFG.video_token_id
  assert len(np.unique(pos[0, 1, video_b])) == 1


def test_text_resumes_past_a_video_whose_time_outruns_its_width():
  """Qwen2.5-VL's released code (and vLLM): the text after a visual
  starts one past the visual's largest position. With 2-s steps (4
  positions each) video A's time reaches start + 8, beyond its 3 merged
  columns; transformers 5.x would restart the text at start + 3."""
  b = tiny_vlm_hf.video_batch(CFG, seconds=(2.0, 0.25))
  pos, delta = _rope_index(b)
  row = b["input_ids"][0][b["attention_mask"][0] > 0]
  p = pos[:, 0, b["attention_mask"][0] > 0]
  video = np.flatnonzero(row == CFG.video_token_id)
  start = 4  # 3 text tokens, vision start, then the video
  np.testing.assert_array_equal(
    np.unique(p[0, video]), [start, start + 4, start + 8]
  )
  np.testing.assert_array_equal(
    p[:, video[-1] + 1], [start + 9] * 3
  )  # vision end
  assert delta[0] == p.max() + 1 - len(row)


@pytest.mark.parametrize("prepared", [False, True])
def test_logits_match_transformers(setup, prepared):
  hf, params = setup
  b = tiny_vlm_hf.video_batch(CFG)
  ref = _hf_logits(hf, b)
  inputs = vlm.prepare(CFG, b, num_patches=256) if prepared else b
  got = np.asarray(model_lib.forward(params, CFG, inputs))
  valid = b["attention_mask"] > 0
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)
  # The frames steer the logits: other video pixels change the video rows.
  other = {**b, "pixel_values_videos": -b["pixel_values_videos"]}
  moved = np.asarray(model_lib.forward(params, CFG, other))
  changed = np.abs(moved - got).max(-1).max(-1) > 1e-3
  np.testing.assert_array_equal(changed, [True, True, False])


def test_jit_needs_prepare_for_videos(setup):
  _, params = setup
  b = tiny_vlm_hf.video_batch(CFG)
  fwd = jax.jit(lambda p, x: model_lib.forward(p, CFG, x))
  with pytest.raises(ValueError, match="prepare"):
    fwd(params, b)
  prepared = vlm.prepare(CFG, b, num_patches=256)
  layout = prepared.pop(vlm.LAYOUT_KEY)
  got = jax.jit(
    lambda p, x, lay: model_lib.forward(p, CFG, {**x, vlm.LAYOUT_KEY: lay})
  )(params, prepared, layout)
  np.testing.assert_allclose(
    np.asarray(got), np.asarray(model_lib.forward(params, CFG, b)), atol=1e-5
  )


def test_video_count_mismatch_names_the_row():
  b = tiny_vlm_hf.video_batch(CFG)
  one_video = {
    "video_grid_thw": b["video_grid_thw"][:1],
    "pixel_values_videos": b["pixel_values_videos"][:72],
    "second_per_grid_ts": b["second_per_grid_ts"][:1],
  }
  with pytest.raises(ValueError, match="row 1: more video placeholder runs"):
    vlm.from_hf_layout(CFG, {**b, **one_video})
  with pytest.raises(ValueError, match="has 104 patches but the video grid"):
    vlm.from_hf_layout(CFG, {**b, "video_grid_thw": b["video_grid_thw"][:1]})
  with pytest.raises(ValueError, match="1 values for 2 videos"):
    vlm.from_hf_layout(CFG, {**b, "second_per_grid_ts": [0.5]})
  no_runs = b["input_ids"].copy()
  no_runs[no_runs == CFG.video_token_id] = 7
  with pytest.raises(ValueError, match="2 videos but its prompts hold 0"):
    vlm.from_hf_layout(CFG, {**b, "input_ids": no_runs})
  one = vlm.from_hf_layout(CFG, b)
  ids = one["input_ids"].copy()
  ids[0, ids[0] == CFG.video_token_id] = 7  # video A's run dropped
  with pytest.raises(ValueError, match="visual placeholder runs"):
    vlm.check_batch(
      CFG,
      ids,
      one["attention_mask"],
      one["pixel_values"],
      one["image_grid_thw"],
    )
