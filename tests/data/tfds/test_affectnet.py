"""AffectNet builder on a fixture in the real layout."""

import csv
import io

import numpy as np
from _tfds_build import prepare, read
from PIL import Image

from emojax.data.tfds import affectnet


def _write(manual, rows):
  images = manual / "Manually_Annotated_Images" / "689"
  images.mkdir(parents=True)
  pixels = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(40, 30, 3)
  Image.fromarray(pixels).save(images / "a.jpg", quality=95)
  with open(manual / "training.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(affectnet.COLUMNS)
    for path, expression in rows:
      w.writerow([path, 5, 10, 20, 25, "1;2;3", expression, 0.5, -0.2])
  return Image.open(images / "a.jpg")


def test_classes_crop_and_uncertain_rows(tmp_path):
  original = _write(
    tmp_path / "m",
    [("689/a.jpg", 7), ("689/a.jpg", 9), ("689/a.jpg", 1), ("689/b.jpg", 2)],
  )
  builder = prepare(
    affectnet.EmojaxAffectnet, tmp_path / "m", tmp_path, on_bad_example="skip"
  )
  rows = read(builder, "train")
  assert [r["labels"] for r in rows] == [["contempt"], ["happiness"]]
  assert [r["line"] for r in rows] == [2, 4]
  assert builder.dropped_no_emotion == 1  # expression 9: uncertain
  assert builder.bad_examples.count == 1  # 689/b.jpg is missing
  face = np.asarray(Image.open(io.BytesIO(rows[0]["image"])))
  expected = np.asarray(original)[10:35, 5:25]  # face_y, face_x, h=25, w=20
  np.testing.assert_array_equal(face, expected)
