"""WAV decoding and resampling against the standard library and scipy."""

import struct
import wave

import numpy as np
import pytest
import scipy.signal
import video_files

from emojax.data import audio_io

RATE = 16000


def _tone(n, rate, freqs=(440.0, 3000.0)):
  t = np.arange(n) / rate
  return sum(0.3 * np.sin(2 * np.pi * f * t) for f in freqs)


def _wav(path, frames_CT, rate, width):
  """A PCM file written by Python's `wave` module (the reference)."""
  scale = 2 ** (8 * width - 1) - 1
  x = np.asarray(frames_CT).T
  if width == 1:
    raw = (x * 127 + 128).astype(np.uint8).tobytes()
  elif width == 3:
    v = (x * scale).astype(np.int32).reshape(-1)
    raw = b"".join(int(i).to_bytes(3, "little", signed=True) for i in v)
  else:
    raw = (x * scale).astype(f"<i{width}").tobytes()
  with wave.open(str(path), "wb") as w:
    w.setnchannels(x.shape[1])
    w.setsampwidth(width)
    w.setframerate(rate)
    w.writeframes(raw)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_widths_and_stereo_mixdown(tmp_path, width):
  left, right = _tone(800, RATE), -0.5 * _tone(800, RATE, (200.0,))
  _wav(tmp_path / "a.wav", [left, right], RATE, width)
  got = audio_io.read(tmp_path / "a.wav")
  tolerance = max(2.0 / 2 ** (8 * width - 1), 1e-7)  # float32 at 32 bits
  np.testing.assert_allclose(got, (left + right) / 2, atol=tolerance)


def test_float_and_extensible_headers(tmp_path):
  x = _tone(500, RATE).astype(np.float32)
  data = x.tobytes()
  # WAVE_FORMAT_EXTENSIBLE whose sub-format is IEEE float.
  fmt = struct.pack("<HHIIHH", 0xFFFE, 1, RATE, RATE * 4, 4, 32)
  fmt += struct.pack("<HHI", 22, 32, 4) + struct.pack("<H", 3) + b"\0" * 14
  blob = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
  blob += b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd chunk, padded
  blob += b"data" + struct.pack("<I", len(data)) + data
  raw = b"RIFF" + struct.pack("<I", len(blob)) + blob
  np.testing.assert_array_equal(audio_io.read(raw), x)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_equals_scipy_and_keeps_the_tones(rate):
  x = _tone(int(rate * 0.37), rate, (440.0, 2500.0))
  got = audio_io.resample(x, rate, RATE)
  assert len(got) == round(len(x) * RATE / rate)
  np.testing.assert_allclose(got, scipy.signal.resample(x, len(got)), atol=1e-5)
  # Away from the ends (the FFT treats the clip as periodic), the tones
  # sampled at 16 kHz (at the rate the rounded length gives exactly).
  want = _tone(len(got), len(got) * rate / len(x), (440.0, 2500.0))
  inner = slice(len(got) // 5, -len(got) // 5)
  assert np.abs(got - want)[inner].max() < 0.05


def test_write_then_read_round_trips(tmp_path):
  x = 0.5 * _tone(1234, RATE)
  audio_io.write(tmp_path / "b.wav", x)
  with wave.open(str(tmp_path / "b.wav")) as w:
    assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (
      1,
      2,
      RATE,
    )
  np.testing.assert_allclose(audio_io.read(tmp_path / "b.wav"), x, atol=1e-4)


def test_bad_files_name_the_file_and_the_fix(tmp_path):
  (tmp_path / "clip.mp3").write_bytes(b"ID3\x03" + b"\0" * 40)
  with pytest.raises(
    audio_io.AudioFileError, match=r"clip.mp3: neither WAV nor .*ffmpeg"
  ):
    audio_io.read(tmp_path / "clip.mp3")
  with pytest.raises(audio_io.AudioFileError, match="missing.wav: cannot be"):
    audio_io.read(tmp_path / "missing.wav")
  fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 3, 3, 20)
  raw = b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"fmt "
  raw += struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 0)
  with pytest.raises(audio_io.AudioFileError, match="20 bits"):
    audio_io.read(raw, name="odd.wav")
  with pytest.raises(audio_io.AudioFileError, match="no 'data' chunk"):
    audio_io.read(raw[:36], name="cut.wav")


def test_flac_is_its_wavs_twin(tmp_path):
  """FLAC is lossless: FFmpeg's decoding of it equals the WAV reader's of
  the same 16-bit samples (channels averaged, then resampled, both)."""
  stereo_CT = np.stack([_tone(22050, 44100, (440.0,)), _tone(22050, 44100)])
  video_files.write_audio(tmp_path / "a.flac", stereo_CT, 44100)
  _wav(tmp_path / "a.wav", stereo_CT, 44100, 2)
  np.testing.assert_allclose(
    audio_io.read(tmp_path / "a.flac"),
    audio_io.read(tmp_path / "a.wav"),
    atol=1e-6,
  )


@pytest.mark.parametrize("suffix", [".mp3", ".m4a", ".mp4"])
def test_lossy_files_and_soundtracks_keep_length_and_tones(tmp_path, suffix):
  """MP3, AAC and an mp4's soundtrack (a clip with frames): the clip's
  length within the encoders' delay, and its two tones the loudest."""
  mono_CT = _tone(44100, 44100)[None]  # one second
  video = (video_files.gray_frames(10), 10) if suffix == ".mp4" else None
  video_files.write_audio(tmp_path / f"a{suffix}", mono_CT, 44100, video)
  x = audio_io.read(tmp_path / f"a{suffix}")
  assert RATE <= len(x) <= RATE * 1.1  # AAC's priming, MP3's padding
  spectrum = np.abs(np.fft.rfft(x[:RATE]))  # 1 Hz bins
  assert sorted(np.argsort(spectrum)[-2:]) == [440, 3000]


def test_a_video_without_sound_is_named(tmp_path):
  video_files.write_video(tmp_path / "mute.mp4", video_files.gray_frames(4), 4)
  with pytest.raises(audio_io.AudioFileError, match="mute.mp4: .*no audio"):
    audio_io.read(tmp_path / "mute.mp4")
