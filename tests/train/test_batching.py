"""Batch surgery with clips: rows carry their clip through slices, repeats
and the device step."""

import numpy as np
import pytest

from emojax.model import audio, audio_lm
from emojax.model import config as config_lib
from emojax.train import batching

CFG = config_lib.tiny_audio(512).replace(audio_token_id=500)


def _batch() -> dict:
  """Rows 0 and 2 hold clips of 30 and 50 frames; row 1 is text."""
  lens = np.array([30, 50])
  rows = []
  for n in (audio.num_tokens(30), 0, audio.num_tokens(50)):
    rows.append([7, 8] + [500] * int(n) + [9])
  T = max(map(len, rows))
  ids = np.zeros((3, T), np.int64)
  mask = np.zeros((3, T), np.int64)
  for b, row in enumerate(rows):
    ids[b, T - len(row) :], mask[b, T - len(row) :] = row, 1
  feats = np.stack([np.full((128, 60), float(i)) for i in range(2)])
  return {
    "input_ids": ids,
    "attention_mask": mask,
    "input_features": feats.astype(np.float32),
    "audio_feature_lengths": lens.astype(np.int32),
    "labels": [["a"], ["b"], ["c"]],
  }


def test_rows_take_their_clips_along():
  got = batching.take_rows(CFG, _batch(), [2, 1, 0, 2])
  np.testing.assert_array_equal(got["audio_feature_lengths"], [50, 30, 50])
  np.testing.assert_array_equal(got["input_features"][:, 0, 0], [1, 0, 1])
  assert got["labels"] == [["c"], ["b"], ["a"], ["c"]]
  repeated = batching.repeat_rows(CFG, _batch(), 2)  # GRPO's [P, G] rows
  np.testing.assert_array_equal(
    repeated["audio_feature_lengths"], [30, 30, 50, 50]
  )
  assert "input_features" not in batching.take_rows(CFG, _batch(), [1])


def test_device_batch_checks_the_clips_and_text_models_drop_them():
  device = batching.device_batch(CFG, _batch(), bucket=0)
  assert device["input_features"].shape == (2, 128, 60)
  audio_lm.check_batch(CFG, device)
  text = batching.device_batch(CFG.replace(audio=None), _batch(), bucket=0)
  assert "input_features" not in text and "audio_feature_lengths" not in text
  bad = _batch()
  bad["audio_feature_lengths"] = np.array([30, 58], np.int32)
  with pytest.raises(ValueError, match="row 2: the audio run"):
    batching.device_batch(CFG, bad, bucket=0)
  bad = _batch()
  bad["input_features"] = bad["input_features"][:1]
  with pytest.raises(ValueError, match="2 rows hold audio tokens but the"):
    batching.take_rows(CFG, bad, [0])


def test_rows_take_their_videos_along():
  """A video is one visual of the stream: its patches, grid and seconds
  per grid step follow its row through repeats and slices."""
  import tiny_vlm_hf

  from emojax.model import vlm

  cfg = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)
  hf = tiny_vlm_hf.video_batch(cfg, image=False)
  batch = vlm.from_hf_layout(cfg, hf)
  got = batching.take_rows(cfg, batch, [1, 2, 0])
  np.testing.assert_array_equal(got["image_grid_thw"], [[2, 4, 4], [3, 4, 6]])
  np.testing.assert_array_equal(got["second_per_grid_ts"], [0.25, 0.5])
  np.testing.assert_array_equal(
    got["pixel_values"],
    np.concatenate(
      [hf["pixel_values_videos"][72:], hf["pixel_values_videos"][:72]]
    ),
  )
  device = batching.device_batch(cfg, batching.repeat_rows(cfg, batch, 2), 0)
  np.testing.assert_array_equal(
    device["second_per_grid_ts"], [0.5, 0.5, 0.25, 0.25]
  )
  text_only = batching.device_batch(cfg, batching.take_rows(cfg, batch, [2]), 0)
  assert (
    "second_per_grid_ts" not in text_only and "pixel_values" not in text_only
  )
