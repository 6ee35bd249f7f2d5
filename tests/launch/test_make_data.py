"""launch/make_data.py: layout, relative image paths, splits, bad flags."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import launch_scripts
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from emojax.data import audio_features, audio_io, synth, voice
from emojax.data.tfds import emotion_cot, facs_clips
from emojax.eval import decode

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "launch" / "make_data.py"


make_data = launch_scripts.load("make_data")
# Worker processes find the pool's function by module name.
sys.modules["make_data"] = make_data


def _rows(path: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  out = tmp_path_factory.mktemp("parent") / "facs"
  spec = make_data.Spec("facs_synth", str(out), 10, 4, num_sft=3, seed=7)
  assert make_data.make_data(spec) == out
  return out


def test_layout_and_rows(written):
  names = sorted(p.name for p in written.iterdir())
  assert names == [
    "contact_sheet.png",
    "images",
    "sft.jsonl",
    "test.jsonl",
    "train.jsonl",
  ]
  train, test = _rows(written / "train.jsonl"), _rows(written / "test.jsonl")
  sft = _rows(written / "sft.jsonl")
  assert (len(train), len(test), len(sft)) == (10, 4, 3)
  for row in train + test:
    assert set(row) == {"image", "labels", "AUs", "caption"}
  for row in sft:
    assert set(row) == {"image", "labels", "AUs", "caption", "description"}
  # Nothing left beside the output (the temporary folder was renamed).
  assert [p.name for p in written.parent.iterdir()] == ["facs"]


def test_rows_match_make_example_and_images_load(written):
  for split in ("train", "test"):
    seed = synth.split_seed(7, split)
    for i, row in enumerate(_rows(written / f"{split}.jsonl")):
      assert not pathlib.PurePath(row["image"]).is_absolute()
      image = np.asarray(Image.open(written / row["image"]))
      ex = synth.make_example(seed, i, size=64)
      np.testing.assert_array_equal(image, ex["image"])
      assert row["labels"] == ex["labels"] and row["AUs"] == ex["AUs"]


def test_sft_is_train_subset_disjoint_from_test(written):
  train = _rows(written / "train.jsonl")
  test_images = {r["image"] for r in _rows(written / "test.jsonl")}
  for k, row in enumerate(_rows(written / "sft.jsonl")):
    assert row["image"] == train[k]["image"]
    assert row["image"] not in test_images
    ex = synth.make_example(synth.split_seed(7, "train"), k, reasoning=True)
    assert row["description"] == ex["description"]
  pixels = lambda p: np.asarray(Image.open(written / p)).tobytes()
  train_pixels = {pixels(r["image"]) for r in train}
  assert not train_pixels & {pixels(p) for p in test_images}


def test_contact_sheet_is_an_image(written):
  sheet = Image.open(written / "contact_sheet.png")
  assert sheet.width >= 6 * 64 and sheet.height >= 2 * 64


@pytest.mark.parametrize(
  "change, message",
  [
    ({"dataset": "rafdb"}, "--dataset='rafdb' is unknown"),
    ({"num_train": -1}, r"--num_train=-1 must be in"),
    ({"num_sft": 11}, r"--num_sft=11 must be in \[0, --num_train=10\]"),
    ({"num_train": 0, "num_test": 0}, "nothing to write"),
    ({"size": 8}, r"--size=8 must be in \[16, 1024\]"),
    ({"seed": -3}, "--seed=-3"),
    ({"frames": 0}, r"--frames=0 must be in \[1, 1000\]"),
    ({"fps": 0.0}, "--fps=0.0 must be > 0"),
  ],
)
def test_bad_flags_name_the_flag(tmp_path, change, message):
  spec = make_data.Spec("facs_synth", str(tmp_path / "x"), 10, 2)
  with pytest.raises(ValueError, match=message):
    make_data.validate(dataclasses.replace(spec, **change))


def test_bad_out_dirs(tmp_path):
  spec = make_data.Spec("facs_synth", str(tmp_path), 1, 1)
  with pytest.raises(ValueError, match="already exists; pass --overwrite"):
    make_data.validate(spec)
  missing = dataclasses.replace(spec, out=str(tmp_path / "a" / "b"))
  with pytest.raises(ValueError, match="parent folder .* does not exist"):
    make_data.validate(missing)


def test_unwritable_out_dir(tmp_path, monkeypatch):
  # Root (CI) may write anywhere, so the permission check is what is
  # exercised: the folder reports itself read-only.
  locked = tmp_path / "locked"
  locked.mkdir()
  real = os.access
  monkeypatch.setattr(
    make_data.os,
    "access",
    lambda p, mode: False if str(p) == str(locked) else real(p, mode),
  )
  spec = make_data.Spec("facs_synth", str(locked / "out"), 1, 1)
  with pytest.raises(ValueError, match="cannot write in"):
    make_data.validate(spec)


def test_workers_write_the_same_files(tmp_path):
  one = make_data.Spec("facs_synth", str(tmp_path / "one"), 6, 2, num_sft=2)
  two = dataclasses.replace(one, out=str(tmp_path / "two"), workers=2)
  make_data.make_data(one)
  make_data.make_data(two)
  for name in ("train.jsonl", "test.jsonl", "sft.jsonl"):
    assert (tmp_path / "one" / name).read_text() == (
      tmp_path / "two" / name
    ).read_text()


def test_overwrite_replaces_atomically(tmp_path):
  out = tmp_path / "d"
  spec = make_data.Spec("facs_synth", str(out), 2, 1, size=32)
  make_data.make_data(spec)
  make_data.make_data(dataclasses.replace(spec, num_train=3, overwrite=True))
  assert len(_rows(out / "train.jsonl")) == 3
  assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_command_line(tmp_path):
  out = tmp_path / "cli"
  run = lambda *flags: subprocess.run(
    [sys.executable, str(SCRIPT), *flags],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=120,
  )
  ok = run(f"--out={out}", "--num_train=3", "--num_test=1", "--num_sft=1")
  assert ok.returncode == 0, ok.stderr
  assert len(_rows(out / "sft.jsonl")) == 1
  bad = run(f"--out={tmp_path / 'x'}", "--num_train=1", "--num_sft=2")
  assert bad.returncode == 2 and "--num_sft=2" in bad.stderr


def test_prosody_synth_writes_emotion_cot_with_clips(tmp_path):
  out = tmp_path / "speech"
  spec = make_data.Spec("prosody_synth", str(out), 4, 2, num_sft=2, seed=3)
  make_data.make_data(spec)
  assert sorted(p.name for p in out.iterdir()) == [
    "audio",
    "sft.jsonl",
    "test.jsonl",
    "train.jsonl",
  ]
  train, sft = _rows(out / "train.jsonl"), _rows(out / "sft.jsonl")
  assert [r["audio_path"] for r in train] == [
    f"audio/train/{i:06d}.wav" for i in range(4)
  ]
  # The SFT rows are the first train rows, with EmotionCoT's reasoning.
  assert [{k: r[k] for k in train[0]} for r in sft] == train[:2]
  assert all(r["reasoning"] for r in sft) and "reasoning" not in train[0]
  # Each clip is its record spoken, in 16-bit PCM at 16 kHz (written with
  # scale 32767 and truncation, read with 32768: two steps at most).
  for i, row in enumerate(train + _rows(out / "test.jsonl")):
    wave = audio_io.read(out / row["audio_path"])
    np.testing.assert_allclose(
      wave, voice.render(row, seed=i % 4), atol=2 / 32767
    )
    assert audio_features.log_mel(wave)[1] == -(-len(wave) // 160)
  # EmotionCoT's builder reads the folder as the real data set.
  builder = emotion_cot.EmojaxEmotionCot(
    data_dir=str(tmp_path / "tfds"), file_format="array_record"
  )
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(out))
  )
  got = list(builder.as_data_source("train"))
  want = [emotion_cot.label(r["emotion"], "", 0, "") for r in train]
  assert sorted(ex["labels"][0].decode() for ex in got) == sorted(want)
  # launch/eval.py's reader of one split keeps the clips beside it.
  rows = decode.read_split(
    str(out), "test", emotion_cot.EmojaxEmotionCot, audio=True
  )
  want = [
    (out / r["audio_path"]).read_bytes() for r in _rows(out / "test.jsonl")
  ]
  assert [bytes(r["audio"]) for r in rows] == want


def test_facs_clips_writes_frame_folders_the_builder_reads(tmp_path):
  out = tmp_path / "clips"
  spec = make_data.Spec(
    "facs_clips", str(out), 3, 1, num_sft=1, seed=2, size=32, frames=3, fps=5
  )
  make_data.make_data(spec)
  assert sorted(p.name for p in out.iterdir()) == [
    "contact_sheet.png",
    "sft.jsonl",
    "test.jsonl",
    "train.jsonl",
    "videos",
  ]
  train, test = _rows(out / "train.jsonl"), _rows(out / "test.jsonl")
  assert [r["video"] for r in train] == [
    f"videos/train/{i:06d}" for i in range(3)
  ]
  assert _rows(out / "sft.jsonl")[0]["video"] == train[0]["video"]
  for split, rows in (("train", train), ("test", test)):
    for i, row in enumerate(rows):
      assert set(row) == {"video", "fps", "labels", "AUs", "caption"}
      assert row["fps"] == 5
      names = sorted(p.name for p in (out / row["video"]).iterdir())
      assert names == ["000.png", "001.png", "002.png"]
      clip = synth.make_clip(synth.split_seed(2, split), i, size=32, frames=3)
      frames = [np.asarray(Image.open(out / row["video"] / n)) for n in names]
      np.testing.assert_array_equal(np.stack(frames), clip["frames"])
      assert row["labels"] == clip["labels"] and row["AUs"] == clip["AUs"]
  assert Image.open(out / "contact_sheet.png").width >= 4 * 32
  # The clips builder reads the folder back through the video JSONL reader.
  builder = facs_clips.EmojaxFacsClips(
    data_dir=str(tmp_path / "tfds"), file_format="array_record"
  )
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(out))
  )
  got = sorted(builder.as_data_source("train"), key=lambda r: r["line"])
  assert len(got) == 3 and len(builder.as_data_source("sft")) == 1
  first = train[0]["video"]
  want = [(out / first / f"{f:03d}.png").read_bytes() for f in range(3)]
  assert [bytes(f) for f in got[0]["video"]] == want
  assert got[0]["video_fps"] == 5.0
