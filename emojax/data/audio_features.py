"""Whisper's log-mel features, as Qwen2.5-Omni's processor computes them.

transformers' `WhisperFeatureExtractor` (128 mel bins for Qwen2.5-Omni)
pads every 16 kHz clip with silence to 30 s, takes a centred STFT (400-point
periodic Hann window, hop 160, reflect-padded ends), projects the power
spectrum onto Slaney mel filters, and returns log10 clipped 8 decades below
the clip's peak and rescaled by (x + 4) / 4; the last STFT frame is dropped,
leaving 100 frames a second. The processor keeps `ceil(samples / 160)`
frames as the clip's length (`feature_attention_mask`).

`log_mel` does the same in numpy on the host (tested against transformers'
extractor) and can crop the padded frames to a budget: the crop does not
change a real frame, because each is computed on the 30-s padded clip.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLING_RATE = 16000
N_FFT = 400
HOP = 160
SECONDS = 30  # Whisper's window: longer clips are cut, as the processor does.


def _hz_to_mel(f):
  """Slaney's mel scale: linear to 1 kHz, logarithmic above."""
  f = np.asarray(f, np.float64)
  logstep = 27.0 / np.log(6.4)
  mel = 3.0 * f / 200.0
  above = 15.0 + np.log(np.maximum(f, 1000.0) / 1000.0) * logstep
  return np.where(f >= 1000.0, above, mel)


def _mel_to_hz(m):
  m = np.asarray(m, np.float64)
  logstep = np.log(6.4) / 27.0
  hz = 200.0 * m / 3.0
  return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), hz)


@functools.cache
def mel_filters(num_mel_bins: int) -> np.ndarray:
  """Slaney-normalised triangular filters [N_FFT // 2 + 1, num_mel_bins]."""
  fft_hz = np.linspace(0, SAMPLING_RATE // 2, N_FFT // 2 + 1)
  mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(8000.0), num_mel_bins + 2)
  edges_hz = _mel_to_hz(mels)
  width = np.diff(edges_hz)
  slopes = edges_hz[None, :] - fft_hz[:, None]
  down = -slopes[:, :-2] / width[:-1]
  up = slopes[:, 2:] / width[1:]
  filters = np.maximum(0.0, np.minimum(down, up))
  return filters * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[None]


def num_audio_tokens(frames: int) -> int:
  """Qwen2.5-Omni's `<|AUDIO|>` count for a clip of `frames` feature
  frames (`emojax.model.audio.num_tokens`, which checks it against
  transformers)."""
  return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def num_frames(num_samples: int) -> int:
  """Feature frames the processor counts as real for a clip's samples."""
  return -(-min(num_samples, SECONDS * SAMPLING_RATE) // HOP)


def log_mel(
  waveform, num_mel_bins: int = 128, max_frames: int | None = None
) -> tuple[np.ndarray, int]:
  """`(features_MF, length)` of one mono 16 kHz clip.

  F is 3000 (30 s), or `max_frames` to keep only the first frames (a
  budget for short clips). `length` counts the clip's real frames, capped
  at F.
  """
  wave = np.asarray(waveform, np.float32)
  if wave.ndim != 1:
    raise ValueError(
      f"waveform has shape {wave.shape}; pass one mono clip (average the "
      "channels of a stereo file first)."
    )
  if len(wave) == 0:
    raise ValueError("waveform is empty; a clip needs at least 20 ms.")
  total = SECONDS * SAMPLING_RATE
  length = num_frames(len(wave))
  out = total // HOP if max_frames is None else min(max_frames, total // HOP)
  # Frames whose window ends before the clip's end + N_FFT / 2 touch the
  # clip; every later one sees only the silence padding (power 0, so the
  # floor, which never raises the clip's peak): compute up to the budget
  # and those, not the whole 30 s.
  need = max(out, min(length + 3, total // HOP))
  wave = np.pad(wave[:total], (0, total - min(len(wave), total)))
  padded = np.pad(wave, N_FFT // 2, mode="reflect").astype(np.float64)
  padded = padded[: (need - 1) * HOP + N_FFT]
  frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
  power_FK = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
  mel_FM = power_FK @ mel_filters(num_mel_bins)
  log_FM = np.log10(np.maximum(mel_FM, 1e-10))
  log_FM = np.maximum(log_FM, log_FM.max() - 8.0)
  features_MF = ((log_FM[:out] + 4.0) / 4.0).T.astype(np.float32)
  return features_MF, min(length, features_MF.shape[1])
