"""RAF-DB basic builder on a fixture in the real layout."""

import pytest
from _tfds_build import jpeg, prepare, read

from emojax.data import errors
from emojax.data.tfds import raf_db


def _write(manual, lines, images):
  (manual / "EmoLabel").mkdir(parents=True)
  (manual / "Image" / "aligned").mkdir(parents=True)
  text = "".join(line + "\n" for line in lines)
  (manual / "EmoLabel" / "list_patition_label.txt").write_text(text)
  for i, name in enumerate(images):
    path = manual / "Image" / "aligned" / f"{name}_aligned.jpg"
    path.write_bytes(jpeg(value=i * 40))


def test_labels_and_splits(tmp_path):
  lines = ["train_00001.jpg 5", "train_00002.jpg 1", "test_0001.jpg 7"]
  _write(tmp_path / "m", lines, ["train_00001", "train_00002", "test_0001"])
  builder = prepare(raf_db.EmojaxRafDb, tmp_path / "m", tmp_path)
  train, test = read(builder, "train"), read(builder, "test")
  # 1..7 = surprise, fear, disgust, happiness, sadness, anger, neutral.
  assert [r["labels"] for r in train] == [["sadness"], ["surprise"]]
  assert [r["labels"] for r in test] == [["neutral"]]
  assert train[1]["image"] == jpeg(value=40)
  assert (test[0]["source"], test[0]["line"]) == (
    "EmoLabel/list_patition_label.txt",
    3,
  )


def test_bad_rows(tmp_path):
  lines = ["train_00001.jpg 5", "train_00002.jpg 9", "train_00003.jpg 2"]
  _write(tmp_path / "m", lines, ["train_00001", "train_00002"])
  builder = prepare(
    raf_db.EmojaxRafDb, tmp_path / "m", tmp_path, on_bad_example="skip"
  )
  assert len(read(builder, "train")) == 1
  assert builder.bad_examples.count == 2
  assert "unknown label 9" in builder.bad_examples.reasons[0]
  assert (
    "train_00003_aligned.jpg does not exist"
    in (builder.bad_examples.reasons[1])
  )
  with pytest.raises(errors.BadExampleError, match=r"label\.txt:2"):
    prepare(raf_db.EmojaxRafDb, tmp_path / "m", tmp_path / "again")
