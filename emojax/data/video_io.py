"""Video files (mp4, avi, mkv, webm, mov) in, evenly sampled RGB frames out.

DFEW's `Clip/original/*.avi`, MAFW's `clips/*.mp4`, MER's videos and the
R1-Omni/HumanOmniV2 JSON files name video files, not frame folders. This
decodes them with PyAV (FFmpeg's libraries, bundled in its wheel) and
samples frames as qwen-vl-utils does for a video file: every frame is
decoded, `sample_frames` picks the indices, and the rate of the sampled
frames is `average rate * kept / decoded`.

The frames are counted by decoding, not read from the container: the
stored count is missing or wrong in many avi and webm files, and a wrong
count would shift every sampled index. So a file is decoded twice (once
to count, once to keep the sampled frames); holding every decoded frame
of a 1080p clip instead would take gigabytes.
"""

from __future__ import annotations

import os

import numpy as np
from etils import epath

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg")


class VideoFileError(ValueError):
  """A video that cannot be read; the message names the file and the fix."""


def _reencode_hint(name: str) -> str:
  stem = os.path.splitext(name)[0]
  return (
    f"re-encode it (`ffmpeg -i {name} -c:v libx264 {stem}_h264.mp4`) or "
    f"extract its frames (`ffmpeg -i {name} {stem}/%05d.jpg`) and name "
    "the folder."
  )


def read_video(
  path: epath.PathLike, max_frames: int, fps: float | None = None
) -> tuple[list[np.ndarray], float, int]:
  """(frames uint8 [H, W, 3], their rate, frames decoded) for at most
  `max_frames` evenly spaced frames of the file's first video stream.

  `fps` is the file's frame rate where the container's is wrong or
  missing (None: the container's average rate)."""
  import av  # Imported here: only datasets of video files need FFmpeg.

  from emojax.data import video as video_lib

  path = epath.Path(path)
  try:
    count, stated_fps = _count(av, path)
    fps = fps or stated_fps
    if not fps:
      raise VideoFileError(
        f"{path}: the video stream states no frame rate; give the row an "
        "`fps`, or re-encode it with one (`ffmpeg -i IN -r 25 OUT.mp4`)."
      )
    if count == 0:
      raise VideoFileError(
        f"{path}: the video stream decodes to no frames; "
        f"{_reencode_hint(path.name)}"
      )
    kept = video_lib.sample_frames(count, max_frames)
    frames = _decode(av, path, set(kept.tolist()))
  except av.FFmpegError as e:
    raise VideoFileError(
      f"{path}: FFmpeg cannot decode it ({e}); {_reencode_hint(path.name)}"
    ) from None
  if len(frames) != len(kept):  # The second pass decoded fewer frames.
    raise VideoFileError(
      f"{path}: decoded {count} frames, then only {len(frames)} of the "
      f"{len(kept)} sampled ones; {_reencode_hint(path.name)}"
    )
  return frames, video_lib.sampled_fps(fps, len(kept), count), count


def _stream(container, path: epath.Path):
  if not container.streams.video:
    raise VideoFileError(
      f"{path}: the file has no video stream (audio only?); name a video "
      "file or a folder of frames."
    )
  stream = container.streams.video[0]
  stream.thread_type = "AUTO"  # FFmpeg's frame threads: decoding is the cost.
  return stream


def _count(av, path: epath.Path) -> tuple[int, float | None]:
  """(frames decoded, the stream's average rate or None)."""
  with path.open("rb") as f, av.open(f) as container:
    stream = _stream(container, path)
    rate = stream.average_rate or stream.guessed_rate
    rate = float(rate) if rate and float(rate) > 0 else None
    return sum(1 for _ in container.decode(stream)), rate


def _decode(av, path: epath.Path, wanted: set[int]) -> list[np.ndarray]:
  frames = []
  with path.open("rb") as f, av.open(f) as container:
    stream = _stream(container, path)
    for i, frame in enumerate(container.decode(stream)):
      if i in wanted:
        frames.append(frame.to_ndarray(format="rgb24"))
      if len(frames) == len(wanted):
        break
  return frames
