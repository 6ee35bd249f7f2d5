"""Facial-R1 / FEA-20K JSONL (also make_data's output and VLM-R1 rows).

Layout, as RobitsG/Facial-R1 reads it (src/open-r1-multimodal/src/open_r1/
grpo_jsonl.py @0c3fc1c): one JSON object per line with `image` (a path, or
a list of one path, relative to an image folder), `labels` (list of emotion
words; `labels[0]` is the answer), `AUs` (list like ["AU6", "AU12"]),
`description` (the `<think>..</think><answer>..</answer>` reasoning), and
optional `question`, `meta_info`, `is_valid` (rows with is_valid=false are
dropped, as Facial-R1 does). VLM-R1-style rows may instead carry `problem`,
`solution` ("<answer>x</answer>") or `conversations`
([{"from": "human"|"gpt", "value": ...}]); those fill the gaps.

`EmojaxFacialR1Video` reads the same files where rows may instead be
clips (DFEW, MAFW, MER, R1-Omni's JSON, make_data's facs_clips): `video`
names a video file (`VIDEO_SUFFIXES`: DFEW's `Clip/original/00001.avi`,
MAFW's `clips/00001.mp4`; decoded by `video_io`, the frame rate the
container's unless the row gives `fps`), a folder of frames (its
*.jpg/*.jpeg/*.png, sorted by name, as DFEW's
`clip_224x224/00001/00001_00001.jpg` are) or lists the frame paths. A
frame folder's optional `fps` is its rate (default `DEFAULT_FPS`, the
source rate DFEW and MAFW extract at; a folder already thinned to a fixed
count, such as DFEW's `clip_224x224_16f`, is not at that rate: give its
`fps`, frames over clip seconds, or the clip's time positions shrink). At
most `MAX_STORED_FRAMES` evenly spaced frames are kept (a video file's
as JPEG). It is its own builder
so `EmojaxFacialR1`'s features, and its prepared copies, stay as they are.
"""

import io
import re

import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from emojax.data import audio_io, errors, video_io
from emojax.data import video as video_lib
from emojax.data.tfds import common

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# DFEW's and MAFW's frames are extracted at the source rate, which is
# 25-30 fps for most clips: the rate of a row that names none.
DEFAULT_FPS = 25.0
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
# Frames kept per clip, evenly spaced (the rate scaled to match): a DFEW
# clip holds 50-150 frames and training samples 8-16, so keeping all of
# them would make the prepared copy ~10x larger for nothing.
MAX_STORED_FRAMES = 64


class EmojaxFacialR1(common.ManualBuilder):
  """One split per `*.jsonl` in manual_dir (split = file stem)."""

  name = "emojax_facial_r1"
  HOMEPAGE = "https://github.com/RobitsG/Facial-R1"
  DESCRIPTION = "Facial-R1 / FEA-20K emotion + AU + reasoning JSONL."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the JSONL files (e.g. train.jsonl, test.jsonl) in manual_dir, with the
  images at the paths their `image` field names, relative to manual_dir or
  to an `images/` folder beside the files.
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    # tfds refuses a split with no examples, so empty files (make_data's
    # sft.jsonl with --num_sft=0) are not splits.
    files = [f for f in sorted(root.glob("*.jsonl")) if f.read_bytes().strip()]
    if not files:
      raise self._missing(root / "*.jsonl", "non-empty JSONL files")
    return {
      common.split_name(f.stem): self._generate_examples(root, f) for f in files
    }

  def _generate_examples(self, root: epath.Path, file: epath.Path):
    with file.open("rb") as f:
      numbered = list(enumerate(f, start=1))
    yield from self._parse_all(
      numbered, lambda item: self._parse(root, file, *item)
    )

  def _parse(self, root: epath.Path, file: epath.Path, line: int, raw: bytes):
    source = file.name
    row = common.json_object(raw, source, line)
    if row is None:
      return None
    if row.get("is_valid", True) is False:
      return None
    description, question = _conversation(row)
    words = row.get("labels")
    if words is None:
      match = _ANSWER_RE.search(row.get("solution") or "")
      words = [match.group(1).strip()] if match else []
    if isinstance(words, str):
      words = [words]
    return common.example(
      source,
      line,
      **self._media(root, file, row, line),
      labels=common.labels(words, source, line),
      aus=common.aus(row.get("AUs") or [], source, line),
      description=row.get("description") or description,
      caption=row.get("caption") or "",
      text=question,
    )

  def _media(self, root, file, row, line) -> dict:
    """The row's visual as `common.example` keyword arguments."""
    if row.get("video"):
      raise errors.BadExampleError(
        "a video row; emojax_facial_r1 reads image and text rows.",
        source=file.name,
        line=line,
        field="video",
        fix="read it with the emojax_facial_r1_video builder "
        "(config.data.dataset='facial_r1_video'; launch/eval.py: "
        "--config=configs/r1_omni.py:video,qwen2_5_vl_7b).",
      )
    return {"image": self._image(root, file, row, line)}

  def _image(self, root, file, row, line) -> bytes:
    name = row.get("image")
    if isinstance(name, list):
      if len(name) != 1:
        raise errors.BadExampleError(
          f"{len(name)} images in one row; emojax takes one per row.",
          source=file.name,
          line=line,
          field="image",
        )
      name = name[0]
    if not name:
      return b""
    return common.read_image(_find(root, file, name), file.name, line)


class EmojaxFacialR1Video(EmojaxFacialR1):
  """Facial-R1 JSONL whose rows may be images or clips (frame folders)."""

  name = "emojax_facial_r1_video"
  # 1.1.0: the `audio` feature (a clip's sound, with audio=True).
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
    "1.1.0": "`audio`: a video file's soundtrack as 16 kHz WAV.",
    "1.0.0": "First release.",
  }
  HAS_VIDEO = True
  HAS_AUDIO = True
  DEFAULT_FPS = DEFAULT_FPS  # Frame rate of a row without `fps`.
  DESCRIPTION = "Facial-R1-style JSONL of face images and clips."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the JSONL files in manual_dir. Image rows are as emojax_facial_r1
  reads them; a clip row's `video` is a video file (.mp4, .avi, .mkv,
  .webm, .mov, .m4v, .mpg), a folder of frames (*.jpg, *.jpeg, *.png, in
  name order) or a list of frame paths, relative to the JSONL's folder,
  manual_dir or an `images/` folder in it, with optional `fps` (the
  frames' rate; default: a video file's own, 25 for frames). For a model
  that listens (config.data.audio=True) a video file's soundtrack is kept
  (none: a silent clip), or a clip row's `audio` file (any format FFmpeg
  reads) for frame folders.
  """

  def __init__(self, *, audio: bool = False, **kwargs):
    self.read_audio = audio
    super().__init__(**kwargs)

  def _media(self, root, file, row, line) -> dict:
    out = self._visual(root, file, row, line)
    if self.HAS_AUDIO:
      out["audio"] = (
        self._sound(root, file, row, line) if self.read_audio else b""
      )
    return out

  def _sound(self, root, file, row, line) -> bytes:
    """The clip's sound as WAV: the row's `audio` file, else a video file's
    soundtrack; b"" for an image row or a silent clip."""
    if row.get("audio"):
      path = _find(root, file, str(row["audio"]))
      return common.read_audio(path, file.name, line, "audio")
    video = row.get("video")
    if not (
      isinstance(video, str) and video.lower().endswith(video_io.VIDEO_SUFFIXES)
    ):
      return b""
    path = _find(root, file, video)
    try:
      wave = audio_io.read(path.read_bytes(), name=str(path))
    except audio_io.NoAudioStreamError:
      return b""  # A silent clip: the model watches it only.
    except audio_io.AudioFileError as e:
      raise errors.BadExampleError(
        str(e), source=file.name, line=line, field="video"
      ) from None
    return audio_io.encode(wave)

  def _visual(self, root, file, row, line) -> dict:
    if not row.get("video"):
      return {
        "image": self._image(root, file, row, line),
        "video": [],
        "video_fps": 0.0,
      }
    if row.get("image"):
      raise errors.BadExampleError(
        "the row has both an image and a video; a row holds one visual.",
        source=file.name,
        line=line,
        field="video",
        fix="split it into an image row and a video row.",
      )
    video = row["video"]
    if isinstance(video, str) and video.lower().endswith(
      video_io.VIDEO_SUFFIXES
    ):
      return self._video_file(root, file, row, line)
    frames = self._frames(root, file, video, line)
    kept = video_lib.sample_frames(len(frames), MAX_STORED_FRAMES)
    fps = video_lib.sampled_fps(
      self._fps(file, row, line), len(kept), len(frames)
    )
    return {
      "video": [
        common.read_file(
          frames[i], file.name, line, what="frame", field="video"
        )
        for i in kept
      ],
      "video_fps": fps,
    }

  def _video_file(self, root, file, row, line) -> dict:
    """A row naming a video file: its sampled frames, stored as JPEG."""
    path = _find(root, file, row["video"])
    if not path.is_file():
      what = "is a folder" if path.exists() else "does not exist"
      raise errors.BadExampleError(
        f"video file {path} {what}.",
        source=file.name,
        line=line,
        field="video",
        fix="add the file or remove the row.",
      )
    fps = self._fps(file, row, line) if "fps" in row else None
    try:
      frames, fps, _ = video_io.read_video(path, MAX_STORED_FRAMES, fps)
    except (video_io.VideoFileError, OSError) as e:
      raise errors.BadExampleError(
        str(e), source=file.name, line=line, field="video"
      ) from None
    return {"video": [_jpeg(f) for f in frames], "video_fps": fps}

  def _frames(self, root, file, video, line) -> list[epath.Path]:
    def bad(reason, fix=""):
      return errors.BadExampleError(
        reason, source=file.name, line=line, field="video", fix=fix
      )

    if isinstance(video, list):
      if not all(isinstance(v, str) and v for v in video):
        raise bad("a frame list must hold frame paths (strings).")
      return [_find(root, file, v) for v in video]
    if not isinstance(video, str):
      raise bad(f"video is a JSON {type(video).__name__}.", _VIDEO_FIX)
    folder = _find(root, file, video)
    if not folder.is_dir():
      what = "is a file" if folder.exists() else "does not exist"
      raise bad(f"video folder {folder} {what}.", _VIDEO_FIX)
    frames = sorted(
      (f for f in folder.iterdir() if f.suffix.lower() in FRAME_SUFFIXES),
      key=lambda f: _natural(f.name),
    )
    if not frames:
      raise bad(f"video folder {folder} holds no frames.", _VIDEO_FIX)
    return frames

  def _fps(self, file, row, line) -> float:
    fps = row.get("fps", self.DEFAULT_FPS)
    number = isinstance(fps, (int, float)) and not isinstance(fps, bool)
    if not number or not fps > 0:  # `not >` also refuses NaN.
      raise errors.BadExampleError(
        f"fps={fps!r}; a clip's frame rate is a number > 0.",
        source=file.name,
        line=line,
        field="fps",
        fix=f"give the frames' rate, or leave it out ({self.DEFAULT_FPS}).",
      )
    return float(fps)


def _jpeg(frame_HWC) -> bytes:
  # Quality 95 with full-resolution chroma: the frames were decoded from a
  # lossy stream already, and PNG would make the prepared copy ~5x larger.
  out = io.BytesIO()
  Image.fromarray(frame_HWC).save(out, "JPEG", quality=95, subsampling=0)
  return out.getvalue()


def _natural(name: str) -> list:
  """Sort key ordering `2.jpg` before `10.jpg` (ffmpeg's default `%d`
  names), as well as zero-padded names."""
  return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


_VIDEO_FIX = (
  "name a video file (" + ", ".join(video_io.VIDEO_SUFFIXES) + "), a "
  "folder of the clip's frames (*.jpg, *.jpeg, *.png, in name order) or "
  "list the frame paths."
)


def _find(root: epath.Path, file: epath.Path, name: str) -> epath.Path:
  """`name` under the JSONL's folder, manual_dir or its `images/`, in that
  order; the first if none has it (its error names that path)."""
  for base in (file.parent, root, root / "images"):
    if (base / name).exists():
      return base / name
  return file.parent / name


def _conversation(row: dict) -> tuple[str, str]:
  """(assistant reply, question) from `conversations`/`problem`/`question`."""
  reply, question = "", row.get("question") or row.get("problem") or ""
  for turn in row.get("conversations") or []:
    if turn.get("from") in ("gpt", "assistant"):
      reply = reply or turn.get("value", "")
    elif turn.get("from") in ("human", "user"):
      question = question or turn.get("value", "")
  return reply, question.replace("<image>", "").strip()
