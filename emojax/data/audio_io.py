"""Audio files in, 16 kHz mono float32 out (the audio tower's features need it).

Reads RIFF/WAVE with integer PCM (8, 16, 24 or 32 bit) or IEEE float (32
or 64 bit) samples, in the standard library's spirit but without its
float limitation. Any other file (MP3, FLAC, OGG, M4A, or a video's
soundtrack: MELD's and MER's clips are mp4) is decoded by FFmpeg through
PyAV, its first audio stream at its own rate. Either way the channels are
averaged and the clip resampled to 16 kHz with an FFT (band-limited, as
`scipy.signal.resample`), so a WAV and its FLAC copy give the same wave.
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np

from emojax.data import audio_features

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


class AudioFileError(ValueError):
  """A clip that cannot be read; the message names the file and the fix."""


class NoAudioStreamError(AudioFileError):
  """A file FFmpeg reads that holds no sound (a silent video)."""


def _convert_hint(name: str) -> str:
  return (
    f"convert it to WAV, e.g. `ffmpeg -i {name} -ac 1 -ar 16000 "
    f"{os.path.splitext(name)[0]}.wav`."
  )


def is_wav(data: bytes) -> bool:
  return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def _chunks(data: bytes, name: str) -> dict[bytes, bytes]:
  out, pos = {}, 12
  while pos + 8 <= len(data):
    tag, size = (
      data[pos : pos + 4],
      struct.unpack("<I", data[pos + 4 : pos + 8])[0],
    )
    out.setdefault(tag, data[pos + 8 : pos + 8 + size])
    pos += 8 + size + (size & 1)  # chunks are word aligned
  for tag in (b"fmt ", b"data"):
    if tag not in out:
      raise AudioFileError(
        f"{name}: the WAV file has no {tag.decode().strip()!r} chunk "
        "(truncated?); re-export it."
      )
  return out


def _samples(fmt: bytes, data: bytes, name: str) -> tuple[np.ndarray, int]:
  """Samples [frames, channels] as float32 in [-1, 1], and the rate."""
  code, channels, rate = struct.unpack("<HHI", fmt[:8])
  bits = struct.unpack("<H", fmt[14:16])[0]
  if code == _EXTENSIBLE and len(fmt) >= 26:
    code = struct.unpack("<H", fmt[24:26])[0]  # the sub-format's GUID head
  width = bits // 8
  if channels < 1 or width < 1 or bits % 8:
    raise AudioFileError(f"{name}: {channels} channels of {bits} bits.")
  usable = len(data) - len(data) % (width * channels)
  raw = data[:usable]
  if code == _FLOAT and bits in (32, 64):
    x = np.frombuffer(raw, f"<f{width}").astype(np.float32)
  elif code == _PCM and bits == 8:
    x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
  elif code == _PCM and bits in (16, 32):
    x = np.frombuffer(raw, f"<i{width}").astype(np.float32) / 2 ** (bits - 1)
  elif code == _PCM and bits == 24:
    b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    x = (np.where(v >= 2**23, v - 2**24, v) / 2**23).astype(np.float32)
  else:
    kind = {_PCM: "integer PCM", _FLOAT: "float"}.get(code, f"format {code}")
    raise AudioFileError(
      f"{name}: {kind} samples of {bits} bits are not supported (PCM 8/16/"
      f"24/32 bit or float 32/64); {_convert_hint(name)}"
    )
  return x.reshape(-1, channels), rate


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
  """Band-limited resampling by FFT: the spectrum is cut (or padded) at
  the lower Nyquist frequency."""
  if rate == target:
    return wave.astype(np.float32)
  n = len(wave)
  m = max(int(round(n * target / rate)), 1)
  spectrum = np.fft.rfft(wave.astype(np.float64))
  keep = min(len(spectrum), m // 2 + 1)
  out = np.zeros(m // 2 + 1, np.complex128)
  out[:keep] = spectrum[:keep]
  if m > n and n % 2 == 0:
    out[n // 2] *= 0.5  # the old Nyquist bin splits into two frequencies
  if m < n and m % 2 == 0:
    out[-1] *= 2.0  # the new Nyquist bin unites a bin pair
  return (np.fft.irfft(out, m) * (m / n)).astype(np.float32)


def read(source, name: str | None = None) -> np.ndarray:
  """A mono clip at 16 kHz from a WAV path or its bytes."""
  if isinstance(source, bytes | bytearray):
    data, name = bytes(source), name or "<bytes>"
  else:
    name = name or os.fspath(source)
    try:
      with open(source, "rb") as f:
        data = f.read()
    except OSError as e:
      raise AudioFileError(f"{name}: cannot be read ({e.strerror}).") from None
  if is_wav(data):
    chunks = _chunks(data, name)
    samples, rate = _samples(chunks[b"fmt "], chunks[b"data"], name)
  else:
    samples, rate = _ffmpeg_samples(data, name)
  if not len(samples):
    raise AudioFileError(f"{name}: the file holds no audio samples.")
  return resample(samples.mean(1), rate, audio_features.SAMPLING_RATE)


def _ffmpeg_samples(data: bytes, name: str) -> tuple[np.ndarray, int]:
  """Samples [frames, channels] float32 and the rate of the first audio
  stream of any container FFmpeg reads."""
  import av  # Imported here: WAV needs no FFmpeg.

  try:
    with av.open(io.BytesIO(data)) as container:
      if not container.streams.audio:
        raise NoAudioStreamError(
          f"{name}: the file has no audio stream; name the clip's audio "
          "(or a video file with a soundtrack)."
        )
      stream = container.streams.audio[0]
      # Planar float at the stream's own layout and rate: channels are
      # averaged and resampled here, as for WAV, not by FFmpeg's mixer.
      to_float = av.AudioResampler(format="fltp")
      chunks_CT = [
        out.to_ndarray()
        for frame in container.decode(stream)
        for out in to_float.resample(frame)
      ]
      chunks_CT += [out.to_ndarray() for out in to_float.resample(None)]
      rate = stream.rate
  except av.FFmpegError as e:
    raise AudioFileError(
      f"{name}: neither WAV nor a file FFmpeg can decode ({e}); "
      f"{_convert_hint(name)}"
    ) from None
  if not chunks_CT:
    return np.zeros((0, 1), np.float32), rate
  return np.concatenate(chunks_CT, axis=1).T.astype(np.float32), rate


def encode(wave: np.ndarray, rate: int = audio_features.SAMPLING_RATE) -> bytes:
  """A mono 16-bit PCM WAV file's bytes (samples clipped to [-1, 1])."""
  pcm = (np.clip(np.asarray(wave, np.float64), -1, 1) * 32767).astype("<i2")
  data = pcm.tobytes()
  fmt = struct.pack("<HHIIHH", _PCM, 1, rate, rate * 2, 2, 16)
  return (
    b"RIFF"
    + struct.pack("<I", 36 + len(data))
    + b"WAVE"
    + b"fmt "
    + struct.pack("<I", len(fmt))
    + fmt
    + b"data"
    + struct.pack("<I", len(data))
    + data
  )


def write(path, wave: np.ndarray, rate: int = audio_features.SAMPLING_RATE):
  """`encode(wave, rate)` written to `path`."""
  with open(path, "wb") as f:
    f.write(encode(wave, rate))
