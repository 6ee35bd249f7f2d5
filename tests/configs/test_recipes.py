"""The sibling recipe configs: every variant validates, each recipe's rewards
score by its formula (METHODS.md), and one smoke run per pipeline path
(face GRPO with the confidence reward; text only) goes end to end."""

import importlib
import json
import math
import os
import re
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
sys.path.insert(0, ROOT)

from emojax import rewards  # noqa: E402
from emojax.data import examples, prompts, wheel  # noqa: E402
from emojax.model.config import PRESETS  # noqa: E402
from emojax.train import data, setup, stages  # noqa: E402
from emojax.train.validate import ConfigError, validate  # noqa: E402

VARIANTS = {
  "facial_r1": ("", "smoke", "qwen2_5_vl_7b"),
  "affectgpt_r1": ("", "smoke", "mer"),
  "emocaliber": ("", "smoke", "qwen2_5_vl_7b"),
  "r1_omni": (
    "",
    "smoke",
    "qwen2_5_vl_7b",
    "human_omni_v2",
    "human_omni_v2,smoke",
    "human_omni_v2,qwen2_5_vl_7b",
    "video",
    "video,smoke",
    "human_omni_v2,video",
    "video,qwen2_5_vl_7b",
    "human_omni_v2,qwen2_5_omni_7b",
  ),
  "text_classifier": ("", "smoke", "qwen2_5_1_5b"),
  "emotion_thinker": (
    "",
    "smoke",
    "qwen2_5_7b",
    "listen",
    "smoke,listen",
    "qwen2_5_7b,listen",
  ),
}
CASES = [(n, v) for n, vs in VARIANTS.items() for v in vs]
THINK = "<think>the mouth corners turn up (AU12)</think>"


def _config(name: str, variant: str):
  return importlib.import_module(f"configs.{name}").get_config(variant)


def _dair_fixture(folder) -> str:
  """A tiny dair-ai/emotion folder: train.csv and test.csv."""
  folder.mkdir(parents=True, exist_ok=True)
  rows = ["i feel so happy today", "this makes me furious", "i miss her"]
  for split, n in (("train", 8), ("test", 4)):
    lines = ["text,label"] + [
      f"{rows[i % 3]} {i},{(1, 3, 0)[i % 3]}" for i in range(n)
    ]
    (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
  return str(folder)


@pytest.mark.parametrize(("name", "variant"), CASES)
def test_every_variant_validates_once_its_data_is_set(name, variant, tmp_path):
  c = _config(name, variant)
  if c.data.dataset not in data.SYNTHETIC:
    c.data.manual_dir = str(tmp_path)  # The user's folder.
  validate(c, num_devices=8)
  assert c.data.prompt in examples.PROMPTS
  assert all(n in rewards.configured(c.rl) for n in c.rl.reward_names)
  assert c.stages and "grpo" in c.stages


def _leaves(cd, prefix=""):
  for key, value in cd.items():
    if hasattr(value, "items"):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield prefix + key


def _is_read(name: str, source: str) -> bool:
  return bool(re.search(rf"\.{name}\b|[\"']{name}[\"']", source))


def test_every_config_field_is_read_by_the_code():
  """A field nothing reads is accepted on the command line and changes
  nothing (rl.learning_rate and rl.max_prompt_length were). A static
  check: the field's name as an attribute or a string key in emojax/ or
  launch/."""
  source = "\n".join(
    open(os.path.join(folder, f)).read()
    for top in ("emojax", "launch")
    for folder, _, files in os.walk(os.path.join(ROOT, top))
    for f in files
    if f.endswith(".py")
  )
  unread = {
    path
    for case in CASES
    for path in _leaves(_config(*case))
    if not _is_read(path.rsplit(".", 1)[-1], source)
  }
  assert not unread, f"config fields no code reads: {sorted(unread)}"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_unknown_variant_is_named(name):
  with pytest.raises(ValueError, match="nope"):
    _config(name, "nope")


def test_text_classifier_needs_the_dataset_folder():
  with pytest.raises(ConfigError, match="data.manual_dir"):
    validate(_config("text_classifier", ""), num_devices=8)


def test_recipe_prompts_reach_the_rows():
  """data.prompt picks the rows' prompt for every task stage; captions stay."""
  c = _config("emocaliber", "").data
  assert data.task_prompt(c, "task") == "emocaliber"
  assert data.task_prompt(c, "caption") == "caption"
  emotions = tuple(c.emotions)
  cfg = examples.ExampleConfig(emotions=emotions, prompt="emocaliber")
  prep = examples.Prepare(None, cfg)
  assert prep._prompt({}, True) == prompts.emocaliber(emotions)
  for kind, want in (
    ("r1_omni", prompts.R1_OMNI),
    ("human_omni_v2", prompts.human_omni_v2(emotions)),
    ("open_vocabulary", prompts.open_vocabulary(text="so glad")),
  ):
    prep = examples.Prepare(None, examples.ExampleConfig(prompt=kind))
    assert prep._prompt({"text": b"so glad"}, True) == want
  dair = ("sadness", "joy", "love", "anger", "fear", "surprise")
  cfg = examples.ExampleConfig(emotions=dair, prompt="text_classifier")
  got = examples.Prepare(None, cfg)._prompt({"text": b"so glad"}, False)
  assert got.startswith("Text: so glad\n") and "[sadness, joy, love" in got


def test_emotion_thinker_prompt_shows_transcript_cues_and_system():
  c = _config("emotion_thinker", "")
  text_model = PRESETS[c.model.preset]()
  cfg = data.example_config(
    text_model, c.data, "rollout", "task", "description"
  )
  assert cfg.system == prompts.R1_SYSTEM and cfg.prompt == "emotion_thinker"
  row = {"text": b"It is fine.", "caption": b"pitch: low; speed: slow"}
  got = examples.Prepare(None, cfg)._prompt(row, False)
  assert got.startswith('Transcript: "It is fine."\nHow it sounds: pitch: low;')
  assert got.endswith(
    "options: neutral, happiness, sadness, anger, disgust, "
    "confusion, whisper, surprise, fear."
  )


def test_emotion_thinker_default_rows_fit(tmp_path, monkeypatch):
  """Every reasoning row of the embedded default fits data.max_len with
  the system turn (a row over it fails the run)."""
  monkeypatch.setenv("EMOJAX_CACHE", str(tmp_path / "cache"))
  c = _config("emotion_thinker", "")
  c.data.num_train = c.data.num_test = 4
  c.data.tfds_dir = str(tmp_path / "tfds")
  tok = setup.tokenizer(c)
  it = _sft_batches(c, data.builder(c.data).as_data_source("sft"), tok)
  lengths = [int(m.sum()) for b in it for m in b["attention_mask"]]
  assert len(lengths) == c.data.num_sft and max(lengths) <= c.data.max_len


def test_split_roles_map_onto_the_datasets_splits():
  class Builder:
    name = "b"

    def as_data_source(self, split):
      return split

  b = data.Splits(Builder(), {"train": "ovmerd[:90%]", "test": "ovmerd[90%:]"})
  got = [b.as_data_source(r) for r in ("train", "sft", "test")]
  assert got == ["ovmerd[:90%]", "sft", "ovmerd[90%:]"] and b.name == "b"
  with pytest.raises(ValueError, match="config.data.splits.*'validation'"):
    data.Splits(Builder(), {"validation": "x"})


@pytest.fixture(scope="module")
def default_sft_rows(tmp_path_factory):
  """The embedded default's 300 reasoning rows (facs_synth is a function of
  seed and index), with the project's tokenizer."""
  tmp = tmp_path_factory.mktemp("default_sft")
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("EMOJAX_CACHE", str(tmp / "cache"))
    c = _config("facial_r1", "")
    c.data.num_train = c.data.num_test = 8
    c.data.tfds_dir = str(tmp / "tfds")
    tok = setup.tokenizer(c)
    yield data.builder(c.data).as_data_source("sft"), tok, c.data.num_sft


@pytest.mark.parametrize("name", ["affectgpt_r1", "emocaliber", "r1_omni"])
def test_default_sft_rows_fit_the_recipes_prompt(name, default_sft_rows):
  """No row of the embedded SFT stage exceeds data.max_len (a bad row fails
  the run) with the recipe's prompt."""
  source, tok, n = default_sft_rows
  variants = [""] + (["human_omni_v2"] if name == "r1_omni" else [])
  for variant in variants:
    c = _config(name, variant)
    it = _sft_batches(c, source, tok)
    assert sum(len(b["labels"]) for b in it) == n


def _sft_batches(c, source, tok):
  """One pass over `source` as the config's SFT stage reads it."""
  return data.iterator(
    source,
    tok,
    setup.model_config(c, tok),
    c.data,
    mode="sft",
    batch_size=100,
    seed=0,
    epochs=1,
    shuffle=False,
  )


def _scores(c, completions, labels, lengths=None):
  table = rewards.configured(c.rl)
  ex = {
    "labels": labels,
    "AUs": [[] for _ in labels],
    "label_set": [tuple(c.data.emotions)] * len(labels),
    "completion_lengths": lengths or [10] * len(labels),
  }
  return {n: table[n](completions, ex) for n in c.rl.reward_names}


def _ew_f1(pred, gold):
  """Mean over the wheel levels of the per-sample EW F1."""
  fs = [wheel.ew_scores(pred, gold, lv) for lv in wheel.LEVELS]
  return float(np.mean([s["f1"] if s else 0.0 for s in fs]))


def test_affectgpt_ew_f1_times_label_count_penalty():
  c = _config("affectgpt_r1", "")
  assert (c.rl.reward_names, c.rl.reward_weights) == (
    ["ew_f1", "format"],
    [1.0, 0.2],
  )
  gold = ["happiness", "surprise"]
  pred = ["happiness", "surprise", "anger", "sadness"]
  texts = [
    f"{THINK}<answer>{', '.join(pred)}</answer>",
    f"{THINK}<answer>happiness, surprise</answer>",
  ]
  got = _scores(c, texts, [gold, gold])
  # P3 = log m / log n for n = 4 labels against m = 2 gold.
  want = _ew_f1(pred, gold) * math.log(2) / math.log(4)
  assert 0 < want < 0.5
  np.testing.assert_allclose(got["ew_f1"], [want, 1.0], rtol=1e-6)
  np.testing.assert_array_equal(got["format"], [1.0, 1.0])
  assert c.rl.beta == 0.0 and (c.rl.temperature, c.rl.top_p) == (0.8, 0.9)


def test_emocaliber_log_score():
  c = _config("emocaliber", "")
  assert c.rl.reward_names == ["confidence"]
  assert (c.rl.advantage, c.rl.loss_type, c.rl.beta) == (
    "dr_grpo",
    "dapo",
    0.01,
  )
  parts = "".join(
    f"<{t}>x</{t}>"
    for t in ("element", "human", "context", "interaction", "analysis")
  )

  def text(answer, conf, think=parts):
    return (
      f"<think>{think}</think><answer>{answer}</answer>"
      f"<confidence>{conf}</confidence>"
    )

  got = _scores(
    c,
    [
      text("Happiness.", 0.8),
      text("anger", 0.3),
      text("happiness", 0.8, think="no sub-tags"),
      text("happiness", 1.0),
    ],
    [["happiness"]] * 4,
  )["confidence"]
  want = [
    1 + 1 + 2 * math.log(0.8),  # right: 1 + i + 2 ln c
    1 + 0 + 2 * math.log(1 - 0.3),  # wrong: 1 + 2 ln(1 - c)
    -5.0,  # a sub-tag missing
    -5.0,  # c must be < 1
  ]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_r1_omni_and_human_omni_v2_rewards():
  r = _config("r1_omni", "")
  assert r.rl.reward_names == ["emotion", "format"]
  assert math.isinf(r.rl.epsilon)  # R1-Omni does not clip.
  right = f"{THINK}<answer>happiness</answer>"
  got = _scores(r, [right, f"{THINK}<answer>fear</answer>"], [["happy"]] * 2)
  np.testing.assert_array_equal(got["emotion"], [1.0, 0.0])
  np.testing.assert_array_equal(got["format"], [1.0, 1.0])
  h = _config("r1_omni", "human_omni_v2")
  assert h.data.prompt == "human_omni_v2"
  assert h.rl.reward_names == ["format_context", "emotion"]
  with_context = "<context>a smiling face</context>" + right
  got = _scores(h, [with_context, right], [["happiness"]] * 2)
  np.testing.assert_array_equal(got["format_context"], [1.0, 0.0])
  np.testing.assert_array_equal(got["emotion"], [1.0, 1.0])


def test_text_classifier_scores_dair_labels():
  c = _config("text_classifier", "")
  texts = [f"<think>w</think><answer>{w}</answer>" for w in ("joy", "happy")]
  got = _scores(c, texts, [["joy"], ["joy"]])
  # 'happy' normalises to happiness, outside dair-ai/emotion's six labels.
  np.testing.assert_array_equal(got["emotion"], [1.0, 0.0])
  assert c.model.preset == "tiny_text" and c.stages == ("grpo",)


def _smoke(c, tmp_path, monkeypatch):
  monkeypatch.setenv("EMOJAX_CACHE", str(tmp_path / "cache"))
  c.data.tfds_dir = str(tmp_path / "tfds")
  c.async_checkpoints = False
  workdir = tmp_path / "run"
  return stages.train(c, str(workdir)), workdir


@pytest.mark.slow  # ~40 s: 240 XLA compiles of the face GRPO step.
def test_emocaliber_smoke_runs_face_grpo_with_confidence(tmp_path, monkeypatch):
  """GRPO on faces with the EmoCaliber prompt and reward; SFT and the
  evaluations are Facial-R1's path (tests/launch/test_train.py)."""
  c = _config("emocaliber", "smoke")
  c.stages, c.eval.num_examples = ("grpo",), 0
  history, workdir = _smoke(c, tmp_path, monkeypatch)
  assert "evals" not in history
  table = next((workdir / "completions").glob("0-grpo-*.html")).read_text()
  assert "<th>confidence</th>" in table  # the GRPO table's reward column


def test_emotion_thinker_smoke_runs_sft_and_grpo_ptr(tmp_path, monkeypatch):
  """SFT then GRPO-PTR on the generated speech rows; the trust reward is
  logged beside format and outcome."""
  c = _config("emotion_thinker", "smoke")
  history, workdir = _smoke(c, tmp_path, monkeypatch)
  assert set(history["evals"]) == {"base", "0-sft", "1-grpo"}
  assert history["evals"]["1-grpo"]["emotion/count"] == 4.0
  table = next((workdir / "completions").glob("1-grpo-*.html")).read_text()
  assert "<th>trust_reasoning</th>" in table


def test_emotion_thinker_listen_smoke_hears_the_clips(tmp_path, monkeypatch):
  """The listening variant: spoken clips through the tiny audio tower in
  the traced steps (SFT, rollout, the GRPO step), and the evals score them."""
  from emojax.model import audio

  traced = []
  encode = audio.encode
  monkeypatch.setattr(
    audio, "encode", lambda *a, **k: traced.append(1) or encode(*a, **k)
  )
  c = _config("emotion_thinker", "smoke,listen")
  c.sft.steps, c.rl.steps = 2, 1
  history, workdir = _smoke(c, tmp_path, monkeypatch)
  assert set(history["evals"]) == {"base", "0-sft", "1-grpo"}
  assert history["evals"]["1-grpo"]["emotion/count"] == 4.0
  assert len(traced) >= 4
  prompt = prompts.emotion_thinker_listen(c.data.emotions)
  example = data.example_config(
    setup.model_config(c, setup.tokenizer(c)), c.data, "sft", "task", "x"
  )
  assert example.audio_frames == 800 and "Transcript" not in prompt


def _record_batches(monkeypatch, module) -> list[dict]:
  """The batches `module.prepare` (vlm's or audio_lm's) is given."""
  seen, prepare = [], module.prepare
  monkeypatch.setattr(
    module,
    "prepare",
    lambda cfg, b, *a, **k: seen.append(dict(b)) or prepare(cfg, b, *a, **k),
  )
  return seen


def test_r1_omni_video_smoke_watches_the_clips(tmp_path, monkeypatch):
  """The video variant: every stage's batches hold 8-frame clips (4 time
  steps, 0.5 s each at 4 fps) as `<|video_pad|>` runs, and the evals
  show each clip's last frame."""
  from emojax.model import vlm

  seen = _record_batches(monkeypatch, vlm)
  c = _config("r1_omni", "video,smoke")
  c.sft.steps, c.rl.steps = 2, 1
  history, workdir = _smoke(c, tmp_path, monkeypatch)
  assert set(history["evals"]) == {"base", "0-sft", "1-grpo"}
  assert history["evals"]["1-grpo"]["emotion/count"] == 4.0
  videos = [b for b in seen if b.get("second_per_grid_ts") is not None]
  assert len(videos) >= 4
  for b in videos:
    assert (np.asarray(b["image_grid_thw"])[:, 0] == 4).all()
    np.testing.assert_array_equal(b["second_per_grid_ts"], 0.5)
    ids = np.asarray(b["input_ids"])
    cfg = setup.model_config(c, setup.tokenizer(c))
    assert (ids == cfg.video_token_id).any() and not (
      ids == cfg.image_token_id
    ).any()
  html = (workdir / "eval" / "1-grpo" / "completions.html").read_text()
  assert html.count('alt="face ') == 4 and "no image" not in html


def test_text_classifier_smoke_runs_text_only(tmp_path, monkeypatch):
  c = _config("text_classifier", "smoke")
  c.data.manual_dir = _dair_fixture(tmp_path / "dair")
  history, workdir = _smoke(c, tmp_path, monkeypatch)
  assert set(history["evals"]) == {"base", "0-grpo"}
  assert history["evals"]["0-grpo"]["count"] == 4.0
  assert history["evals"]["0-grpo"]["emotion/count"] == 4.0
  assert (workdir / "eval" / "0-grpo" / "completions.html").exists()


def test_human_omni_v2_on_omni_hears_the_clips_with_their_frames():
  """`:qwen2_5_omni_7b`: Qwen2.5-Omni-7B's thinker, clips with their sound
  (facial_r1_video read with audio), each example a video whose frames
  and sound interleave at the model's rate and chunk."""
  c = _config("r1_omni", "human_omni_v2,qwen2_5_omni_7b")
  assert c.model.preset == "qwen2_5_omni_7b" and c.data.audio
  assert c.data.dataset == "facial_r1_video" and c.data.video_frames == 8
  omni = PRESETS[c.model.preset]()
  example = data.example_config(omni, c.data, "rollout", "task", "x")
  assert example.video_frames == 8 and example.audio_frames == 3000
  assert (example.tokens_per_second, example.seconds_per_chunk) == (25, 2)
  assert "facial_r1_video" in data.SOUND_DATASETS


def _clips_with_sound(folder, n: int = 6) -> str:
  """Facial-R1 JSONL of mp4s with frames and sound (MAFW's layout)."""
  import video_files

  from emojax.data import synth as synth_lib
  from emojax.data import voice

  (folder / "clips").mkdir(parents=True)
  splits = {"train": [], "sft": [], "test": []}
  for i in range(3 * n):
    clip = synth_lib.make_clip(0, i, size=32, frames=8, reasoning=True)
    wave = voice.render({"emotion": "happy", "transcription": "oh"}, seed=i)
    name = f"clips/{i:05d}.mp4"
    video_files.write_audio(
      folder / name, wave[None], 16000, video=(np.stack(clip["frames"]), 4)
    )
    row = {"video": name, "labels": clip["labels"], "AUs": clip["AUs"]}
    split = ("train", "sft", "test")[i % 3]
    if split == "sft":
      row["description"] = clip["description"]
    splits[split].append(json.dumps(row))
  for split, rows in splits.items():
    (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
  return str(folder)


@pytest.mark.slow  # ~60 s: the GRPO step's compiles with both towers.
def test_r1_omni_grpo_on_an_omni_model_hears_each_clips_sound(
  tmp_path, monkeypatch
):
  """GRPO on mp4s with sound, a random tiny Omni thinker: every rollout
  batch holds each video's frames and sound interleaved (the layout
  vlm.prepare checks), and the clips' features reach the step."""
  from emojax.model import audio_lm

  seen = _record_batches(monkeypatch, audio_lm)
  c = _config("r1_omni", "human_omni_v2,video,smoke")
  c.stages, c.eval.num_examples, c.rl.steps = ("grpo",), 0, 1
  c.model.preset = "tiny_omni"
  c.data.dataset = "facial_r1_video"
  c.data.manual_dir = _clips_with_sound(tmp_path / "clips")
  c.data.audio, c.data.audio_seconds = True, 4.0
  c.data.max_len = 512
  history, _ = _smoke(c, tmp_path, monkeypatch)
  assert "evals" not in history
  tok = setup.tokenizer(c)
  heard = [b for b in seen if b.get("input_features") is not None]
  assert heard
  for b in heard:
    ids = np.asarray(b["input_ids"])
    rows = (ids == tok.video_pad_id).any(1)
    assert rows.any() and ((ids == tok.audio_bos_id).any(1) == rows).all()
