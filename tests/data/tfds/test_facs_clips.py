"""facs_clips builder: rendered clips equal make_clip and feed the pipeline."""

import io

import numpy as np
import pytest
from _tfds_build import prepare, read
from PIL import Image

from emojax.data import examples as examples_lib
from emojax.data import image_processor as ip
from emojax.data import pipeline, synth
from emojax.data import tokenizer as tokenizer_lib
from emojax.data.tfds import facs_clips

TINY = facs_clips.FacsClipsConfig(
  name="tiny", num_train=2, num_test=1, num_sft=1, size=32, frames=3
)


def _frames(row) -> np.ndarray:
  return np.stack([np.asarray(Image.open(io.BytesIO(f))) for f in row["video"]])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("clips")
  return prepare(facs_clips.EmojaxFacsClips, tmp / "none", tmp, config=TINY)


def test_rendered_clips_are_make_clip(built):
  train = read(built, "train")
  assert len(train) == 2 and len(read(built, "test")) == 1
  for row in train:
    clip = synth.make_clip(
      synth.split_seed(0, "train"), row["line"], size=32, frames=3
    )
    np.testing.assert_array_equal(_frames(row), clip["frames"])
    assert row["video_fps"] == synth.CLIP_FPS and row["image"] == b""
    assert row["labels"] == clip["labels"] and row["AUs"] == clip["AUs"]
  (sft,) = read(built, "sft")
  assert "<answer>" in sft["description"]


def test_clips_become_video_batches(built, tmp_path):
  corpus = list(synth.text_corpus(seed=0, n=50))
  tokenizer_lib.build_default(tmp_path, corpus, vocab_size=400)
  tok = tokenizer_lib.Tokenizer.from_dir(tmp_path)
  frame = ip.ImageProcessorConfig(min_pixels=28 * 28, max_pixels=56 * 56)
  example = examples_lib.ExampleConfig(
    mode="rollout", prompt="r1_omni", video_frames=4, video=frame, image=frame
  )
  cfg = pipeline.PipelineConfig(batch_size=2, shuffle=False, example=example)
  source = built.as_data_source("train")
  (batch,) = list(pipeline.make_dataset(source, tok, cfg))
  # 3 frames padded to 4: t=2; 32x32 frames snap to 28x28: 2x2 patches.
  np.testing.assert_array_equal(batch["image_grid_thw"], [[2, 2, 2]] * 2)
  np.testing.assert_allclose(batch["second_per_grid_ts"], [2 / 4.0] * 2)
  assert batch["pixel_values"].shape == (16, 3 * 2 * 14 * 14)
  np.testing.assert_array_equal(
    (batch["input_ids"] == tok.video_pad_id).sum(1), [2, 2]
  )
