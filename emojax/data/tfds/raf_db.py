"""RAF-DB basic emotions: `EmoLabel/list_patition_label.txt` + aligned faces.

Layout of the distributed `basic/` folder: `EmoLabel/list_patition_label.txt`
(sic) with lines `train_00001.jpg 5` (labels 1..7 = surprise, fear, disgust,
happiness, sadness, anger, neutral) and `Image/aligned/train_00001_aligned.jpg`
(100x100 aligned faces). Splits come from the file-name prefix.
"""

from etils import epath

from emojax.data import errors, facs
from emojax.data.tfds import common

LABEL_FILE = "EmoLabel/list_patition_label.txt"
CLASSES = facs.LABEL_SETS["raf_db"]


class EmojaxRafDb(common.ManualBuilder):
  """RAF-DB basic; splits train and test (those with rows)."""

  name = "emojax_raf_db"
  HOMEPAGE = "http://www.whdeng.cn/RAF/model1.html"
  DESCRIPTION = "Real-world Affective Faces, basic emotions (7 classes)."
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Request RAF-DB from its authors and put the `basic` folder's contents in
  manual_dir: {LABEL_FILE} and Image/aligned/*_aligned.jpg.
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    label_file = root / LABEL_FILE
    if not label_file.exists():
      raise self._missing(label_file, "label file")
    rows = list(enumerate(label_file.read_bytes().splitlines(), start=1))
    return {
      split: self._generate_examples(root, rows, split)
      for split in ("train", "test")
      if any(raw.startswith(split.encode()) for _, raw in rows)
    }

  def _generate_examples(self, root: epath.Path, rows, split: str):
    wanted = [(n, raw) for n, raw in rows if raw.startswith(split.encode())]
    yield from self._parse_all(wanted, lambda row: self._parse(root, *row))

  def _parse(self, root: epath.Path, line: int, raw: bytes):
    source = LABEL_FILE
    parts = common.decode_utf8(raw, source, line).split()
    if not parts:
      return None
    if len(parts) != 2 or not parts[1].isdigit():
      raise errors.BadExampleError(
        f"expected '<name>.jpg <label 1..7>', got {raw!r}.",
        source=source,
        line=line,
      )
    name, label = parts[0], int(parts[1])
    if not 1 <= label <= len(CLASSES):
      raise errors.BadExampleError(
        f"unknown label {label}.",
        source=source,
        line=line,
        field="labels",
        fix="RAF-DB basic labels are 1..7.",
      )
    stem = name.rsplit(".", 1)[0]
    image = root / "Image" / "aligned" / f"{stem}_aligned.jpg"
    return common.example(
      source,
      line,
      image=common.read_image(image, source, line),
      labels=[CLASSES[label - 1]],
    )
