"""MER / OV-MERD open-vocabulary builder on a fixture in the real layout."""

import csv

import pytest
from _tfds_build import prepare, read

from emojax.data import errors
from emojax.data.tfds import mer


def _csv(path, header, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)


def test_openset_words_reasons_subtitles(tmp_path):
  m = tmp_path / "m"
  m.mkdir()
  _csv(
    m / "track2_train_ovmerd.csv",
    ["name", "openset"],
    [
      ["sample_00000001", "worried, Anxious, nervous"],
      ["sample_00000002", "['happy', 'relieved']"],
      ["sample_00000003", ""],
    ],
  )
  _csv(
    m / "track3_train_ovmerd.csv",
    ["name", "reason"],
    [["sample_00000001", "Her brows are drawn together."]],
  )
  _csv(
    m / "subtitle_chieng.csv",
    ["name", "chinese", "english"],
    [["sample_00000002", "太好了", "That's great."]],
  )
  builder = prepare(mer.EmojaxMer, m, tmp_path, on_bad_example="skip")
  rows = read(builder, "ovmerd")
  assert [r["labels"] for r in rows] == [
    ["worried", "anxious", "nervous"],
    ["happy", "relieved"],
  ]
  assert rows[0]["description"] == "Her brows are drawn together."
  assert rows[1]["text"] == "That's great."
  assert rows[0]["caption"] == "sample_00000001"
  assert builder.bad_examples.count == 1
  with pytest.raises(errors.BadExampleError, match=r"ovmerd\.csv:4"):
    prepare(mer.EmojaxMer, m, tmp_path / "again")


def test_wrong_columns(tmp_path):
  (tmp_path / "m").mkdir()
  _csv(
    tmp_path / "m" / "track2_train_ovmerd.csv", ["id", "label"], [["a", "b"]]
  )
  with pytest.raises(ValueError, match="'name' and 'openset'"):
    prepare(mer.EmojaxMer, tmp_path / "m", tmp_path)
