"""The synthetic voice: each prosody cue is measurable in the clip."""

import numpy as np
import pytest

from emojax.data import audio_features, speech_synth, voice

RATE = audio_features.SAMPLING_RATE
RECORD = {
  "transcription": "The train leaves at seven tomorrow.",
  "emotion": "neutral",
  "gender": "Male",
  "pitch_level": "normal",
  "energy_level": "normal",
  "speed_level": "normal",
  "intonation": "flat",
  "stressed_words": ["seven"],
}


def _f0(x):
  """Per-frame pitch by autocorrelation (50 ms frames, 60-400 Hz), voiced
  frames only: an estimator independent of how the voice is made."""
  out = []
  for i in range(0, len(x) - 800, 400):
    frame = x[i : i + 800] - x[i : i + 800].mean()
    if np.sqrt(np.mean(frame**2)) < 0.01:
      continue
    ac = np.correlate(frame, frame, "full")[799:]
    lag = RATE // 400 + np.argmax(ac[RATE // 400 : RATE // 60])
    out.append(RATE / lag)
  return np.asarray(out)


def _voice(**cues):
  return voice.render(RECORD | cues)


def test_pitch_levels_order_the_pitch():
  f0 = [
    np.median(_f0(_voice(pitch_level=p))) for p in ("low", "normal", "high")
  ]
  assert f0[0] < f0[1] < f0[2]
  assert 100 < f0[1] < 140  # a male voice at its base pitch
  female = np.median(_f0(_voice(gender="Female")))
  assert female > 1.5 * f0[1]


@pytest.mark.parametrize("contour", ["rising", "falling"])
def test_intonation_bends_the_pitch(contour):
  f0 = _f0(_voice(intonation=contour))
  head, tail = f0[: len(f0) // 3].mean(), f0[-len(f0) // 3 :].mean()
  assert (tail > 1.15 * head) if contour == "rising" else (head > 1.15 * tail)
  flat = _f0(_voice())
  assert (
    abs(flat[-len(flat) // 3 :].mean() / flat[: len(flat) // 3].mean() - 1)
    < 0.08
  )


def test_energy_and_speed_order_loudness_and_length():
  rms = [
    np.sqrt(np.mean(_voice(energy_level=e) ** 2))
    for e in ("low", "normal", "high")
  ]
  assert rms[0] < rms[1] < rms[2]
  seconds = [
    len(_voice(speed_level=s)) / RATE for s in ("slow", "normal", "fast")
  ]
  assert seconds[0] > seconds[1] > seconds[2]


def test_whisper_has_no_pitch():
  def periodicity(x):
    frame = x[len(x) // 3 : len(x) // 3 + 1600]
    ac = np.correlate(frame, frame, "full")[1599:]
    return ac[RATE // 400 : RATE // 60].max() / ac[0]

  assert periodicity(_voice()) > 0.6
  assert periodicity(_voice(emotion="whisper")) < 0.4


def test_clips_are_deterministic_and_fit_the_features():
  record = speech_synth.make_record(3, 11, reasoning=False)
  a, b = voice.render(record, seed=1), voice.render(record, seed=1)
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.float32 and np.abs(a).max() < 1
  features, frames = audio_features.log_mel(a, max_frames=800)
  assert frames == -(-len(a) // audio_features.HOP) <= 800
  assert np.isfinite(features).all()
