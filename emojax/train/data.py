"""The data a run reads: tfds sources per split, and grain iterators.

Splits: `train` (label-only rows: GRPO prompts, synthesis, base-model
captions), `sft` (reasoning-annotated rows), `test`. Synthesized rows are
kept as JSONL beside the checkpoints and reference train rows by index, so
the images are never copied.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import tensorflow_datasets as tfds

from emojax import multihost
from emojax.data import image_processor as ip
from emojax.data import pipeline
from emojax.data import video as video_lib
from emojax.data.examples import ExampleConfig
from emojax.data.tfds import (
  dair_emotion,
  emotion_cot,
  facial_r1,
  facs_clips,
  facs_synth,
  mer,
  prosody_synth,
)

BUILDERS = {
  "facs_synth": facs_synth.EmojaxFacsSynth,
  "facial_r1": facial_r1.EmojaxFacialR1,
  "facs_clips": facs_clips.EmojaxFacsClips,
  "facial_r1_video": facial_r1.EmojaxFacialR1Video,
  "dair_emotion": dair_emotion.EmojaxDairEmotion,
  "mer": mer.EmojaxMer,
  "emotion_cot": emotion_cot.EmojaxEmotionCot,
  "prosody_synth": prosody_synth.EmojaxProsodySynth,
}
# Generated while preparing: no manual_dir needed.
SYNTHETIC = ("facs_synth", "facs_clips", "prosody_synth")
# Data sets whose rows may be clips of frames (R1-Omni's video input).
VIDEO_DATASETS = ("facs_clips", "facial_r1_video")
# Data sets whose rows may carry sound (speech clips, videos' soundtracks).
SOUND_DATASETS = ("emotion_cot", "prosody_synth", "facial_r1_video")
ROLES = ("train", "sft", "test")  # The splits the stages read.


def builder(cfg) -> Splits:
  """The prepared tfds builder of `cfg.data` (prepared once, then cached),
  its splits named as the stages read them (`cfg.splits`)."""
  if cfg.dataset not in BUILDERS:
    raise ValueError(
      f"config.data.dataset={cfg.dataset!r}; choose one of {sorted(BUILDERS)}."
    )
  kwargs = {}
  listens = bool(cfg.get("audio", False))
  if cfg.dataset in SOUND_DATASETS:
    kwargs["audio"] = listens
  elif listens:
    raise ValueError(
      f"config.data.audio=True but {cfg.dataset!r} has no sound; the data "
      f"sets with sound are {', '.join(SOUND_DATASETS)}."
    )
  if cfg.dataset == "prosody_synth":
    kwargs["config"] = prosody_synth.ProsodySynthConfig(
      name=f"n{cfg.num_train}-{cfg.num_sft}-{cfg.num_test}-s{cfg.seed}"
      + ("-audio" if listens else ""),
      num_train=cfg.num_train,
      num_test=cfg.num_test,
      num_sft=cfg.num_sft,
      seed=cfg.seed,
      audio=listens,
    )
  if cfg.dataset == "facs_synth":
    kwargs["config"] = facs_synth.FacsSynthConfig(
      name=f"n{cfg.num_train}-{cfg.num_sft}-{cfg.num_test}-s{cfg.seed}-"
      f"px{cfg.image_size}",
      num_train=cfg.num_train,
      num_test=cfg.num_test,
      num_sft=cfg.num_sft,
      seed=cfg.seed,
      size=cfg.image_size,
    )
  if cfg.dataset == "facs_clips":
    kwargs["config"] = facs_clips.FacsClipsConfig(
      name=f"n{cfg.num_train}-{cfg.num_sft}-{cfg.num_test}-s{cfg.seed}-"
      f"px{cfg.image_size}-f{cfg.clip_frames}-r{cfg.clip_fps:g}",
      num_train=cfg.num_train,
      num_test=cfg.num_test,
      num_sft=cfg.num_sft,
      seed=cfg.seed,
      size=cfg.image_size,
      frames=cfg.clip_frames,
      fps=cfg.clip_fps,
    )
  manual = os.path.expanduser(cfg.get("manual_dir") or "") or None
  if manual and not os.path.isdir(manual):
    raise FileNotFoundError(
      f"config.data.manual_dir={manual!r} does not exist; point it at the "
      "folder holding the dataset's files (see the builder's "
      "MANUAL_DOWNLOAD_INSTRUCTIONS)."
    )

  def prepare():
    # A builder reads the prepared copy's info when made: make it after
    # process 0 prepared a copy the processes share.
    b = BUILDERS[cfg.dataset](
      data_dir=prepared_dir(cfg, manual),
      file_format="array_record",
      on_bad_example=cfg.on_bad_example,
      **kwargs,
    )
    b.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual)
    )
    return b

  b = multihost.leader_first("emojax_tfds_prepared", prepare)
  return Splits(b, dict(cfg.get("splits") or {}))


def prepared_dir(cfg, manual: str | None) -> str:
  """Where tfds keeps this source's prepared copy.

  tfds keys a copy by dataset, config and version only; a second
  manual_dir (or the same one with rows edited, or another
  on_bad_example) would reuse the first one's rows. So each gets its own
  folder, named by the folder's path, the bad-row policy, and the names,
  sizes and times of its annotation files (in it or one folder below, as
  the builders read them). Images edited in place are not seen: delete
  the folder this returns to prepare again.
  """
  root = os.path.expanduser(cfg.tfds_dir)
  if not manual:
    return root
  manual = os.path.realpath(manual)
  key = [manual, cfg.on_bad_example, _annotations(manual)]
  if cfg.get("audio", False):  # A copy with clips is another copy.
    key.append("audio")
  key = json.dumps(key)
  digest = hashlib.sha256(key.encode()).hexdigest()[:12]
  return os.path.join(root, f"{os.path.basename(manual)}-{digest}")


ANNOTATIONS = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")


def _annotations(folder: str, depth: int = 1) -> list:
  try:
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
  except OSError:  # An unreadable subfolder: no builder reads it either.
    return []
  out = []
  for e in entries:
    if e.is_dir() and depth:
      out += [[e.name, *f] for f in _annotations(e.path, depth - 1)]
    elif e.is_file() and e.name.endswith(ANNOTATIONS):
      out.append([e.name, e.stat().st_size, e.stat().st_mtime_ns])
  return out


class Splits:
  """A builder whose `as_data_source(role)` reads `names[role]`.

  Stages read the roles `train`, `sft` and `test`; a dataset with other
  split names (MER's `ovmerd`, dair-ai/emotion's `validation`) or slices of
  one split (`'ovmerd[:90%]'`, tfds split syntax) is mapped onto them.
  Other attributes are the builder's.
  """

  def __init__(self, b, names: dict[str, str]):
    unknown = sorted(set(names) - set(ROLES))
    if unknown:
      raise ValueError(
        f"config.data.splits has unknown roles {unknown}; use {ROLES}."
      )
    self._b, self._names = b, names

  def as_data_source(self, role: str):
    return self._b.as_data_source(self._names.get(role) or role)

  def __getattr__(self, name: str):
    if name.startswith("_"):  # Not set yet (copy, pickle): no recursion.
      raise AttributeError(name)
    return getattr(self._b, name)


def image_config(model_cfg, cfg) -> ip.ImageProcessorConfig:
  """Preprocessing that matches the model's patching (text models: the
  default, unused since their rows carry no image)."""
  v = model_cfg.vision
  if v is None:
    return ip.ImageProcessorConfig()
  return ip.ImageProcessorConfig(
    patch_size=v.patch_size,
    merge_size=v.spatial_merge_size,
    temporal_patch_size=v.temporal_patch_size,
    min_pixels=cfg.min_pixels,
    max_pixels=cfg.max_pixels,
  )


def task_prompt(cfg, prompt: str) -> str:
  """The `ExampleConfig.prompt` kind rows get: 'task' is the recipe's
  `cfg.prompt` (Facial-R1's when unset); other kinds are kept as asked."""
  if prompt != "task":
    return prompt
  return cfg.get("prompt") or "facial_r1"


def example_config(
  model_cfg, cfg, mode, prompt, target, max_len=None
) -> ExampleConfig:
  return ExampleConfig(
    mode=mode,
    max_len=max_len or cfg.max_len,
    emotions=tuple(cfg.emotions),
    au_definitions=cfg.au_definitions,
    target=target,
    prompt=task_prompt(cfg, prompt),
    system=cfg.system or None,
    image=image_config(model_cfg, cfg),
    **audio_config(model_cfg, cfg),
    **video_config(model_cfg, cfg),
  )


def video_config(model_cfg, cfg) -> dict:
  """ExampleConfig's watching fields: with `cfg.video_frames` > 0 each
  clip is that many sampled frames in the frame budget (`video_min_pixels`
  .. `video_max_pixels`); 0 = the model does not watch."""
  frames = int(cfg.get("video_frames", 0))
  if not frames:
    return {}
  if cfg.dataset not in VIDEO_DATASETS:
    raise ValueError(
      f"config.data.video_frames={frames} but {cfg.dataset!r} has no "
      f"clips; the video data sets are {', '.join(VIDEO_DATASETS)}."
    )
  if model_cfg.vision is None:
    raise ValueError(
      "config.data.video_frames > 0 but the model has no vision tower; use "
      "a Qwen2.5-VL model or set config.data.video_frames=0."
    )
  budget = {
    "min_pixels": cfg.get("video_min_pixels", video_lib.VIDEO_MIN_PIXELS),
    "max_pixels": cfg.get("video_max_pixels", video_lib.VIDEO_MAX_PIXELS),
  }
  image = image_config(model_cfg, cfg)
  return {
    "video_frames": frames,
    "video": dataclasses.replace(image, **budget),
  }


def audio_config(model_cfg, cfg) -> dict:
  """ExampleConfig's listening fields: with `cfg.audio` the model hears
  each row's clip (it needs an audio tower); without, no clips."""
  if not cfg.get("audio", False):
    return {}
  if model_cfg.audio is None:
    raise ValueError(
      "config.data.audio=True but the model has no audio tower; use a "
      "model that listens (preset tiny_audio, or a Qwen2.5-Omni "
      "checkpoint in model.hf_dir) or set config.data.audio=False."
    )
  seconds = float(cfg.get("audio_seconds", 10.0))
  if not 0.03 <= seconds <= 30.0:
    raise ValueError(
      f"config.data.audio_seconds={seconds}; the clip budget must be in "
      "[0.03, 30] seconds (Whisper's window is 30 s)."
    )
  out = {
    "audio_frames": int(round(100 * seconds)),
    "num_mel_bins": model_cfg.audio.num_mel_bins,
  }
  if model_cfg.vision is not None:  # A video with its sound (tmrope).
    out["tokens_per_second"] = model_cfg.vision.tokens_per_second
    out["seconds_per_chunk"] = model_cfg.audio.seconds_per_chunk
  return out


def iterator(
  source,
  tokenizer,
  model_cfg,
  cfg,
  *,
  mode: str,
  batch_size: int,
  seed: int,
  prompt: str = "task",
  target: str = "description",
  epochs: int | None = None,
  shuffle: bool = True,
  max_len: int | None = None,
):
  """A checkpointable batch iterator over `source`.

  `prompt` is 'caption' (the base model's captions), 'task' (the recipe's
  `cfg.prompt`) or any `ExampleConfig.prompt` kind.
  `max_len` overrides `cfg.max_len` (synthesis prompts are longer).
  """
  pc = pipeline.PipelineConfig(
    batch_size=batch_size,
    seed=seed,
    shuffle=shuffle,
    num_epochs=epochs,
    drop_remainder=epochs is None,
    on_bad_example=cfg.on_bad_example,
    example=example_config(model_cfg, cfg, mode, prompt, target, max_len),
  )
  return iter(pipeline.make_dataset(source, tokenizer, pc))


@dataclasses.dataclass(frozen=True)
class SynthRow:
  """One verified synthesized example: a train row index and new text."""

  index: int
  description: str
  attempts: int


def write_synth(path: str, rows: list[SynthRow]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for r in rows:
      f.write(json.dumps(dataclasses.asdict(r)) + "\n")
  os.replace(tmp, path)


def read_synth(path: str) -> list[SynthRow]:
  with open(path) as f:
    return [SynthRow(**json.loads(line)) for line in f if line.strip()]


class SynthSource:
  """Rows of `base` (the train split) with synthesized descriptions."""

  def __init__(self, base, rows: list[SynthRow], origin: str):
    self._base, self._rows, self._origin = base, rows, origin

  def __len__(self) -> int:
    return len(self._rows)

  def __getitem__(self, i: int) -> dict:
    r = self._rows[i]
    row = dict(self._base[r.index])
    row["description"] = r.description
    row["source"] = self._origin
    row["line"] = i + 1
    return row


class Concat:
  """Several sources read as one."""

  def __init__(self, *sources):
    self._sources = [s for s in sources if len(s)]

  def __len__(self) -> int:
    return sum(len(s) for s in self._sources)

  def __getitem__(self, i: int) -> dict:
    for s in self._sources:
      if i < len(s):
        return s[i]
      i -= len(s)
    raise IndexError(i)
