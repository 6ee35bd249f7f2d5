"""launch/eval.py --predictions on a fixture: known numbers and files."""

import base64
import dataclasses
import html as html_lib
import json
import os
import pathlib
import re

import jax
import launch_scripts
import numpy as np
import pytest
from PIL import Image

from emojax import checkpoint, model
from emojax.data import synth
from emojax.data import tokenizer as tokenizer_lib
from emojax.model import config as config_lib
from emojax.model import params as params_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]


eval_launch = launch_scripts.load("eval")

# (completion, labels, AUs, confidence); numbers worked out by hand below.
FIXTURE = [
  (
    "<think>cheeks raised (AU6), lip corners pulled (AU12)</think>"
    "<answer>happy</answer>",
    ["happiness"], ["AU6", "AU12"], 0.9,
  ),
  (
    "<think>brows lowered (AU4), lids tight (AU7)</think><answer>anger"
    "</answer>",
    ["anger"], ["AU4", "AU5", "AU7", "AU23"], 0.8,
  ),
  (
    "<think>inner brows up (AU1), lip corners down (AU15)</think>"
    "<answer>fear</answer>",
    ["sadness"], ["AU1", "AU4", "AU15"], 0.6,
  ),
  ("The face is surprised.", ["surprise"], ["AU1", "AU2", "AU5", "AU26"], None),
  (
    "<think>jaw drop (AU26) and brows up (AU1, AU2)</think>"
    "<answer>surprise</answer>",
    ["surprise"], ["AU1", "AU2", "AU5", "AU26"], 0.7,
  ),
  (
    "<think>relaxed face</think><answer>neutral</answer>",
    ["neutral"], [], 0.95,
  ),
]  # fmt: skip

KNOWN = {
  "count": 6,
  "emotion/accuracy": 4 / 6,
  "emotion/uar": 3.5 / 5,
  "emotion/macro_f1": (1 + 1 + 0 + 2 / 3 + 1) / 5,
  "emotion/weighted_f1": (1 + 1 + 0 + 2 * 2 / 3 + 1) / 6,
  "emotion/unparseable_rate": 1 / 6,
  # Per AU: 1: .8, 2/4/26: 2/3, 5/23: 0, 6/7/12/15: 1.
  "au/macro_f1": (0.8 + 3 * 2 / 3 + 4) / 10,
  "au/micro_f1": 18 / 26,
  "au/count": 5,
  "format/valid_rate": 5 / 6,
  # emfacs F1 of the named diagnostic AUs with the answer's prototype.
  "facs/consistency": (1 + 2 / 3 + 0.25 + 0 + 6 / 7 + 1) / 6,
  "confidence/coverage": 5 / 6,
  "confidence/brier": (0.01 + 0.04 + 0.36 + 0.09 + 0.0025) / 5,
  "confidence/ece": (0.075 * 2 + 0.2 + 0.6 + 0.3) / 5,
  "confidence/auroc": 1.0,
  "reasoning/rouge_l": 1.0,
  "reasoning/count": 1,
}


def _write_fixture(folder: pathlib.Path) -> pathlib.Path:
  (folder / "images").mkdir(parents=True)
  path = folder / "preds.jsonl"
  with open(path, "w") as f:
    for i, (completion, labels, aus, conf) in enumerate(FIXTURE):
      Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(
        folder / "images" / f"{i}.png"
      )
      row = {"completion": completion, "labels": labels, "AUs": aus}
      row["image"] = f"{i}.png"
      if conf is not None:
        row["confidence"] = conf
      if i == 0:
        row["description"] = completion
      f.write(json.dumps(row) + "\n\n")  # Blank lines are skipped.
  return path


def _run(*args: str) -> int:
  eval_launch.FLAGS.unparse_flags()
  argv = eval_launch.FLAGS(["eval.py", *args])
  return eval_launch.main(argv)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("fixture")


def test_predictions_give_known_numbers(fixture_dir, tmp_path, capsys):
  preds = _write_fixture(fixture_dir / "a")
  out = tmp_path / "out"
  assert _run(f"--predictions={preds}", f"--out={out}") == 0
  got = json.loads((out / "metrics.json").read_text())
  for key, want in KNOWN.items():
    assert got[key] == pytest.approx(want), key
  assert got["au/f1/AU1"] == pytest.approx(0.8)
  assert got["emotion/recall/surprise"] == pytest.approx(0.5)
  summary = capsys.readouterr().out
  assert "Emotion accuracy (WAR)    0.667" in summary
  report = (out / "report.md").read_text()
  for png in ("confusion.png", "au_f1.png", "reliability.png"):
    assert f"]({png})" in report
    assert Image.open(out / png).size[0] > 200


def _srcs(page: str) -> list[str]:
  return re.findall(r'<img src="([^"]+)"', page)


def test_html_embeds_or_links_existing_images(fixture_dir, tmp_path):
  preds = _write_fixture(fixture_dir / "b")
  out = tmp_path / "linked"
  assert _run(f"--predictions={preds}", f"--out={out}", "--noembed_images") == 0
  page = (out / "completions.html").read_text()
  srcs = _srcs(page)
  assert len(srcs) == 3 + len(FIXTURE)  # Three plots, one face per row.
  for src in srcs:
    assert not src.startswith(("http:", "https:", "/"))
    assert (out / src).is_file(), src
  assert "http" not in page  # Self-contained: nothing fetched.
  for name, n in (("All", 6), ("Wrong answer", 2), ("Invalid format", 1)):
    assert f"{name} ({n})</button>" in page
  assert page.count('data-wrong="1"') == 2

  out = tmp_path / "embedded"
  assert _run(f"--predictions={preds}", f"--out={out}") == 0
  srcs = _srcs((out / "completions.html").read_text())
  assert len(srcs) == 3 + len(FIXTURE)
  for src in srcs:
    head, data = src.split(",", 1)
    assert head == "data:image/png;base64"
    assert base64.b64decode(data).startswith(b"\x89PNG")


def test_bad_inputs_say_where_and_how(tmp_path, capsys):
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"completion": "x", "AUs": ["AU6"]}\n{"labels": ["sad"]}\n')
  assert _run(f"--predictions={bad}", f"--out={tmp_path / 'o'}") == 2
  err = capsys.readouterr().err
  assert f"{bad}:2" in err and "`completion`" in err
  bad.write_text('{"completion": "x", "AUs": ["smile"]}\n')
  assert _run(f"--predictions={bad}", f"--out={tmp_path / 'o'}") == 2
  assert f"{bad}:1: `AUs`" in capsys.readouterr().err
  assert _run(f"--out={tmp_path / 'o'}") == 2
  assert "pick exactly one" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "o")


def _load_make_data():
  return launch_scripts.load("make_data")


@pytest.mark.slow
def test_checkpoint_mode_decodes_and_scores(tmp_path):
  """A tiny random VLM saved as an emojax checkpoint, make_data's faces,
  a tokenizer built here: greedy completions land in predictions.jsonl and
  re-score to the same numbers."""
  tok_dir = tmp_path / "tok"
  corpus = list(synth.text_corpus(seed=0, n=200))
  tokenizer_lib.build_default(tok_dir, corpus, vocab_size=600)
  tok = tokenizer_lib.Tokenizer.from_dir(tok_dir)
  cfg = dataclasses.replace(
    config_lib.tiny_vlm(tok.vocab_size),
    image_token_id=tok.image_pad_id,
    video_token_id=tok.token_id("<|video_pad|>"),
    vision_start_token_id=tok.vision_start_id,
    eos_token_ids=tok.eos_ids,
    pad_token_id=tok.pad_id,
  )
  params = params_lib.init(model.specs(cfg), jax.random.key(0))
  ckpt = tmp_path / "ckpt"
  files = [str(p) for p in tok_dir.iterdir() if p.is_file()]
  checkpoint.save_params(str(ckpt), cfg, params, tokenizer_files=files)
  data = tmp_path / "data"
  make_data = _load_make_data()
  make_data.make_data(make_data.Spec("facs_synth", str(data), 0, 2, seed=1))

  out = tmp_path / "out"
  assert (
    _run(
      f"--checkpoint={ckpt}",
      f"--data_dir={data}",
      "--split=test",
      f"--out={out}",
      "--max_new_tokens=4",
      "--batch_size=2",
      "--noembed_images",
    )
    == 0
  )
  rows = [json.loads(x) for x in (out / "predictions.jsonl").open()]
  gold = [json.loads(x) for x in (data / "test.jsonl").open()]
  assert [r["labels"] for r in rows] == [g["labels"] for g in gold]
  assert [r["AUs"] for r in rows] == [g["AUs"] for g in gold]
  for r, g in zip(rows, gold, strict=True):
    assert isinstance(r["completion"], str)
    want = Image.open(data / g["image"])
    np.testing.assert_array_equal(Image.open(out / r["image"]), want)
  got = json.loads((out / "metrics.json").read_text())
  assert got["count"] == 2
  again = tmp_path / "again"
  preds = out / "predictions.jsonl"
  assert _run(f"--predictions={preds}", f"--out={again}") == 0
  assert json.loads((again / "metrics.json").read_text()) == got


def test_a_config_decodes_with_its_training_prompt(tmp_path, monkeypatch):
  """--config: the prompts, label list and budgets are the run's (its
  end-of-stage eval's), not Facial-R1's defaults."""
  from configs import emocaliber
  from emojax.eval import decode
  from emojax.train import data as train_data

  seen = {}
  cfg = config_lib.tiny_vlm(600)
  monkeypatch.setattr(decode, "load_model", lambda _: (cfg, None, None))
  monkeypatch.setattr(decode, "read_split", lambda *_: [])
  monkeypatch.setattr(tokenizer_lib, "ensure_default", lambda **_: None)

  def spy(params, cfg, rows, tok, dc, example):
    seen.update(dc=dc, example=example)
    raise FileNotFoundError("stop here")

  monkeypatch.setattr(decode, "decode", spy)
  spec = f"--config={ROOT / 'configs' / 'emocaliber.py'}"
  args = (spec, "--checkpoint=x", "--data_dir=d", f"--out={tmp_path}")
  assert _run(*args) == 2
  config = emocaliber.get_config()
  want = train_data.example_config(
    cfg, config.data, "rollout", "task", "description"
  )
  assert seen["example"] == want and want.prompt == "emocaliber"
  assert seen["dc"].max_new_tokens == config.eval.max_new_tokens
  assert eval_launch._label_set() == tuple(config.data.emotions)
  assert _run("--checkpoint=x", "--data_dir=d", f"--out={tmp_path}") == 2
  assert seen["example"].prompt == "facial_r1"  # Without a config.


def test_a_text_config_decodes_its_own_dataset_layout(tmp_path):
  """--config=configs/emotion_thinker.py reads --data_dir as EmotionCoT
  JSONL (Facial-R1's reader finds no `labels` there) and decodes a text
  checkpoint with the transcript-and-cues prompt."""
  from emojax.data import speech_synth

  tok_dir = tmp_path / "tok"
  tokenizer_lib.build_default(
    tok_dir, list(synth.text_corpus(seed=0, n=50)), vocab_size=600
  )
  tok = tokenizer_lib.Tokenizer.from_dir(tok_dir)
  cfg = dataclasses.replace(
    config_lib.tiny_text(tok.vocab_size),
    eos_token_ids=tok.eos_ids,
    pad_token_id=tok.pad_id,
  )
  params = params_lib.init(model.specs(cfg), jax.random.key(0))
  ckpt = tmp_path / "ckpt"
  files = [str(p) for p in tok_dir.iterdir() if p.is_file()]
  checkpoint.save_params(str(ckpt), cfg, params, tokenizer_files=files)
  data = tmp_path / "emotioncot"
  data.mkdir()
  records = [speech_synth.make_record(0, i, reasoning=False) for i in range(6)]
  records = [r for r in records if r["emotion"] == "contempt or disgust"][:1]
  records.append({**speech_synth.make_record(0, 0, reasoning=False)})
  assert records[0]["emotion"] == "contempt or disgust"
  lines = [json.dumps(r) for r in records]
  (data / "test.jsonl").write_text("\n".join(lines) + "\n")

  out = tmp_path / "out"
  spec = f"--config={ROOT / 'configs' / 'emotion_thinker.py'}"
  args = (f"--checkpoint={ckpt}", f"--data_dir={data}", "--split=test")
  assert _run(spec, *args, f"--out={out}", "--max_new_tokens=4") == 0
  rows = [json.loads(x) for x in (out / "predictions.jsonl").open()]
  assert rows[0]["labels"] == ["disgust"] and len(rows) == 2
  facial = tmp_path / "facial"  # Without the config: Facial-R1's reader.
  assert _run(*args, f"--out={facial}") == 0
  assert [
    json.loads(x)["labels"] for x in (facial / "predictions.jsonl").open()
  ] == [[], []]


def test_a_run_checkpoint_decodes_as_the_run_evaluated_it(
  tmp_path, monkeypatch
):
  """--checkpoint=WORKDIR (its newest checkpoint) and WORKDIR/checkpoints/
  STEP (a stage boundary) read the run's config and data, and reproduce
  the run's own end-of-stage evals (here a watching model's: clips); a
  mid-stage checkpoint's params are read out of its train state."""
  from configs import r1_omni
  from emojax.train import setup, stages

  monkeypatch.setenv("EMOJAX_CACHE", str(tmp_path / "cache"))
  c = r1_omni.get_config("video,smoke")
  c.stages, c.sft.steps, c.checkpoint_every = ("sft", "sft"), 2, 1
  c.keep_checkpoints = 8
  c.data.tfds_dir = str(tmp_path / "tfds")
  c.async_checkpoints = False
  workdir = tmp_path / "run"
  evals = stages.train(c, str(workdir))["evals"]
  completions = {}
  for name, where in (
    ("1-sft", workdir),
    ("0-sft", workdir / "checkpoints" / "2"),
  ):
    out = tmp_path / name
    assert _run(f"--checkpoint={where}", f"--out={out}") == 0
    got = json.loads((out / "metrics.json").read_text())
    assert got["emotion/count"] == c.eval.num_examples
    for key in ("emotion/accuracy", "format/valid_rate", "au/micro_f1"):
      assert got[key] == pytest.approx(evals[name][key], abs=1e-9), (name, key)
    # The very completions the run's eval wrote.
    page = (workdir / "eval" / name / "completions.html").read_text()
    lines = (out / "predictions.jsonl").read_text().splitlines()
    completions[name] = [json.loads(line)["completion"] for line in lines]
    for text in completions[name]:
      assert html_lib.escape(text) in page, (name, text)
  assert all(completions["0-sft"]) and all(completions["1-sft"])
  assert completions["0-sft"] != completions["1-sft"]  # two steps apart
  mid = tmp_path / "mid"  # step 3: inside the second stage (opt state too)
  assert (
    _run(f"--checkpoint={workdir / 'checkpoints' / '3'}", f"--out={mid}") == 0
  )
  assert json.loads((mid / "metrics.json").read_text())["count"] == 4
  # Read alone, the params are the train state's (restored whole here).
  ckpt = checkpoint.RunCheckpoints(workdir / "checkpoints", async_save=False)
  whole = ckpt.restore_state(3)
  assert set(whole["train"]) > {"params"}  # opt_state, step
  cfg = setup.model_config(c, setup.tokenizer(c))
  step, params = checkpoint.restore_run_params(workdir / "checkpoints", cfg, 3)
  assert step == 3
  jax.tree.map(np.testing.assert_array_equal, params, whole["train"]["params"])
  assert (
    _run(f"--checkpoint={workdir / 'checkpoints' / '9'}", f"--out={tmp_path}")
    == 2
  )
