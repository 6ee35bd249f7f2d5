"""Each manual_dir gets its own prepared tfds copy: tfds keys copies by
dataset and version only, so a second folder read the first one's rows."""

import os

import ml_collections

from emojax.train import data


def _folder(path, texts) -> str:
  path.mkdir(parents=True, exist_ok=True)
  for split in ("train", "test"):
    lines = ["text,label"] + [f"{t},1" for t in texts]
    (path / f"{split}.csv").write_text("\n".join(lines) + "\n")
  return str(path)


def _texts(cfg) -> list[str]:
  source = data.builder(cfg).as_data_source("train")
  return sorted(source[i]["text"].decode() for i in range(len(source)))


def test_each_manual_dir_and_edit_is_prepared_on_its_own(tmp_path):
  cfg = ml_collections.ConfigDict(
    dict(
      dataset="dair_emotion",
      tfds_dir=str(tmp_path / "tfds"),
      manual_dir=_folder(tmp_path / "a", ["i am glad", "so happy"]),
      on_bad_example="fail",
      splits={},
    )
  )
  assert _texts(cfg) == ["i am glad", "so happy"]
  first = data.prepared_dir(cfg, cfg.manual_dir)
  cfg.manual_dir = _folder(tmp_path / "b", ["what joy"])
  assert _texts(cfg) == ["what joy"]
  _folder(tmp_path / "b", ["what joy", "pure bliss"])  # Rows added.
  assert _texts(cfg) == ["pure bliss", "what joy"]
  cfg.manual_dir = str(tmp_path / "a")
  assert data.prepared_dir(cfg, cfg.manual_dir) == first  # Reused.
  assert _texts(cfg) == ["i am glad", "so happy"]


def test_a_home_relative_manual_dir_is_read(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  _folder(tmp_path / "dair", ["i am glad"])
  cfg = ml_collections.ConfigDict(
    dict(
      dataset="dair_emotion",
      tfds_dir=os.path.join("~", "tfds"),
      manual_dir=os.path.join("~", "dair"),
      on_bad_example="fail",
      splits={},
    )
  )
  assert _texts(cfg) == ["i am glad"]
