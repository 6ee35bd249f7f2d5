"""facs_synth builder: rendered on the fly, or read from make_data output."""

import io
import json

import numpy as np
from _tfds_build import prepare, read
from PIL import Image

from emojax.data import synth
from emojax.data.tfds import facs_synth


def test_rendered_matches_make_example(tmp_path):
  builder = prepare(
    facs_synth.EmojaxFacsSynth,
    tmp_path / "no_manual_dir",
    tmp_path,
    config="smoke",
  )
  train = read(builder, "train")
  assert len(train) == 32 and len(read(builder, "test")) == 8
  ex = synth.make_example(synth.split_seed(0, "train"), 5, size=64)
  row = next(r for r in train if r["line"] == 5)
  image = np.asarray(Image.open(io.BytesIO(row["image"])))
  np.testing.assert_array_equal(image, ex["image"])
  assert row["labels"] == ex["labels"] and row["AUs"] == ex["AUs"]
  sft = read(builder, "sft")
  assert all("<answer>" in r["description"] for r in sft)


def test_reads_make_data_output(tmp_path):
  out = tmp_path / "out"
  (out / "images").mkdir(parents=True)
  ex = synth.make_example(7, 0, size=64, reasoning=True)
  Image.fromarray(ex["image"]).save(out / "images" / "0.png")
  row = {k: ex[k] for k in ("labels", "AUs", "caption", "description")}
  row["image"] = "images/0.png"
  (out / "train.jsonl").write_text(json.dumps(row) + "\n")
  builder = prepare(facs_synth.EmojaxFacsSynth, out, tmp_path)
  (got,) = read(builder, "train")
  assert got["labels"] == ex["labels"] and got["AUs"] == ex["AUs"]
  assert got["description"] == ex["description"]
  image = np.asarray(Image.open(io.BytesIO(got["image"])))
  np.testing.assert_array_equal(image, ex["image"])
