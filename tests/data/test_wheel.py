"""Emotion wheel mapping, EW scores and the AffectGPT loader."""

import csv
import importlib.util

import pytest

from emojax.data import wheel


def test_parrott_wheel_shape():
  w = wheel.default_wheels().wheels[0]
  roots = {l1 for l1, _ in w.nodes.values()}
  assert roots == {"love", "joy", "surprise", "anger", "sadness", "fear"}
  assert w.nodes["annoyance"] == ("anger", "irritation")
  assert w.nodes["joy"] == ("joy", "cheerfulness")  # Deepest placement.
  assert w.nodes["irritation"] == ("anger", "irritation")


@pytest.mark.parametrize(
  "word, level, node",
  [
    ("Annoyed", "level1", "anger"),  # form -> base -> wheel
    ("annoyed", "level2", "irritation"),
    ("calm", "level2", "contentment"),  # synonym
    ("happy", "level1", "joy"),
    ("neutral", "level1", None),  # Unmappable: dropped.
  ],
)
def test_mapping_chain(word, level, node):
  ws = wheel.default_wheels()
  assert ws.map([word], ws.wheels[0], level) == ({node} if node else set())


def _toy_wheels():
  rows1 = [("a", "a1", "x"), ("a", "a2", "y"), ("b", "b1", "z")]
  rows2 = [("a", "a1", "x"), ("a", "a1", "y"), ("b", "b1", "z")]
  return wheel.Wheels(
    forms={"xs": "x"},
    synonyms={"ex": "x"},
    wheels=(
      wheel.Wheel.from_rows("w1", rows1),
      wheel.Wheel.from_rows("w2", rows2),
    ),
  )


def _reference(preds, golds, mapping_per_wheel):
  """AffectGPT's case3 EW metric, transcribed (METHODS.md section 4)."""
  out = []
  for mp in mapping_per_wheel:
    ps, rs = [], []
    for p, g in zip(preds, golds, strict=True):
      gm = {mp[w] for w in g if w in mp}
      pm = {mp[w] for w in p if w in mp}
      if not gm:
        continue
      ps.append(len(gm & pm) / len(pm) if pm else 0.0)
      rs.append(len(gm & pm) / len(gm))
    p, r = sum(ps) / len(ps), sum(rs) / len(rs)
    out.append((p, r, 2 * p * r / (p + r) if p + r else 0.0))
  return [sum(v[i] for v in out) / len(out) for i in range(3)]


def test_ew_dataset_matches_transcription():
  preds = [["xs", "z"], ["y"], [], ["ex", "q"]]
  golds = [["x"], ["x", "y"], ["z"], ["unknown"]]
  level2 = [
    {"x": "a1", "y": "a2", "z": "b1", "xs": "a1", "ex": "a1"},
    {"x": "a1", "y": "a1", "z": "b1", "xs": "a1", "ex": "a1"},
  ]
  got = wheel.ew_dataset(preds, golds, "level2", _toy_wheels())
  want = _reference(preds, golds, level2)
  assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(want)


def test_ew_scores_per_sample():
  ws = _toy_wheels()
  s = wheel.ew_scores(["y"], ["x"], "level2", ws)
  # Wheel 1: x->a1, y->a2: F 0. Wheel 2: both a1: F 1.
  assert s == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
  assert wheel.ew_scores(["x"], ["nothing"], "level1", ws) is None
  with pytest.raises(ValueError, match="level"):
    wheel.ew_scores(["x"], ["x"], "level3", ws)


def _write_csv(path, header, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    csv.writer(f).writerows([header, *rows])


def test_load_affectgpt_wheels_from_csv_exports(tmp_path):
  _write_csv(tmp_path / "format.csv", ["name", "base"], [["Angrier", "angry"]])
  _write_csv(tmp_path / "synonym.csv", ["word", "wheel"], [["angry", "mad"]])
  for k in range(1, 6):
    _write_csv(
      tmp_path / f"wheel{k}.csv",
      ["level1", "level2", "level3"],
      [["anger", f"hot{k}", "mad"]],
    )
  ws = wheel.load_affectgpt_wheels(str(tmp_path))
  assert len(ws.wheels) == 5
  assert ws.map(["angrier"], ws.wheels[2], "level2") == {"hot3"}
  s = wheel.ew_scores(["Angrier"], ["mad"], "level1", ws)
  assert s["f1"] == 1.0


@pytest.mark.skipif(
  importlib.util.find_spec("openpyxl") is not None, reason="has openpyxl"
)
def test_xlsx_without_openpyxl_says_what_to_do(tmp_path):
  (tmp_path / "format.xlsx").write_bytes(b"")
  with pytest.raises(ImportError, match="format.csv"):
    wheel.load_affectgpt_wheels(str(tmp_path))


def test_missing_files_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="format"):
    wheel.load_affectgpt_wheels(str(tmp_path))
