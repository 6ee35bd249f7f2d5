"""grain pipeline: shapes, masks, image pads, sharding, resume, bad rows."""

import io

import numpy as np
import pytest
from PIL import Image

from emojax.data import (
  audio_features,
  audio_io,
  errors,
  pipeline,
  prompts,
  synth,
  video,
  voice,
)
from emojax.data import examples as examples_lib
from emojax.data import image_processor as ip
from emojax.data import tokenizer as tokenizer_lib
from emojax.model import audio, tmrope
from emojax.model import config as config_lib

IMAGE = ip.ImageProcessorConfig(min_pixels=56 * 56, max_pixels=56 * 56 * 4)
THINK = "<think>cheeks raised (AU6), lip corners pulled (AU12)</think>"


def _png(seed: int, h: int = 56, w: int = 56) -> bytes:
  rng = np.random.default_rng(seed)
  out = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(out, "PNG")
  return out.getvalue()


def _row(i: int, **overrides) -> dict:
  row = {
    "image": _png(i, 56, 56 + 28 * (i % 3)),
    "labels": [b"happiness"],
    "AUs": [b"AU6", b"AU12"],
    "description": f"{THINK}<answer>happiness</answer> {i}".encode(),
    "caption": b"",
    "text": b"",
    "source": b"fixture.jsonl",
    "line": i + 1,
  }
  row.update(overrides)
  return row


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  corpus = list(synth.text_corpus(seed=0, n=200))
  path = tmp_path_factory.mktemp("tok")
  tokenizer_lib.build_default(path, corpus, vocab_size=600)
  return tokenizer_lib.Tokenizer.from_dir(path)


def _cfg(**kwargs) -> pipeline.PipelineConfig:
  example = dict(max_len=1024, au_definitions=False, image=IMAGE, mode="sft")
  example.update(kwargs.pop("example", {}))
  return pipeline.PipelineConfig(
    batch_size=kwargs.pop("batch_size", 2),
    example=examples_lib.ExampleConfig(**example),
    **kwargs,
  )


def _one_shard():
  return pipeline.grain.sharding.ShardOptions(0, 1)


def _batches(source, tok, cfg, shard=None):
  return list(pipeline.make_dataset(source, tok, cfg, shard or _one_shard()))


def test_sft_batch_shapes_masks_and_image_pads(tok):
  rows = [_row(i) for i in range(4)]
  cfg = _cfg(shuffle=False)
  batch = _batches(rows, tok, cfg)[0]
  t = cfg.example.max_len
  assert batch["input_ids"].shape == (2, t)
  assert batch["loss_mask"].shape == (2, t)
  grid = batch["image_grid_thw"]
  np.testing.assert_array_equal(grid, [[1, 4, 4], [1, 4, 6]])
  assert batch["pixel_values"].shape == (16 + 24, 3 * 2 * 14 * 14)
  for r, rows_grid in enumerate(grid):
    ids = batch["input_ids"][r]
    n_pad = int((ids == tok.image_pad_id).sum())
    assert n_pad == np.prod(rows_grid) // 4
    # The assistant's tokens, and only they, carry loss.
    target = tok.decode(ids[batch["loss_mask"][r] == 1])
    assert target == f"{THINK}<answer>happiness</answer> {r}<|im_end|>"
    live = batch["attention_mask"][r] == 1
    assert live[: live.sum()].all()  # right-padded
    assert (ids[~live] == tok.pad_id).all()
  assert batch["labels"] == [["happiness"], ["happiness"]]
  assert batch["line"] == [1, 2]


def test_prompt_ids_match_transformers(tok, tmp_path):
  """Against transformers' tokenizer and image processor, with the pad
  expansion transcribed from Qwen2_5_VLProcessor.__call__ (the processor
  itself needs torchvision for its video half)."""
  transformers = pytest.importorskip("transformers")
  from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl

  tok.save(tmp_path)
  hf_tok = transformers.PreTrainedTokenizerFast.from_pretrained(str(tmp_path))
  hf_image = image_processing_pil_qwen2_vl.Qwen2VLImageProcessorPil(
    min_pixels=IMAGE.min_pixels, max_pixels=IMAGE.max_pixels
  )
  row = _row(1)
  cfg = _cfg(shuffle=False, batch_size=1, example={"mode": "rollout"})
  batch = _batches([row], tok, cfg)[0]
  live = batch["attention_mask"][0] == 1
  prepare = examples_lib.Prepare(tok, cfg.example)
  text = tok.apply_chat_template(
    prepare_messages(prepare, row), add_generation_prompt=True
  )
  image = Image.open(io.BytesIO(row["image"]))
  ref = hf_image(images=[image], return_tensors="np")
  n = int(ref["image_grid_thw"][0].prod()) // hf_image.merge_size**2
  expanded = text.replace("<|image_pad|>", "<|placeholder|>" * n)
  expanded = expanded.replace("<|placeholder|>", "<|image_pad|>")
  ref_ids = hf_tok(expanded)["input_ids"]
  np.testing.assert_array_equal(batch["input_ids"][0][live], ref_ids)
  np.testing.assert_array_equal(batch["pixel_values"], ref["pixel_values"])
  np.testing.assert_array_equal(batch["image_grid_thw"], ref["image_grid_thw"])


def prepare_messages(prepare, row):
  from emojax.data import prompts

  return prompts.messages(prepare._prompt(row, True), image=True)


def test_rollout_left_padded_with_host_labels(tok):
  rows = [_row(i, labels=[b"sadness"], AUs=[b"AU1"]) for i in range(3)]
  cfg = _cfg(shuffle=False, batch_size=3, example={"mode": "rollout"})
  batch = _batches(rows, tok, cfg)[0]
  assert "loss_mask" not in batch
  mask = batch["attention_mask"]
  assert (mask[:, -1] == 1).all() and (mask[:, 0] == 0).all()
  assert batch["labels"] == [["sadness"]] * 3
  assert batch["AUs"] == [["AU1"]] * 3
  # Prompts end with the generation prompt, ready for decoding.
  last = tok.decode(batch["input_ids"][0][mask[0] == 1][-8:])
  assert last.endswith("<|im_start|>assistant\n")


def test_text_rows_have_no_images(tok):
  rows = [
    _row(i, image=b"", text=b"i feel fine", labels=[b"joy"]) for i in range(2)
  ]
  batch = _batches(rows, tok, _cfg(shuffle=False))[0]
  assert batch["pixel_values"].shape == (0, 3 * 2 * 14 * 14)
  assert batch["image_grid_thw"].shape == (0, 3)
  assert not (batch["input_ids"] == tok.image_pad_id).any()


def test_packing_segments(tok):
  rows = [_row(i) for i in range(6)]
  cfg = _cfg(shuffle=False, packing=True, example={"max_len": 700})
  batches = _batches(rows, tok, cfg)
  lines = [line for b in batches for line in b["line"]]
  assert lines == [1, 2, 3, 4, 5, 6]
  first = batches[0]
  seg = first["segment_ids"]
  assert seg.max() >= 2  # at least one row holds two examples
  for r in range(seg.shape[0]):
    for s in range(1, seg[r].max() + 1):
      pos = first["positions"][r][seg[r] == s]
      np.testing.assert_array_equal(pos, np.arange(len(pos)))
  n_pads = int((first["input_ids"] == tok.image_pad_id).sum())
  assert n_pads == first["image_grid_thw"].prod(axis=1).sum() // 4


@pytest.mark.parametrize("shuffle", [False, True])
def test_process_shards_disjoint_and_covering(tok, shuffle):
  rows = [_row(i, image=b"", text=b"ok") for i in range(10)]
  seen = []
  for index in range(3):
    shard = pipeline.grain.sharding.ShardOptions(index, 3)
    cfg = _cfg(shuffle=shuffle, batch_size=1, example={"mode": "rollout"})
    seen.append([x for b in _batches(rows, tok, cfg, shard) for x in b["line"]])
  flat = [x for s in seen for x in s]
  assert sorted(flat) == list(range(1, 11))


@pytest.mark.parametrize("packing", [False, True])
def test_exact_resume_mid_epoch(tok, packing):
  rows = [_row(i) for i in range(9)]
  rows[3]["image"] = b"not an image"
  cfg = _cfg(
    seed=3,
    packing=packing,
    on_bad_example="skip",
    example={"max_len": 700},
  )
  ds = pipeline.make_dataset(rows, tok, cfg, _one_shard())
  it = iter(ds)
  next(it)
  state = it.get_state()
  rest = list(it)
  resumed = iter(ds)
  resumed.set_state(state)
  again = list(resumed)
  assert len(rest) == len(again) > 0
  for a, b in zip(rest, again, strict=True):
    assert a["line"] == b["line"]
    np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    np.testing.assert_array_equal(a["pixel_values"], b["pixel_values"])
  assert it.bad_examples.count == resumed.bad_examples.count == 1


def test_bad_rows_skip_counts_and_reports(tok):
  rows = [
    _row(0),
    _row(1, image=b"\x89PNG broken"),
    _row(2, description=b""),
    _row(3),
  ]
  it = iter(
    pipeline.make_dataset(
      rows, tok, _cfg(shuffle=False, on_bad_example="skip"), _one_shard()
    )
  )
  batches = list(it)
  assert [b["line"] for b in batches] == [[1, 4]]
  log = it.bad_examples
  assert log.metrics() == {"data/bad_examples": 2}
  assert log.reasons[0].startswith("fixture.jsonl:2 field 'image'")
  assert "cannot decode" in log.reasons[0]
  assert log.reasons[1].startswith("fixture.jsonl:3 field 'description'")
  assert "skipped 2" in log.report()


def test_too_long_fails_with_row_and_fix(tok):
  cfg = _cfg(shuffle=False, example={"max_len": 64})
  with pytest.raises(
    errors.BadExampleError, match=r"fixture\.jsonl:1.*max_len"
  ):
    _batches([_row(0)], tok, cfg)


def test_bad_policy_name_refused(tok):
  with pytest.raises(ValueError, match="on_bad_example='drop'"):
    pipeline.make_dataset([_row(0)], tok, _cfg(on_bad_example="drop"))


def _clip_row(i: int, seconds: float) -> dict:
  record = {"transcription": "we are painting the fence", "emotion": "happy"}
  wave = voice.render(record | {"speed_level": "fast"}, seed=i)
  wave = wave[: int(seconds * audio_features.SAMPLING_RATE)]
  return _row(i, image=b"", text=b"", audio=audio_io.encode(wave))


def test_clips_become_features_and_audio_tokens(tok):
  """Listening rows: Whisper features of each clip, and its <|AUDIO|> run
  as long as Qwen2.5-Omni's processor makes it."""
  heard = tokenizer_lib.with_audio(tok)
  rows = [_clip_row(0, 0.9), _clip_row(1, 1.3)]
  example = {"audio_frames": 300, "mode": "rollout"}
  batch = _batches(rows, heard, _cfg(shuffle=False, example=example))[0]
  assert batch["input_features"].shape == (2, 128, 300)
  np.testing.assert_array_equal(batch["audio_feature_lengths"], [90, 130])
  runs = (batch["input_ids"] == heard.audio_pad_id).sum(1)
  np.testing.assert_array_equal(runs, audio.num_tokens(np.array([90, 130])))
  want, _ = audio_features.log_mel(
    audio_io.read(rows[1]["audio"]), max_frames=300
  )
  np.testing.assert_array_equal(batch["input_features"][1], want)
  for frames in range(3, 400):  # the data side's count is the tower's
    assert audio_features.num_audio_tokens(frames) == audio.num_tokens(frames)


def test_a_listening_row_without_a_clip_is_a_bad_row(tok):
  heard = tokenizer_lib.with_audio(tok)
  rows = [_clip_row(0, 0.9), _row(1, image=b"", audio=b"")]
  cfg = _cfg(
    shuffle=False, example={"audio_frames": 300}, on_bad_example="skip"
  )
  it = iter(pipeline.make_dataset(rows, heard, cfg, _one_shard()))
  batches = list(it)
  assert [b["line"] for b in batches] == [[1]]
  assert len(batches[0]["input_features"]) == 1
  assert it.bad_examples.reasons[0].startswith("fixture.jsonl:2 field")
  assert "no clip, and the model listens" in it.bad_examples.reasons[0]


def test_clips_too_short_or_too_long_for_the_budget(tok):
  heard = tokenizer_lib.with_audio(tok)
  short = _row(0, image=b"", audio=audio_io.encode(np.zeros(300, np.float32)))
  cfg = _cfg(example={"audio_frames": 50}, on_bad_example="skip")
  it = iter(pipeline.make_dataset([short, _clip_row(1, 1.3)], heard, cfg))
  (batch,) = list(it)
  assert "under 30 ms: no audio token" in it.bad_examples.reasons[0]
  # A clip over the budget is cut to it: 50 frames, their 12 tokens.
  np.testing.assert_array_equal(batch["audio_feature_lengths"], [50])
  assert (batch["input_ids"] == heard.audio_pad_id).sum() == 12
  packed = _cfg(example={"audio_frames": 50}, packing=True)
  with pytest.raises(ValueError, match="packing with clips"):
    pipeline.make_dataset([short], heard, packed)


VIDEO = {"video_frames": 3, "video": IMAGE}


def _video_row(i: int, frames: int = 5, fps: float = 10.0, **overrides):
  clip = [_png(100 * i + f, 56, 84) for f in range(frames)]
  return _row(i, **{"image": b"", "video": clip, "video_fps": fps, **overrides})


def test_video_row_prompt_tokens_and_patches(tok, tmp_path):
  """A clip: 3 of its 5 frames (0, 2, 4), padded to 4, at 10 * 3/5 = 6
  fps, so 2/6 s per grid step; its <|video_pad|> run is t*h*w/4 as
  Qwen2_5_VLProcessor.__call__ makes it (transcribed, with transformers'
  tokenizer on emojax's saved folder)."""
  transformers = pytest.importorskip("transformers")
  row = _video_row(0)
  cfg = _cfg(shuffle=False, batch_size=1, example={"mode": "rollout", **VIDEO})
  batch = _batches([row], tok, cfg)[0]
  np.testing.assert_array_equal(batch["image_grid_thw"], [[2, 4, 6]])
  np.testing.assert_allclose(batch["second_per_grid_ts"], [2 / 6], rtol=1e-6)
  assert batch["second_per_grid_ts"].dtype == np.float32
  want, _, _ = video.preprocess_video(
    [row["video"][i] for i in (0, 2, 4)], IMAGE, fps=6.0
  )
  np.testing.assert_array_equal(batch["pixel_values"], want)
  ids = batch["input_ids"][0][batch["attention_mask"][0] == 1]
  assert (ids == tok.video_pad_id).sum() == 2 * 4 * 6 // 4
  assert not (ids == tok.image_pad_id).any()
  tok.save(tmp_path)
  hf_tok = transformers.PreTrainedTokenizerFast.from_pretrained(str(tmp_path))
  prepare = examples_lib.Prepare(tok, cfg.example)
  chat = prompts.messages(prepare._prompt(row, True), image=False, video=True)
  text = hf_tok.apply_chat_template(
    chat, tokenize=False, add_generation_prompt=True
  )
  assert "<|vision_start|><|video_pad|><|vision_end|>" in text
  expanded = text.replace("<|video_pad|>", "<|placeholder|>" * 12)
  expanded = expanded.replace("<|placeholder|>", "<|video_pad|>")
  np.testing.assert_array_equal(ids, hf_tok(expanded)["input_ids"])


def test_mixed_batch_has_one_grid_and_step_per_visual(tok):
  rows = [_row(0), _video_row(1), _row(2, image=b"", text=b"ok"), _row(3)]
  rows += [_video_row(4, frames=2, fps=4.0)]
  cfg = _cfg(shuffle=False, batch_size=5, example=VIDEO)
  batch = _batches(rows, tok, cfg)[0]
  grid = batch["image_grid_thw"]
  np.testing.assert_array_equal(
    grid, [[1, 4, 4], [2, 4, 6], [1, 4, 4], [1, 4, 6]]
  )
  np.testing.assert_allclose(
    batch["second_per_grid_ts"], [1.0, 2 / 6, 1.0, 2 / 4], rtol=1e-6
  )
  assert batch["pixel_values"].shape == (grid.prod(1).sum(), 3 * 2 * 14 * 14)
  for r, pad in [(0, "image"), (1, "video"), (3, "image"), (4, "video")]:
    ids = batch["input_ids"][r]
    n = int((ids == getattr(tok, f"{pad}_pad_id")).sum())
    assert n == grid[r - (r > 2)].prod() // 4
  # Every batch with visuals carries the key (batches GRPO's dynamic
  # sampling merges must agree on keys).
  images_only = _batches([_row(0), _row(1)], tok, cfg)[0]
  np.testing.assert_array_equal(images_only["second_per_grid_ts"], [1.0, 1.0])


def test_packing_with_videos_is_refused(tok):
  cfg = _cfg(packing=True, example={**VIDEO, "max_len": 900})
  with pytest.raises(ValueError, match="packing with clips or videos"):
    pipeline.make_dataset([_video_row(0)], tok, cfg)


@pytest.mark.parametrize(
  "overrides,example,field,words",
  [
    ({"video_fps": 0.0}, VIDEO, "video_fps", "video_fps=0.0"),
    ({"image": _png(9)}, VIDEO, "video", "both an image and a video"),
    ({}, {"video_frames": 0}, "video", "does not watch"),
  ],
)
def test_bad_video_rows_are_named(tok, overrides, example, field, words):
  prepare = examples_lib.Prepare(tok, _cfg(example=example).example)
  out = prepare(_video_row(0, **overrides))
  assert out["bad_example"].startswith(f"fixture.jsonl:1 field {field!r}")
  assert words in out["bad_example"]


def test_bad_frames_name_the_stored_frame(tok):
  prepare = examples_lib.Prepare(tok, _cfg(example=VIDEO).example)
  row = _video_row(0)
  row["video"][2] = b"\x89PNG broken"
  out = prepare(row)["bad_example"]
  assert out.startswith("fixture.jsonl:1 field 'video'")
  assert "frame 2: cannot decode" in out
  row = _video_row(0)
  row["video"][4] = _png(1, 56, 56)
  out = prepare(row)["bad_example"]
  assert "frame 4 is 56x56 but frame 0 is 56x84" in out


def test_video_budget_must_share_the_tower():
  other = ip.ImageProcessorConfig(patch_size=16)
  with pytest.raises(ValueError, match="video.patch_size=16"):
    examples_lib.ExampleConfig(video_frames=8, video=other)
  # A model that does not watch never reads the video budget.
  assert examples_lib.ExampleConfig(video=other).video_frames == 0


def test_a_video_with_its_sound_interleaves_as_omni(tok):
  """A model that watches and listens: a video row's frames and its sound
  are one video, interleaved in chunks inside <|audio_bos|> ..
  <|audio_eos|> exactly as the model side expands it (itself checked
  against Qwen2.5-Omni's processor); a silent video stays a video."""
  heard = tokenizer_lib.with_audio(tok)
  sound = _clip_row(0, 2.0)["audio"]
  rows = [
    _video_row(0, frames=8, fps=4.0, audio=sound),
    _video_row(1, frames=8, fps=4.0, audio=b""),
  ]
  example = {
    "mode": "rollout",
    "video_frames": 8,
    "video": IMAGE,
    "audio_frames": 300,
    "seconds_per_chunk": 1,
  }
  cfg = _cfg(shuffle=False, batch_size=2, example=example)
  batch = _batches(rows, heard, cfg)[0]
  model_cfg = config_lib.tiny_omni(heard.vocab_size)
  model_cfg = model_cfg.replace(
    video_token_id=heard.video_pad_id,
    audio_token_id=heard.audio_pad_id,
    vision_start_token_id=heard.vision_start_id,
    audio=model_cfg.audio.replace(seconds_per_chunk=1),
  )
  (frames,) = batch["audio_feature_lengths"]
  grid, second = batch["image_grid_thw"][0], batch["second_per_grid_ts"][0]
  np.testing.assert_array_equal(grid, [4, 4, 6])  # 8 frames, 0.5 s a step
  want = tmrope.expand_video_audio_placeholders(
    model_cfg,
    [heard.vision_start_id, heard.video_pad_id, heard.vision_end_id],
    [grid],
    [second],
    [frames],
  )
  ids = batch["input_ids"][0][batch["attention_mask"][0] > 0].tolist()
  at = ids.index(heard.vision_start_id)
  assert ids[at : at + len(want)] == want
  kinds = np.array(want)[
    np.isin(want, [heard.video_pad_id, heard.audio_pad_id])
  ]
  assert (np.diff(kinds) != 0).sum() == 3  # V A V A
  silent = batch["input_ids"][1]
  assert not (silent == heard.audio_pad_id).any()
  assert (silent == heard.video_pad_id).sum() == 4 * 4 * 6 // 4
