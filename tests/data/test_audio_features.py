"""Whisper log-mel features against transformers' extractor."""

import numpy as np
import pytest
import transformers

from emojax.data import audio_features


def _clip(n, seed=0):
  rng = np.random.RandomState(seed)
  t = np.arange(n) / audio_features.SAMPLING_RATE
  glide = np.sin(2 * np.pi * 180 * t * (1 + 0.3 * t))
  return (0.4 * glide + 0.03 * rng.randn(n)).astype(np.float32)


@pytest.mark.parametrize("n", [1600, 48077, 16000 * 31])
def test_log_mel_equals_whisper_feature_extractor(n):
  # Qwen2.5-Omni's processor: 128 bins, padded to 30 s, with the mask.
  fe = transformers.WhisperFeatureExtractor(feature_size=128)
  ref = fe(
    _clip(n),
    sampling_rate=16000,
    padding="max_length",
    return_attention_mask=True,
    return_tensors="np",
  )
  got, length = audio_features.log_mel(_clip(n))
  assert got.shape == ref["input_features"][0].shape == (128, 3000)
  assert length == int(ref["attention_mask"].sum())
  # transformers computes in float32 (torch's STFT), emojax in float64.
  np.testing.assert_allclose(got, ref["input_features"][0], atol=2e-4)


def test_a_frame_budget_keeps_the_processors_frames():
  fe = transformers.WhisperFeatureExtractor(feature_size=128)
  ref = fe(_clip(8000), sampling_rate=16000, return_tensors="np")
  short, n = audio_features.log_mel(_clip(8000), max_frames=64)
  assert short.shape == (128, 64) and n == 50
  np.testing.assert_allclose(short, ref["input_features"][0, :, :64], atol=2e-4)
  cut, k = audio_features.log_mel(_clip(8000), max_frames=30)
  assert cut.shape == (128, 30) and k == 30
  # Only the budget's frames and the clip's are computed; the rest are the
  # silence floor, so every kept frame equals the full computation's, the
  # clip's peak (past a short budget) included.
  for n, budget in ((8000, 64), (8000, 30), (16000 * 12, 300)):
    full, _ = audio_features.log_mel(_clip(n))
    part, _ = audio_features.log_mel(_clip(n), max_frames=budget)
    np.testing.assert_array_equal(part, full[:, :budget])


def test_mel_filters_equal_transformers():
  ref = transformers.audio_utils.mel_filter_bank(
    num_frequency_bins=201,
    num_mel_filters=80,
    min_frequency=0.0,
    max_frequency=8000.0,
    sampling_rate=16000,
    norm="slaney",
    mel_scale="slaney",
  )
  np.testing.assert_allclose(audio_features.mel_filters(80), ref, atol=1e-7)


def test_bad_waveforms_say_what_to_do():
  with pytest.raises(ValueError, match="mono"):
    audio_features.log_mel(np.zeros((2, 1600), np.float32))
  with pytest.raises(ValueError, match="empty"):
    audio_features.log_mel(np.zeros(0, np.float32))
