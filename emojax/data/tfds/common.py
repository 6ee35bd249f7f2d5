"""What every emojax tfds builder shares: features, manual_dir, bad rows.

Every builder yields the same features, so one pipeline reads them all:
`image` (the encoded PNG/JPEG bytes as the user brought them, b"" for text
data; decoding happens in the pipeline, where a corrupt file is a bad row
under the policy), `labels` and `AUs` (lists of str), `description` (the
reasoning, `<think>...</think><answer>...</answer>` where present),
`caption`, `text`, and provenance: `source` (file) and `line` (1-based line
or row number in it). Speech builders add `audio`, the clip's WAV bytes
(b"" when not read). Video builders add `video`, the clip's encoded frames
in order (empty for an image or text row), and `video_fps`, their rate.
"""

import inspect
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from emojax.data import audio_io, errors, facs

VERSION = tfds.core.Version("1.0.0")


def features(
  audio: bool = False, video: bool = False
) -> tfds.features.FeaturesDict:
  """The shared features; `audio` adds the clip's WAV bytes, `video` its
  frames and frame rate (speech and video builders only, so image data
  sets keep their prepared copies)."""
  text = tfds.features.Text()
  blob = tfds.features.Tensor(shape=(), dtype=np.object_)
  extra = {"audio": blob} if audio else {}
  if video:
    extra["video"] = tfds.features.Sequence(blob)
    extra["video_fps"] = tfds.features.Scalar(dtype=np.float32)
  return tfds.features.FeaturesDict(
    {
      **extra,
      "image": tfds.features.Tensor(shape=(), dtype=np.object_),
      "labels": tfds.features.Sequence(text),
      "AUs": tfds.features.Sequence(text),
      "description": text,
      "caption": text,
      "text": text,
      "source": text,
      "line": tfds.features.Scalar(dtype=np.int64),
    }
  )


def example(
  source: str,
  line: int,
  *,
  image: bytes = b"",
  labels=(),
  aus=(),
  description: str = "",
  caption: str = "",
  text: str = "",
  audio: bytes | None = None,
  video: list[bytes] | None = None,
  video_fps: float = 0.0,
) -> tuple[str, dict]:
  """(key, features) with every field filled (`audio`: speech builders;
  `video`, `video_fps`: video builders, [] and 0.0 for a row without one)."""
  extra = {} if audio is None else {"audio": audio}
  if video is not None:
    extra.update(video=list(video), video_fps=float(video_fps))
  return f"{source}:{line}", {
    **extra,
    "image": image,
    "labels": list(labels),
    "AUs": list(aus),
    "description": description,
    "caption": caption,
    "text": text,
    "source": source,
    "line": line,
  }


def holds_jsonl(dl_manager) -> bool:
  """Whether manual_dir holds JSONL files (make_data's output, read as
  the data set); without it a synthetic builder renders its rows."""
  try:
    root = dl_manager.manual_dir
  except AssertionError:  # No manual_dir (or empty).
    return False
  return bool(list(root.glob("*.jsonl")))


class ManualBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder over files the user brings in `manual_dir`.

  `on_bad_example` ('fail' | 'skip') is the bad-row policy; after
  `download_and_prepare`, `bad_examples` holds the count and first reasons.
  """

  VERSION = VERSION
  HOMEPAGE = ""
  DESCRIPTION = ""
  HAS_AUDIO = False  # Rows carry an `audio` feature (WAV bytes, b"": none).
  HAS_VIDEO = False  # Rows carry `video` (frames, []: none) and `video_fps`.

  def __init__(self, *, on_bad_example: str = "fail", **kwargs):
    self.bad_examples = errors.BadExampleLog(
      errors.check_policy(on_bad_example)
    )
    super().__init__(**kwargs)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # tfds' own version probes `importlib_resources` (a separate PyPI
    # package not in our install) before falling back to this.
    return epath.Path(inspect.getfile(cls))

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=self.DESCRIPTION,
      features=features(audio=self.HAS_AUDIO, video=self.HAS_VIDEO),
      homepage=self.HOMEPAGE,
    )

  def _manual_root(self, dl_manager) -> epath.Path:
    root = epath.Path(dl_manager.manual_dir)
    if not root.exists():
      raise FileNotFoundError(
        f"{self.name}: manual_dir {root} does not exist.\n"
        f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
      )
    return root

  def _missing(self, path: os.PathLike, what: str) -> FileNotFoundError:
    return FileNotFoundError(
      f"{self.name}: {what} {path} not found.\n"
      f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )

  def _parse_all(self, items: Iterable, parse: Callable) -> Iterator:
    """`parse(item)` per item: (key, example), None to drop, or BadExampleError.

    BadExampleError rows go to the policy (raise under 'fail', count under
    'skip'); parse errors of other types propagate unchanged.
    """
    for item in items:
      try:
        row = parse(item)
      except errors.BadExampleError as e:
        self.bad_examples.handle(e)
        continue
      if row is not None:
        yield row


def split_name(stem: str) -> str:
  """A tfds split name from a file stem ('FEA-20K train' -> 'fea_20k_train')."""
  return re.sub(r"\W+", "_", stem).strip("_").lower() or "train"


def read_image(path: epath.Path, source: str, line: int) -> bytes:
  """The image file's bytes (not decoded); missing or empty is a bad row."""
  return read_file(path, source, line, what="image", field="image")


def read_audio(path: epath.Path, source: str, line: int, field: str) -> bytes:
  """A row's clip as WAV bytes: a WAV file as it is; any other (MP3,
  FLAC, a video's soundtrack) decoded once here to 16 kHz mono 16-bit, so
  the prepared copy holds sound, not video, and the pipeline never runs
  FFmpeg."""
  data = read_file(path, source, line, what="audio", field=field)
  if audio_io.is_wav(data):
    return data
  try:
    return audio_io.encode(audio_io.read(data, name=str(path)))
  except audio_io.AudioFileError as e:
    raise errors.BadExampleError(
      str(e), source=source, line=line, field=field
    ) from None


def read_file(
  path: epath.Path, source: str, line: int, *, what: str, field: str
) -> bytes:
  """A row's media file's bytes (`what`: 'image', 'audio'; `field` names
  the row's field); missing or empty is a bad row."""
  if not path.exists():
    raise errors.BadExampleError(
      f"{what} {path} does not exist.",
      source=source,
      line=line,
      field=field,
      fix="add the file or remove the row.",
    )
  data = path.read_bytes()
  if not data:
    raise errors.BadExampleError(
      f"{what} {path} is empty.", source=source, line=line, field=field
    )
  return data


def labels(
  words, source: str, line: int, known: tuple[str, ...] | None = None
) -> list[str]:
  """Normalised label nouns; an unknown word is a BadExampleError."""
  out = []
  for word in words:
    label = facs.normalize_label(str(word))
    if label is None or (known is not None and label not in known):
      allowed = ", ".join(known) if known else "an emotion word"
      raise errors.BadExampleError(
        f"unknown label {word!r}.",
        source=source,
        line=line,
        field="labels",
        fix=f"use one of: {allowed}.",
      )
    out.append(label)
  return out


def aus(names, source: str, line: int) -> list[str]:
  """Canonical AU names ('AU06' -> 'AU6'); an unparseable one is bad."""
  out = []
  for name in names:
    try:
      out.append(facs.canonical_au(str(name)))
    except ValueError as e:
      raise errors.BadExampleError(
        str(e), source=source, line=line, field="AUs"
      ) from None
  return out


def json_object(raw: bytes, source: str, line: int) -> dict | None:
  """One JSON Lines line as an object; None for a blank line; malformed
  JSON or a non-object is a BadExampleError."""
  text = decode_utf8(raw, source, line).strip()
  if not text:
    return None
  try:
    row = json.loads(text)
  except json.JSONDecodeError as e:
    raise errors.BadExampleError(
      f"malformed JSON ({e.msg} at column {e.colno}).",
      source=source,
      line=line,
      fix="one JSON object per line.",
    ) from None
  return checked_object(row, source, line)


def checked_object(row, source: str, line: int) -> dict:
  if not isinstance(row, dict):
    raise errors.BadExampleError(
      f"record is a JSON {type(row).__name__}, not an object.",
      source=source,
      line=line,
    )
  return row


def decode_utf8(raw: bytes, source: str, line: int, field: str = "") -> str:
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise errors.BadExampleError(
      f"text is not UTF-8 ({e.reason} at byte {e.start}).",
      source=source,
      line=line,
      field=field or None,
      fix="re-save the file as UTF-8.",
    ) from None
