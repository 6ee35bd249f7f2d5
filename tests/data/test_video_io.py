"""Video files decoded and sampled as qwen-vl-utils samples them."""

import wave

import numpy as np
import pytest
import video_files

from emojax.data import video_io


@pytest.mark.parametrize("suffix", sorted(video_files.CODECS))
def test_samples_evenly_in_presentation_order(tmp_path, suffix):
  path = tmp_path / f"clip{suffix}"
  video_files.write_video(path, video_files.gray_frames(50), fps=25)
  frames, fps, count = video_io.read_video(path, 16)
  assert count == 50
  # qwen-vl-utils: torch.linspace(0, n - 1, k).round(), rate fps * k / n.
  want = np.round(np.linspace(0, 49, 16)).astype(int).tolist()
  assert [video_files.frame_index(f) for f in frames] == want
  assert fps == pytest.approx(25 * 16 / 50)
  assert all(f.shape == (32, 48, 3) and f.dtype == np.uint8 for f in frames)


def test_short_clip_keeps_every_frame_at_its_rate(tmp_path):
  path = tmp_path / "clip.mp4"
  video_files.write_video(path, video_files.gray_frames(5), fps=30)
  frames, fps, count = video_io.read_video(path, 16)
  assert [video_files.frame_index(f) for f in frames] == [0, 1, 2, 3, 4]
  assert (fps, count) == (pytest.approx(30.0), 5)


def test_given_rate_overrides_the_containers(tmp_path):
  path = tmp_path / "clip.avi"
  video_files.write_video(path, video_files.gray_frames(20), fps=30)
  _, fps, _ = video_io.read_video(path, 10, fps=24.0)
  assert fps == pytest.approx(24.0 * 10 / 20)


def test_refusals_name_the_file_and_the_fix(tmp_path):
  junk = tmp_path / "junk.mp4"
  junk.write_bytes(b"not a video at all" * 100)
  with pytest.raises(video_io.VideoFileError, match="junk.mp4") as e:
    video_io.read_video(junk, 8)
  assert "ffmpeg -i junk.mp4" in str(e.value)

  sound = tmp_path / "sound.mp4"  # FFmpeg probes the bytes: a WAV inside.
  with wave.open(str(sound), "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(16000)
    w.writeframes(np.zeros(1600, np.int16).tobytes())
  with pytest.raises(video_io.VideoFileError, match="no video stream"):
    video_io.read_video(sound, 8)
