"""Writes small video files with PyAV, for the readers' tests."""

import av
import numpy as np

# (container suffix, codec, pixel format): DFEW ships MPEG-4 Part 2 in avi,
# MAFW H.264 in mp4; H.264 reorders frames (B-frames), so reading it back
# in order tests presentation order, not decode order.
CODECS = {
  ".mp4": ("libx264", "yuv420p"),
  ".avi": ("mpeg4", "yuv420p"),
  ".webm": ("libvpx", "yuv420p"),
}


def gray_frames(n: int, h: int = 32, w: int = 48) -> np.ndarray:
  """uint8 [n, h, w, 3]; frame i is uniformly 8 + 4 * i (distinct after
  lossy coding, which keeps flat gray within a level or two; n <= 60)."""
  return np.stack([np.full((h, w, 3), 8 + 4 * i, np.uint8) for i in range(n)])


def frame_index(frame_HWC: np.ndarray) -> int:
  """The i of a decoded `gray_frames` frame."""
  return round((float(frame_HWC.mean()) - 8) / 4)


def write_video(path, frames_THWC: np.ndarray, fps: int) -> None:
  codec, pix_fmt = CODECS[path.suffix]
  with av.open(str(path), "w") as container:
    stream = container.add_stream(codec, rate=fps)
    stream.height, stream.width = frames_THWC.shape[1:3]
    stream.pix_fmt = pix_fmt
    stream.bit_rate = 20_000_000  # near lossless at these sizes
    for frame_HWC in frames_THWC:
      frame = av.VideoFrame.from_ndarray(frame_HWC, format="rgb24")
      container.mux(stream.encode(frame))
    container.mux(stream.encode())


# Audio codecs by suffix: FLAC is lossless (the WAV path's twin), MP3 and
# AAC-in-mp4 lossy, as MELD's and MER's clips are.
AUDIO_CODECS = {".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac"}


def write_audio(path, wave_CT: np.ndarray, rate: int, video=None) -> None:
  """wave_CT float in [-1, 1], one row per channel, as 16-bit samples;
  `video` (frames, fps) adds a video stream (an mp4 with a soundtrack)."""
  codec = AUDIO_CODECS.get(path.suffix, "aac")
  layout = {1: "mono", 2: "stereo"}[len(wave_CT)]
  pcm = (np.clip(wave_CT, -1, 1) * 32767).astype(np.int16)
  with av.open(str(path), "w") as container:
    if video is not None:
      frames_THWC, fps = video
      picture = container.add_stream("libx264", rate=fps)
      picture.height, picture.width = frames_THWC.shape[1:3]
      picture.pix_fmt = "yuv420p"
    sound = container.add_stream(codec, rate=rate, layout=layout)
    frame = av.AudioFrame.from_ndarray(
      pcm.T.reshape(1, -1), format="s16", layout=layout
    )
    frame.rate = rate
    container.mux(sound.encode(frame))
    container.mux(sound.encode())
    if video is not None:
      for frame_HWC in frames_THWC:
        image = av.VideoFrame.from_ndarray(frame_HWC, format="rgb24")
        container.mux(picture.encode(image))
      container.mux(picture.encode())
