"""dair-ai/emotion text: 6 labels, CSV / JSONL / parquet as distributed.

Records have `text` and `label` (0 sadness, 1 joy, 2 love, 3 anger, 4 fear,
5 surprise). Files are found per split by name: `train*`, `validation*`
(or `val*`), `test*` with suffix .csv, .jsonl (.json) or .parquet, in
manual_dir or one folder below it (as the Hub's
`split/train-00000-of-00001.parquet`).
"""

import csv
import io

from etils import epath

from emojax.data import errors, facs
from emojax.data.tfds import common

CLASSES = facs.LABEL_SETS["dair_emotion"]
SPLITS = {
  "train": ("train",),
  "validation": ("validation", "val"),
  "test": ("test",),
}
SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def _find(root: epath.Path, prefixes) -> epath.Path | None:
  for path in sorted([*root.glob("*"), *root.glob("*/*")]):
    stem = path.name.split(".")[0].split("-")[0]
    if stem in prefixes and path.suffix in SUFFIXES:
      return path
  return None


def _records(file: epath.Path) -> list[tuple[int, dict]]:
  if file.suffix == ".parquet":
    try:
      import pyarrow.parquet as pq  # Only parquet files need it.
    except ImportError:
      raise ImportError(
        f"{file}: reading parquet needs pyarrow (`pip install pyarrow`), or "
        "convert the file to CSV/JSONL."
      ) from None
    rows = pq.read_table(str(file)).to_pylist()
    return list(enumerate(rows, start=1))
  raw = file.read_bytes()
  if file.suffix == ".csv":
    text = common.decode_utf8(raw, file.name, 1)
    return list(enumerate(csv.DictReader(io.StringIO(text)), start=2))
  return list(enumerate(raw.splitlines(), start=1))


class EmojaxDairEmotion(common.ManualBuilder):
  """dair-ai/emotion; splits train, validation, test (those present)."""

  name = "emojax_dair_emotion"
  HOMEPAGE = "https://huggingface.co/datasets/dair-ai/emotion"
  DESCRIPTION = "English tweets labelled with 6 emotions."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put dair-ai/emotion's split files (train/validation/test as .csv, .jsonl
  or .parquet, with `text` and `label`) in manual_dir.
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    files = {s: _find(root, p) for s, p in SPLITS.items()}
    out = {s: self._generate_examples(f) for s, f in files.items() if f}
    if not out:
      raise self._missing(root / "train.csv", "split files")
    return out

  def _generate_examples(self, file: epath.Path):
    yield from self._parse_all(
      _records(file), lambda r: self._parse(file.name, *r)
    )

  def _parse(self, source: str, line: int, row):
    if isinstance(row, bytes):
      row = common.json_object(row, source, line)
      if row is None:
        return None
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) or not text:
      raise errors.BadExampleError(
        "missing text.", source=source, line=line, field="text"
      )
    try:
      label = int(label)
      assert 0 <= label < len(CLASSES)
    except (TypeError, ValueError, AssertionError):
      raise errors.BadExampleError(
        f"unknown label {label!r}.",
        source=source,
        line=line,
        field="label",
        fix="labels are 0..5 = " + ", ".join(CLASSES) + ".",
      ) from None
    return common.example(source, line, labels=[CLASSES[label]], text=text)
