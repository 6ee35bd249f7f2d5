"""EmotionCoT (EmotionThinker's speech-emotion CoT annotations), and its clips.

Layout (dingdongwang/EmotionThinker README and `EmotionCoT/pipeline/`):
JSON Lines, one record per clip, with `audio_path`, the transcript
(`transcription`, or `text` / `transcript`), the label (`emotion`, or
`gt` / `groundtruth_emotion` / `label`; EmotionThinker's nine classes),
the prosody labels (`gender`, `age_level`, `pitch_level`, `energy_level`,
`speed_level`, `intonation`, `stressed_words`, or the aliases its
`api_call.py` lists for the released files) and the reasoning
(`reasoning`, as `api_call.py` writes it, or `cot` / `reason` /
`rationale`). One split per `*.jsonl` (or `*.json` holding a list) in
manual_dir, named by file stem. The released files' exact field names are
UNVERIFIED: the aliases cover the ones the pipeline's code names.

A row's `text` is its transcript and its `caption` the prosody cues in
`emojax.data.prosody`'s form (a recipe may show them as text). With
`audio=True` (`config.data.audio`, for models that listen) the file at
`audio_path`, relative to the JSONL file, is kept as the row's `audio`
(WAV bytes: a WAV as it is, any other file FFmpeg reads, MP3, FLAC or a
MELD-style mp4's soundtrack, decoded to 16 kHz mono WAV; a missing or
undecodable file is a bad row); otherwise `audio` is b"" and the
clips need not be there. Labels become
label nouns (`happy` -> happiness, `confused` -> confusion, `contempt or
disgust` -> disgust) from `facs.LABEL_SETS['emotion_thinker']`;
`description` is `<think>reasoning</think><answer>label</answer>` when the
record has reasoning.
"""

import json

import tensorflow_datasets as tfds
from etils import epath

from emojax.data import errors, facs, prosody
from emojax.data.tfds import common

CLASSES = facs.LABEL_SETS["emotion_thinker"]
# EmotionThinker's two-word class, which facs' one-word labels cannot hold.
_MERGED = {"contempt or disgust": "disgust", "contempt": "disgust"}
LABEL_FIELDS = ("emotion", "gt", "groundtruth_emotion", "label")
TEXT_FIELDS = ("transcription", "text", "transcript")
REASON_FIELDS = ("reasoning", "cot", "reason", "rationale")


def _first(row: dict, names) -> tuple[str | None, object]:
  for n in names:
    if row.get(n) not in (None, "", []):
      return n, row[n]
  return None, None


def label(value, source: str, line: int, field: str) -> str:
  """EmotionThinker's class word -> its label noun; unknown is a bad row."""
  word = " ".join(str(value).split()).lower()
  noun = _MERGED.get(word) or facs.normalize_label(word)
  if noun not in CLASSES:
    raise errors.BadExampleError(
      f"unknown label {value!r}.",
      source=source,
      line=line,
      field=field,
      fix="use one of EmotionThinker's classes: neutral, happy, sad, angry, "
      "contempt or disgust, confused, whisper, surprise, fear.",
    )
  return noun


class EmojaxEmotionCot(common.ManualBuilder):
  """One split per `*.jsonl` / `*.json` in manual_dir (split = file stem)."""

  name = "emojax_emotion_cot"
  # 1.1.0: the `audio` feature.
  VERSION = tfds.core.Version("1.1.0")
  HAS_AUDIO = True
  HOMEPAGE = "https://huggingface.co/datasets/ddwang2000/EmotionCoT"
  DESCRIPTION = "EmotionCoT prosody labels, emotion reasoning and clips."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put EmotionCoT's annotation files (JSON Lines: audio_path, transcription,
  emotion, prosody levels, reasoning) in manual_dir, one file per split
  (e.g. train.jsonl, test.jsonl), and, for a model that listens
  (config.data.audio=True), the audio files (WAV, MP3, FLAC, or videos
  with a soundtrack) at the records' audio_path,
  relative to the JSONL file.
  """

  def __init__(self, *, audio: bool = False, **kwargs):
    self.read_audio = audio
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    files = [
      f
      for f in sorted([*root.glob("*.jsonl"), *root.glob("*.json")])
      if f.read_bytes().strip()
    ]
    if not files:
      raise self._missing(root / "*.jsonl", "non-empty JSONL files")
    return {
      common.split_name(f.stem): self._generate_examples(f) for f in files
    }

  def _generate_examples(self, file: epath.Path):
    yield from self._parse_all(
      _records(file), lambda item: self._parse(file, *item)
    )

  def _parse(self, file: epath.Path, line: int, row):
    if isinstance(row, bytes):
      row = common.json_object(row, file.name, line)
      if row is None:
        return None
    row = common.checked_object(row, file.name, line)
    clip = self._clip(file, line, row) if self.read_audio else b""
    return self._example(file.name, line, row, clip)

  def _clip(self, file: epath.Path, line: int, row: dict) -> bytes:
    if not row.get("audio_path"):
      raise errors.BadExampleError(
        "no audio_path, and config.data.audio asks for the clip.",
        source=file.name,
        line=line,
        field="audio_path",
        fix="add the clip's path (relative to the JSONL file), or set "
        "config.data.audio=False for a text-only recipe.",
      )
    path = file.parent / str(row["audio_path"])
    return common.read_audio(path, file.name, line, "audio_path")

  def _example(self, source: str, line: int, row: dict, clip: bytes = b""):
    field, value = _first(row, LABEL_FIELDS)
    if field is None:
      raise errors.BadExampleError(
        "no emotion label.",
        source=source,
        line=line,
        field="emotion",
        fix=f"add one of the fields {', '.join(LABEL_FIELDS)}.",
      )
    noun = label(value, source, line, field)
    try:
      cues = prosody.from_record(row)
    except prosody.CueError as e:
      raise errors.BadExampleError(
        str(e), source=source, line=line, field=e.field
      ) from None
    _, transcript = _first(row, TEXT_FIELDS)
    _, reasoning = _first(row, REASON_FIELDS)
    description = ""
    if reasoning:
      description = f"<think>{str(reasoning).strip()}</think>"
      description += f"<answer>{noun}</answer>"
    return common.example(
      source,
      line,
      labels=[noun],
      description=description,
      caption=prosody.caption(cues),
      text=str(transcript or "").strip(),
      audio=clip,
    )


def _records(file: epath.Path) -> list[tuple[int, object]]:
  """(line or 1-based index, raw line or record) of a JSONL or JSON list."""
  raw = file.read_bytes()
  if file.suffix == ".json" and raw.lstrip().startswith(b"["):
    try:
      rows = json.loads(common.decode_utf8(raw, file.name, 1))
    except json.JSONDecodeError as e:
      raise errors.BadExampleError(
        f"malformed JSON ({e.msg} at line {e.lineno}).",
        source=file.name,
        line=1,
      ) from None
    return list(enumerate(rows, start=1))
  return list(enumerate(raw.splitlines(), start=1))
