"""dair-ai/emotion builder on CSV, JSONL and parquet fixtures."""

import json

import pytest
from _tfds_build import prepare, read

from emojax.data.tfds import dair_emotion

ROWS = [("i feel so alone", 0), ("what a lovely day", 1), ("grr", 3)]


def test_csv_jsonl_parquet(tmp_path):
  pq = pytest.importorskip("pyarrow.parquet")
  pa = pytest.importorskip("pyarrow")
  m = tmp_path / "m"
  (m / "split").mkdir(parents=True)
  lines = ["text,label"] + [f"{t},{lab}" for t, lab in ROWS]
  (m / "train.csv").write_text("\n".join(lines) + "\n")
  jsonl = [json.dumps({"text": t, "label": lab}) for t, lab in ROWS[:2]]
  (m / "validation.jsonl").write_text("\n".join(jsonl + ["{oops"]) + "\n")
  table = pa.table({"text": [t for t, _ in ROWS], "label": [5, 4, 2]})
  pq.write_table(table, m / "split" / "test-00000-of-00001.parquet")
  builder = prepare(
    dair_emotion.EmojaxDairEmotion, m, tmp_path, on_bad_example="skip"
  )
  train = read(builder, "train")
  assert [(r["text"], r["labels"]) for r in train] == [
    ("i feel so alone", ["sadness"]),
    ("what a lovely day", ["joy"]),
    ("grr", ["anger"]),
  ]
  assert [r["line"] for r in train] == [2, 3, 4]
  assert len(read(builder, "validation")) == 2
  assert builder.bad_examples.count == 1
  assert "validation.jsonl:3" in builder.bad_examples.reasons[0]
  test = read(builder, "test")
  assert [r["labels"] for r in test] == [["surprise"], ["fear"], ["love"]]


def test_unknown_label_fails(tmp_path):
  (tmp_path / "m").mkdir()
  (tmp_path / "m" / "train.csv").write_text("text,label\nhi,6\n")
  with pytest.raises(ValueError, match=r"train\.csv:2.*labels are 0\.\.5"):
    prepare(dair_emotion.EmojaxDairEmotion, tmp_path / "m", tmp_path)
