"""A video with its sound in Qwen2.5-Omni (TMRoPE): the processor's
interleaving, transformers' positions and logits."""

import types

import numpy as np
import pytest
import tiny_omni_hf
import torch
from transformers.models.qwen2_5_omni import processing_qwen2_5_omni as hfp

from emojax.model import audio, tmrope, vlm
from emojax.model import model as model_lib

# 1-s chunks (25 positions) so short test clips interleave several times.
CFG = tiny_omni_hf.CFG.replace(
  audio=tiny_omni_hf.CFG.audio.replace(seconds_per_chunk=1)
)


@pytest.fixture(scope="module")
def setup():
  hf = tiny_omni_hf.model(CFG)
  return hf, tiny_omni_hf.emojax_params(CFG, hf)


def _hf(batch):
  t = {
    k: torch.as_tensor(v) for k, v in batch.items() if k != "use_audio_in_video"
  }
  return t | {"use_audio_in_video": batch.get("use_audio_in_video", False)}


def _processor_ids(cfg, grid, second, num_audio):
  """transformers' processor's replacement text, as token ids."""
  v, a = "<|VIDEO|>", "<|AUDIO|>"
  fake = types.SimpleNamespace(
    audio_bos_token="<B>",
    audio_eos_token="<E>",
    video_token=v,
    audio_token=a,
    video_processor=types.SimpleNamespace(
      merge_size=cfg.vision.spatial_merge_size
    ),
  )
  fake.get_chunked_index = lambda *args: (
    hfp.Qwen2_5OmniProcessor.get_chunked_index(fake, *args)
  )
  text = hfp.Qwen2_5OmniProcessor.replace_video_with_audio_token(
    fake,
    {"video_grid_thw": [np.asarray(grid)], "video_second_per_grid": [second]},
    0,
    {"num_audio_tokens": [num_audio]},
    0,
    position_id_per_seconds=cfg.vision.tokens_per_second,
    seconds_per_chunk=cfg.audio.seconds_per_chunk,
  )
  ids = {"<B>": cfg.audio_token_id + 1, "<E>": cfg.audio_token_id + 2}
  ids |= {v: cfg.video_token_id, a: cfg.audio_token_id}
  out = []
  while text:
    tok = next(t for t in ids if text.startswith(t))
    out.append(ids[tok])
    text = text[len(tok) :]
  return out


SHAPES = [  # (grid, second per step, audio tokens)
  ((4, 4, 4), 0.5, 32),
  ((2, 4, 6), 1.0, 9),  # the video outlasts its sound
  ((1, 4, 4), 1.0, 60),  # the sound outlasts the video
  ((3, 4, 4), 2.5, 70),  # steps over two chunks apart (index pairing)
  ((5, 2, 2), 1 / 3, 41),  # a rate that is not a binary fraction
]


@pytest.mark.parametrize("seconds_per_chunk", [1, 2])
@pytest.mark.parametrize("grid,second,num_audio", SHAPES)
def test_interleaving_is_the_processors(
  grid, second, num_audio, seconds_per_chunk
):
  cfg = CFG.replace(
    audio=CFG.audio.replace(seconds_per_chunk=seconds_per_chunk)
  )
  lens = [_frames_for(num_audio)]
  got = tmrope.expand_video_audio_placeholders(
    cfg, [cfg.video_token_id], [grid], [second], lens
  )
  assert got == _processor_ids(cfg, grid, second, num_audio)


def _frames_for(num_audio: int) -> int:
  frames = 4 * num_audio
  while audio.num_tokens(np.array([frames]))[0] > num_audio:
    frames -= 1
  assert audio.num_tokens(np.array([frames]))[0] == num_audio
  return frames


def test_chunks_are_transformers():
  rng = np.random.RandomState(0)
  for _ in range(50):
    values = np.sort(rng.randint(0, 300, rng.randint(1, 40)))
    want = hfp.Qwen2_5OmniProcessor.get_chunked_index(None, values, 25)
    assert tmrope.chunks(values.tolist(), 25) == want


def test_rope_index_matches_transformers(setup):
  hf, _ = setup
  b = tiny_omni_hf.sound_batch(CFG)
  want, want_deltas = tiny_omni_hf.hf_rope_index_with_sound(hf, b)
  one = vlm.from_hf_layout(CFG, b)
  got, deltas = vlm.get_rope_index(
    CFG,
    one["input_ids"],
    one["image_grid_thw"],
    one["attention_mask"],
    one["second_per_grid_ts"],
  )
  valid = b["attention_mask"] > 0
  np.testing.assert_array_equal(got[:, valid], want.numpy()[:, valid])
  np.testing.assert_array_equal(deltas, want_deltas.numpy().reshape(-1))
  # Both chunks of video A interleave with sound: the check is not empty.
  row = b["input_ids"][0][valid[0]]
  kinds = row[np.isin(row, (CFG.video_token_id, CFG.audio_token_id))]
  assert (np.diff(kinds) != 0).sum() == 3  # V A V A


def test_logits_match_transformers(setup):
  hf, params = setup
  b = tiny_omni_hf.sound_batch(CFG)
  with torch.no_grad():
    want = hf(**_hf(b)).logits.numpy()
  got = np.asarray(model_lib.forward(params, CFG, vlm.prepare(CFG, b)))
  valid = b["attention_mask"] > 0
  np.testing.assert_allclose(got[valid], want[valid], atol=1e-4, rtol=0)
  # The sound is heard: other clips change the logits of rows 0 and 1.
  quiet = {**b, "input_features": b["input_features"] * 0.5}
  other = np.asarray(model_lib.forward(params, CFG, vlm.prepare(CFG, quiet)))
  assert np.abs(other[0][valid[0]] - got[0][valid[0]]).max() > 1e-3


def test_videos_without_sound_match_transformers(setup):
  """Omni's plain video path: time at position_id_per_seconds (25)."""
  hf, params = setup
  b = tiny_omni_hf.sound_batch(CFG)
  silent = {
    k: v
    for k, v in b.items()
    if k
    not in ("input_features", "feature_attention_mask", "use_audio_in_video")
  }
  grids, seconds = b["video_grid_thw"], b["video_second_per_grid"]
  ids = np.zeros_like(b["input_ids"])
  mask = np.zeros_like(b["attention_mask"])
  start = CFG.vision_start_token_id
  for r, j in ((0, 0), (1, 1)):
    row = [5, 6, start, CFG.video_token_id, start + 1, 7]
    row = vlm.expand_video_placeholders(CFG, row, grids[j : j + 1])
    ids[r, : len(row)], mask[r, : len(row)] = row, 1
  ids[2, :4], mask[2, :4] = [8, 9, 10, 11], 1
  silent |= {"input_ids": ids, "attention_mask": mask}
  silent.pop("pixel_values")
  silent.pop("image_grid_thw")
  with torch.no_grad():
    want = hf(**_hf(silent)).logits.numpy()
  got = np.asarray(model_lib.forward(params, CFG, vlm.prepare(CFG, silent)))
  valid = mask > 0
  np.testing.assert_allclose(got[valid], want[valid], atol=1e-4, rtol=0)
  assert seconds[0] * CFG.vision.tokens_per_second == 12.5


def test_a_wrong_interleaving_names_the_row():
  b = tiny_omni_hf.sound_batch(CFG)
  ids = b["input_ids"].copy()
  row = np.flatnonzero(b["attention_mask"][1])
  span = row[np.isin(ids[1, row], (CFG.video_token_id, CFG.audio_token_id))]
  last_video = span[ids[1, span] == CFG.video_token_id][-1]
  first_audio = span[ids[1, span] == CFG.audio_token_id][-1]
  ids[1, [last_video, first_audio]] = ids[1, [first_audio, last_video]]
  with pytest.raises(ValueError, match="row 1: a video with its sound"):
    vlm.prepare(CFG, {**b, "input_ids": ids})


def test_a_prompt_cut_inside_the_span_names_the_row():
  b = tiny_omni_hf.sound_batch(CFG)
  mask = b["attention_mask"].copy()
  real = np.flatnonzero(mask[1])
  video = real[b["input_ids"][1, real] == CFG.video_token_id]
  mask[1, video[-1] + 1 :] = 0  # ends on B's last video token
  with pytest.raises(ValueError, match="row 1: the prompt ends inside"):
    vlm.prepare(CFG, {**b, "attention_mask": mask})


def test_expansion_counts_must_agree():
  with pytest.raises(ValueError, match="2 video placeholders .* 1 videos"):
    tmrope.expand_video_audio_placeholders(
      CFG, [CFG.video_token_id] * 2, [(2, 4, 4)], [0.5], [40]
    )
