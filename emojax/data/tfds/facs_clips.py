"""facs_clips: synthetic face clips (R1-Omni's video input), rendered or read.

facs_synth's faces as short clips (`emojax.data.synth.make_clip`): the
expression rises from neutral to its apex about 2/3 into the clip and
holds, as DFEW/MAFW clips do. With a manual_dir holding `launch/
make_data.py --dataset=facs_clips` output (JSONL rows whose `video` is a
frame folder, plus `fps`), it reads that through the video JSONL reader.
Without one, it renders each split from its own `synth.split_seed(seed,
split)`, as make_data does; `sft` carries the reasoning.
"""

import dataclasses
import io

import tensorflow_datasets as tfds
from PIL import Image

from emojax.data import synth
from emojax.data.tfds import common, facial_r1


@dataclasses.dataclass
class FacsClipsConfig(tfds.core.BuilderConfig):
  num_train: int = 2000
  num_test: int = 200
  num_sft: int = 200
  seed: int = 0
  size: int = 64  # Frame side, pixels.
  frames: int = synth.CLIP_FRAMES  # Frames per clip.
  fps: float = synth.CLIP_FPS  # Their rate.


class EmojaxFacsClips(facial_r1.EmojaxFacialR1Video):
  """Synthetic FACS face clips with ground-truth AUs, labels, descriptions."""

  name = "emojax_facs_clips"
  # Rendered content is code: bump when faces, clips or texts change, so
  # prepared copies in tfds_dir are not silently reused.
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  HAS_AUDIO = False  # Silent: its faces make no sound.
  HOMEPAGE = ""
  DESCRIPTION = "Procedural face clips, neutral to apex, AUs and emotion known."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional: the folder `python launch/make_data.py --dataset=facs_clips
  --out=DIR` wrote. Without it, clips are rendered while preparing.
  """
  BUILDER_CONFIGS = [
    FacsClipsConfig(name="default", description="2000/200/200 clips."),
    FacsClipsConfig(
      name="smoke", num_train=32, num_test=8, num_sft=8, description="tests"
    ),
  ]

  def _split_generators(self, dl_manager):
    if common.holds_jsonl(dl_manager):
      return super()._split_generators(dl_manager)
    cfg = self.builder_config
    counts = {"train": cfg.num_train, "test": cfg.num_test, "sft": cfg.num_sft}
    return {  # tfds refuses an empty split.
      split: self._render(cfg.seed, split, n)
      for split, n in counts.items()
      if n
    }

  def _render(self, seed: int, split: str, count: int):
    cfg = self.builder_config
    split_seed = synth.split_seed(seed, split)
    source = f"synth(seed={seed}, split={split})"
    for index in range(count):
      clip = synth.make_clip(
        split_seed,
        index,
        size=cfg.size,
        frames=cfg.frames,
        reasoning=split == "sft",
      )
      yield common.example(
        source,
        index,
        video=[_png(frame) for frame in clip["frames"]],
        video_fps=cfg.fps,
        labels=clip["labels"],
        aus=clip["AUs"],
        description=clip.get("description", ""),
        caption=clip["caption"],
      )


def _png(frame_HWC) -> bytes:
  out = io.BytesIO()
  Image.fromarray(frame_HWC).save(out, format="PNG")
  return out.getvalue()
