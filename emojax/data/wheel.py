"""Emotion wheels and AffectGPT's emotion-wheel (EW) metric.

A label maps through: word form -> base (`forms`) -> synonym -> wheel word
(`synonyms`) -> the wheel's level-1 root or level-2 node. Unmappable words
are dropped, as in AffectGPT `my_affectgpt/evaluation/wheel.py` (METHODS.md
section 4). emojax ships one wheel (Parrott's three-tier tree,
`wheels/parrott.json`); `load_affectgpt_wheels` reads AffectGPT's five.
"""

import csv
import dataclasses
import functools
import json
import os
import string
import unicodedata
from collections.abc import Iterable, Sequence

LEVELS = ("level1", "level2")
_DIR = os.path.join(os.path.dirname(__file__), "wheels")


@dataclasses.dataclass(frozen=True)
class Wheel:
  """One wheel: every wheel word -> (level-1 root, level-2 node)."""

  name: str
  nodes: dict[str, tuple[str, str]]

  @classmethod
  def from_rows(cls, name: str, rows: Iterable[Sequence[str]]) -> "Wheel":
    """From (level1, level2, level3) rows; every word on a row maps to the
    row's level-1 and level-2 nodes (level1 words map to themselves)."""
    nodes = {}
    for l1, l2, l3 in rows:
      l1, l2, l3 = (_clean(w) for w in (l1, l2, l3))
      nodes.setdefault(l1, (l1, l1))
      nodes.setdefault(l2, (l1, l2))
      nodes[l3] = (l1, l2)  # The deepest placement wins.
    nodes.pop("", None)
    return cls(name, nodes)

  def node(self, word: str, level: str) -> str | None:
    if level not in LEVELS:
      raise ValueError(f"level={level!r}; choose one of {LEVELS}.")
    found = self.nodes.get(word)
    return None if found is None else found[LEVELS.index(level)]


@dataclasses.dataclass(frozen=True)
class Wheels:
  """Word-form and synonym tables plus one or more wheels."""

  forms: dict[str, str]
  synonyms: dict[str, str]
  wheels: tuple[Wheel, ...]

  def base(self, word: str) -> str:
    """Word form -> base -> synonym (each step optional)."""
    w = _clean(word)
    w = self.forms.get(w, w)
    return self.synonyms.get(w, w)

  def map(self, words: Iterable[str], wheel: Wheel, level: str) -> set[str]:
    """The set of wheel nodes the mappable words land on."""
    nodes = (wheel.node(self.base(w), level) for w in words)
    return {n for n in nodes if n is not None}


def _clean(word: str) -> str:
  w = unicodedata.normalize("NFKC", str(word))
  return w.strip(string.punctuation + string.whitespace).lower()


@functools.cache
def default_wheels() -> Wheels:
  """emojax's shipped wheel: Parrott's tree (see third_party/README.md)."""
  with open(os.path.join(_DIR, "parrott.json"), encoding="utf-8") as f:
    data = json.load(f)
  rows = [
    (l1, l2, l3)
    for l1, children in data["tree"].items()
    for l2, leaves in children.items()
    for l3 in leaves
  ]
  return Wheels(
    forms=data["forms"],
    synonyms=data["synonyms"],
    wheels=(Wheel.from_rows(data["name"], rows),),
  )


def _read_table(path_stem: str) -> list[list[str]]:
  """Rows (header dropped) of `stem.csv`, or of `stem.xlsx` via openpyxl."""
  if os.path.exists(path_stem + ".csv"):
    with open(path_stem + ".csv", encoding="utf-8-sig", newline="") as f:
      return [r for r in csv.reader(f)][1:]
  if not os.path.exists(path_stem + ".xlsx"):
    raise FileNotFoundError(f"{path_stem}.csv or .xlsx is missing.")
  try:
    import openpyxl  # Optional: only for AffectGPT's own .xlsx files.
  except ImportError as e:
    raise ImportError(
      f"Reading {path_stem}.xlsx needs openpyxl (pip install openpyxl), or "
      f"export the sheet to {path_stem}.csv beside it."
    ) from e
  sheet = openpyxl.load_workbook(path_stem + ".xlsx", read_only=True).active
  rows = sheet.iter_rows(min_row=2, values_only=True)
  return [["" if v is None else str(v) for v in r] for r in rows]


def _pairs(rows, path):
  out = {}
  for i, row in enumerate(rows, start=2):
    if len(row) < 2:
      raise ValueError(f"{path} row {i}: expected (word, mapped word).")
    if row[0] and row[1]:
      out[_clean(row[0])] = _clean(row[1])
  return out


def load_affectgpt_wheels(directory: str) -> Wheels:
  """AffectGPT's files: format (form, base), synonym (word, wheel word) and
  wheel1..wheel5 (level1, level2, level3 columns), each .csv or .xlsx with a
  header row. Column order is as described above (UNVERIFIED against the
  original sheets' headers; reorder exported columns if they differ)."""
  stem = lambda name: os.path.join(directory, name)
  forms = _pairs(_read_table(stem("format")), stem("format"))
  synonyms = _pairs(_read_table(stem("synonym")), stem("synonym"))
  wheels = []
  for k in range(1, 6):
    rows = _read_table(stem(f"wheel{k}"))
    bad = [i for i, r in enumerate(rows, start=2) if len(r) < 3]
    if bad:
      raise ValueError(
        f"{stem(f'wheel{k}')} row {bad[0]}: expected level1, level2, level3."
      )
    wheels.append(Wheel.from_rows(f"wheel{k}", [r[:3] for r in rows]))
  return Wheels(forms, synonyms, tuple(wheels))


def _sample_pr(pred_words, gold_words, wheels, wheel, level):
  gold = wheels.map(gold_words, wheel, level)
  if not gold:
    return None
  pred = wheels.map(pred_words, wheel, level)
  hits = len(gold & pred)
  return (hits / len(pred) if pred else 0.0), hits / len(gold)


def _f(p, r):
  return 2.0 * p * r / (p + r) if p + r > 0 else 0.0


def ew_scores(
  pred_labels: Sequence[str],
  gold_labels: Sequence[str],
  level: str = "level1",
  wheels: Wheels | None = None,
) -> dict[str, float] | None:
  """One sample's EW precision, recall and F1, averaged over the wheels
  where the gold maps (the per-sample reward form); None if it maps on
  none (AffectGPT skips such samples)."""
  wheels = wheels or default_wheels()
  scores = [
    s
    for w in wheels.wheels
    if (s := _sample_pr(pred_labels, gold_labels, wheels, w, level))
  ]
  if not scores:
    return None
  return {
    "precision": sum(p for p, _ in scores) / len(scores),
    "recall": sum(r for _, r in scores) / len(scores),
    "f1": sum(_f(p, r) for p, r in scores) / len(scores),
  }


def ew_dataset(
  preds: Sequence[Sequence[str]],
  golds: Sequence[Sequence[str]],
  level: str = "level1",
  wheels: Wheels | None = None,
) -> dict[str, float]:
  """Dataset EW P/R/F: per wheel, mean P and R over samples whose gold maps,
  F = 2PR/(P+R); then each averaged over the wheels."""
  wheels = wheels or default_wheels()
  if len(preds) != len(golds):
    raise ValueError(f"{len(preds)} predictions for {len(golds)} golds.")
  per_wheel = []
  for w in wheels.wheels:
    pairs = zip(preds, golds, strict=True)
    prs = [_sample_pr(p, g, wheels, w, level) for p, g in pairs]
    prs = [s for s in prs if s is not None]
    if prs:
      p = sum(x for x, _ in prs) / len(prs)
      r = sum(y for _, y in prs) / len(prs)
      per_wheel.append((p, r, _f(p, r)))
  n = max(len(per_wheel), 1)
  return {
    k: sum(v[i] for v in per_wheel) / n
    for i, k in enumerate(("precision", "recall", "f1"))
  }
