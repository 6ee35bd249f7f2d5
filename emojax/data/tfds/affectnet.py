"""AffectNet: `training.csv` / `validation.csv` + Manually_Annotated_Images.

CSV columns: subDirectory_filePath, face_x, face_y, face_width,
face_height, facial_landmarks, expression, valence, arousal. Expression
0..7 = neutral, happy, sad, surprise, fear, disgust, anger, contempt;
8..10 (none, uncertain, no-face) carry no emotion and are dropped and
counted in `dropped_no_emotion`, not treated as bad rows. The image is
cropped to the face box.
"""

import csv
import io

from etils import epath
from PIL import Image

from emojax.data import errors, facs
from emojax.data.tfds import common

CLASSES = facs.LABEL_SETS["affectnet_ids"]
COLUMNS = (
  "subDirectory_filePath",
  "face_x",
  "face_y",
  "face_width",
  "face_height",
  "facial_landmarks",
  "expression",
  "valence",
  "arousal",
)
SPLITS = {"train": "training.csv", "validation": "validation.csv"}
IMAGE_DIRS = ("Manually_Annotated_Images", "Manually_Annotated", "")


class EmojaxAffectnet(common.ManualBuilder):
  """AffectNet, 8 classes incl. contempt; splits train and validation."""

  name = "emojax_affectnet"
  HOMEPAGE = "http://mohammadmahoor.com/affectnet/"
  DESCRIPTION = "AffectNet manually annotated faces, 8 expression classes."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Request AffectNet from its authors; put training.csv, validation.csv and
  the Manually_Annotated_Images/ folder in manual_dir.
  """

  def __init__(self, **kwargs):
    self.dropped_no_emotion = 0
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    out = {}
    for split, name in SPLITS.items():
      if (root / name).exists():
        out[split] = self._generate_examples(root, root / name)
    if not out:
      raise self._missing(root / "training.csv", "CSV")
    return out

  def _generate_examples(self, root: epath.Path, file: epath.Path):
    text = common.decode_utf8(file.read_bytes(), file.name, 1)
    reader = csv.DictReader(io.StringIO(text))
    missing = set(COLUMNS[:7]) - set(reader.fieldnames or ())
    if missing:
      raise ValueError(
        f"{file}: missing columns {sorted(missing)}; AffectNet CSVs have "
        f"{', '.join(COLUMNS)}."
      )
    rows = ((n, row) for n, row in enumerate(reader, start=2))
    yield from self._parse_all(rows, lambda r: self._parse(root, file, *r))

  def _parse(self, root: epath.Path, file: epath.Path, line: int, row: dict):
    try:
      expression = int(row["expression"])
      box = [int(float(row[k])) for k in COLUMNS[1:5]]
    except (TypeError, ValueError):
      raise errors.BadExampleError(
        f"non-numeric expression or face box in {row}.",
        source=file.name,
        line=line,
        field="expression",
      ) from None
    if expression in (8, 9, 10):
      self.dropped_no_emotion += 1
      return None
    if not 0 <= expression < len(CLASSES):
      raise errors.BadExampleError(
        f"unknown expression {expression}.",
        source=file.name,
        line=line,
        field="expression",
        fix="AffectNet expressions are 0..10.",
      )
    path = row["subDirectory_filePath"]
    image = next(
      (root / d / path for d in IMAGE_DIRS if (root / d / path).exists()),
      root / IMAGE_DIRS[0] / path,
    )
    data = common.read_image(image, file.name, line)
    return common.example(
      file.name,
      line,
      image=_crop(data, box, file.name, line),
      labels=[CLASSES[expression]],
    )


def _crop(data: bytes, box: list[int], source: str, line: int) -> bytes:
  """The face box as PNG; the whole image if the box is empty."""
  x, y, w, h = box
  if w <= 0 or h <= 0:
    return data
  try:
    image = Image.open(io.BytesIO(data))
    image = image.crop((x, y, x + w, y + h))
  except Exception as e:  # PIL raises many types for bad files.
    raise errors.BadExampleError(
      f"cannot decode image: {e}", source=source, line=line, field="image"
    ) from None
  out = io.BytesIO()
  image.save(out, format="PNG")
  return out.getvalue()
