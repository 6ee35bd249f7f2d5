"""facs_synth: the embedded default, rendered on the fly or read from disk.

With a manual_dir holding `launch/make_data.py`'s output (`train.jsonl`,
`test.jsonl`, `sft.jsonl` + PNGs, Facial-R1's JSONL layout), it reads that.
Without one, it renders faces with `emojax.data.synth.make_example`, each split
from its own `synth.split_seed(seed, split)` as make_data does, so splits
never share a face; `sft` carries the reasoning.
"""

import dataclasses
import io

import tensorflow_datasets as tfds
from PIL import Image

from emojax.data import synth
from emojax.data.tfds import common, facial_r1


@dataclasses.dataclass
class FacsSynthConfig(tfds.core.BuilderConfig):
  num_train: int = 2000
  num_test: int = 200
  num_sft: int = 200
  seed: int = 0
  size: int = 64  # Image side, pixels.


class EmojaxFacsSynth(facial_r1.EmojaxFacialR1):
  """Synthetic FACS faces with ground-truth AUs, labels, descriptions."""

  name = "emojax_facs_synth"
  # Rendered content is code: bump when faces, labels or texts change, so
  # prepared copies in tfds_dir are not silently reused.
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
    "1.0.0": "First release.",
    "1.1.0": "Captions use one phrasing per movement.",
  }
  HOMEPAGE = ""
  DESCRIPTION = "Procedural frontal faces whose AUs and emotion are known."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional: the folder `python launch/make_data.py --dataset=facs_synth
  --out=DIR` wrote. Without it, faces are rendered while preparing.
  """
  BUILDER_CONFIGS = [
    FacsSynthConfig(name="default", description="2000/200/200 faces."),
    FacsSynthConfig(
      name="smoke", num_train=32, num_test=8, num_sft=8, description="tests"
    ),
  ]

  def _split_generators(self, dl_manager):
    if common.holds_jsonl(dl_manager):
      return super()._split_generators(dl_manager)
    cfg = self.builder_config
    return {
      "train": self._render(cfg.seed, "train", cfg.num_train),
      "test": self._render(cfg.seed, "test", cfg.num_test),
      "sft": self._render(cfg.seed, "sft", cfg.num_sft),
    }

  def _render(self, seed: int, split: str, count: int):
    split_seed = synth.split_seed(seed, split)
    source = f"synth(seed={seed}, split={split})"
    for index in range(count):
      ex = synth.make_example(
        split_seed,
        index,
        size=self.builder_config.size,
        reasoning=split == "sft",
      )
      png = io.BytesIO()
      Image.fromarray(ex["image"]).save(png, format="PNG")
      yield common.example(
        source,
        index,
        image=png.getvalue(),
        labels=ex["labels"],
        aus=ex["AUs"],
        description=ex.get("description", ""),
        caption=ex.get("caption", ""),
      )
