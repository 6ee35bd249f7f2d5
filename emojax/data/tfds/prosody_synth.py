"""prosody_synth: EmotionThinker's embedded default, made while preparing.

Records from `emojax.data.speech_synth` in EmotionCoT's layout, read by
the EmotionCoT builder's own parser, so a synthetic row and a real one
become the same example. Each split has its own seed; `sft` carries the
reasoning. With `audio` (a config field) each record's clip is spoken by
`emojax.data.voice` and kept as the row's `audio`. With a manual_dir of
JSONL files it reads those instead.
"""

import dataclasses

import tensorflow_datasets as tfds

from emojax.data import audio_io, speech_synth, voice
from emojax.data.tfds import common, emotion_cot


@dataclasses.dataclass
class ProsodySynthConfig(tfds.core.BuilderConfig):
  num_train: int = 2000
  num_test: int = 200
  num_sft: int = 200
  seed: int = 0
  audio: bool = False  # Speak each record (`emojax.data.voice`).


class EmojaxProsodySynth(emotion_cot.EmojaxEmotionCot):
  """Synthetic clips whose prosody cues and emotion are known."""

  name = "emojax_prosody_synth"
  # Generated content is code: bump when records change, so prepared
  # copies in tfds_dir are not silently reused.
  VERSION = tfds.core.Version("1.1.0")  # 1.1.0: spoken clips.
  HOMEPAGE = ""
  DESCRIPTION = "Procedural transcripts with prosody cues and emotions."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional: a folder of JSONL files in EmotionCoT's layout. Without it,
  records are generated while preparing.
  """
  BUILDER_CONFIGS = [ProsodySynthConfig(name="default", description="")]

  def _split_generators(self, dl_manager):
    if common.holds_jsonl(dl_manager):
      return super()._split_generators(dl_manager)
    cfg = self.builder_config
    return {
      split: self._generate(cfg.seed, split, count)
      for split, count in (
        ("train", cfg.num_train),
        ("test", cfg.num_test),
        ("sft", cfg.num_sft),
      )
      if count  # tfds refuses an empty split.
    }

  def _generate(self, seed: int, split: str, count: int):
    split_seed = speech_synth.split_seed(seed, split)
    source = f"synth(seed={seed}, split={split})"
    for index in range(count):
      row = speech_synth.make_record(
        split_seed, index, reasoning=split == "sft"
      )
      clip = b""
      if self.builder_config.audio:
        clip = audio_io.encode(voice.render(row, seed=index))
      yield self._example(source, index, row, clip)
