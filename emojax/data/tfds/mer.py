"""MER / OV-MER open-vocabulary emotion labels (text only here).

Layout of MERChallenge/MER2025's `mer2025-dataset/` (README of
zeroQiaoba/MERTools, MER2025): `track2_train_ovmerd.csv` (columns `name`,
`openset`: free-form emotion words, comma separated, sometimes written as a
Python list), optional `track3_train_ovmerd.csv` (`name`, `reason`: the
description) and `subtitle_chieng.csv` (`name`, `chinese`, `english`). The
same reader takes MER-Caption+ (`track2_train_mercaptionplus.csv`). Labels
are lower-cased words kept as written (open vocabulary): the emotion wheel
maps them, not the basic label set.
"""

import csv
import io
import re

from etils import epath

from emojax.data import errors
from emojax.data.tfds import common

LABEL_FILES = {
  "ovmerd": "track2_train_ovmerd.csv",
  "mercaptionplus": "track2_train_mercaptionplus.csv",
}
REASON_FILES = {
  "ovmerd": "track3_train_ovmerd.csv",
  "mercaptionplus": "track3_train_mercaptionplus.csv",
}
SUBTITLES = "subtitle_chieng.csv"
_SPLIT_WORDS = re.compile(r"[,，、;]")


def _read_csv(file: epath.Path) -> list[tuple[int, dict]]:
  text = common.decode_utf8(file.read_bytes(), file.name, 1)
  return list(enumerate(csv.DictReader(io.StringIO(text)), start=2))


def _by_name(file: epath.Path, column: str) -> dict[str, str]:
  if not file.exists():
    return {}
  return {r["name"]: r.get(column) or "" for _, r in _read_csv(file)}


def openset_words(value: str) -> list[str]:
  """ "['Worried', 'anxious']" or "worried, anxious" -> ['worried', ...]."""
  value = value.strip().strip("[]")
  words = (
    w.strip().strip("'\"").strip().lower() for w in _SPLIT_WORDS.split(value)
  )
  return [w for w in words if w]


class EmojaxMer(common.ManualBuilder):
  """One split per label file present: `ovmerd`, `mercaptionplus`."""

  name = "emojax_mer"
  HOMEPAGE = "https://huggingface.co/datasets/MERChallenge/MER2025"
  DESCRIPTION = "OV-MERD / MER-Caption+ open-vocabulary emotion labels."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put MER2025's CSVs (track2_train_ovmerd.csv and optionally
  track3_train_ovmerd.csv, subtitle_chieng.csv) in manual_dir.
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    out = {
      split: self._generate_examples(root, split)
      for split, name in LABEL_FILES.items()
      if (root / name).exists()
    }
    if not out:
      raise self._missing(root / LABEL_FILES["ovmerd"], "label CSV")
    return out

  def _generate_examples(self, root: epath.Path, split: str):
    file = root / LABEL_FILES[split]
    rows = _read_csv(file)
    if rows and not {"name", "openset"} <= set(rows[0][1]):
      raise ValueError(
        f"{file}: expected columns 'name' and 'openset', got "
        f"{sorted(rows[0][1])}."
      )
    reasons = _by_name(root / REASON_FILES[split], "reason")
    subtitles = _by_name(root / SUBTITLES, "english")
    yield from self._parse_all(
      rows, lambda r: self._parse(file.name, *r, reasons, subtitles)
    )

  def _parse(self, source, line, row, reasons, subtitles):
    words = openset_words(row.get("openset") or "")
    if not words:
      raise errors.BadExampleError(
        "no emotion words.", source=source, line=line, field="openset"
      )
    name = row["name"]
    return common.example(
      source,
      line,
      labels=words,
      description=reasons.get(name, ""),
      text=subtitles.get(name, ""),
      caption=name,
    )
