"""A speaking voice for synthetic EmotionCoT records: cues -> 16 kHz audio.

The sound counterpart of `emojax.data.faces`: `render(record)` turns a
record's prosody labels into a clip in which they can be heard, so a model
with an audio tower has something to listen to. Each syllable of the
transcript (vowel groups of its words) is a vowel: harmonics of the voice's
pitch shaped by two formants of a vowel the syllable's letters pick, under
an attack-decay envelope, with short pauses between words. The cues set:

- pitch: the speaker's base f0 (male 120 Hz, female 210 Hz) x 0.8 / 1 / 1.3
- intonation: the f0 contour over the utterance (flat, rising, falling,
  rising-falling, falling-rising; expressive: a wider wave)
- energy: the loudness, 0.1 / 0.3 / 0.7 of full scale
- speed: syllable length, 0.28 / 0.2 / 0.14 s
- stressed words: louder and a little higher

A `whisper` record is unvoiced: noise through the same formants, no pitch
(the class is a voice quality rather than a prosody profile). It is a
vocoder-free caricature of speech, enough to carry the cues, not a TTS.
Prepared `prosody_synth` copies hold these clips: bump
`EmojaxProsodySynth.VERSION` when the sound changes.
"""

from __future__ import annotations

import re

import numpy as np

from emojax.data import audio_features

RATE = audio_features.SAMPLING_RATE
BASE_F0 = {"male": 120.0, "female": 210.0}
PITCH = {"low": 0.8, "normal": 1.0, "high": 1.3}
ENERGY = {"low": 0.1, "normal": 0.3, "high": 0.7}
SYLLABLE_SECONDS = {"slow": 0.28, "normal": 0.2, "fast": 0.14}
# Vowel -> (F1, F2) in Hz, after Peterson & Barney's adult averages.
FORMANTS = {
  "a": (730.0, 1090.0),
  "e": (530.0, 1840.0),
  "i": (270.0, 2290.0),
  "o": (570.0, 840.0),
  "u": (300.0, 870.0),
  "y": (390.0, 1990.0),
}
WORD_GAP_SECONDS = 0.05


def contour(intonation: str, t: np.ndarray) -> np.ndarray:
  """f0 multiplier over the utterance, t in [0, 1]."""
  shapes = {
    "rising": 0.9 + 0.45 * t,
    "falling": 1.25 - 0.45 * t,
    "rising-falling": 1.0 + 0.3 * np.sin(np.pi * t),
    "falling-rising": 1.0 - 0.2 * np.sin(np.pi * t),
    "expressive": 1.0 + 0.25 * np.sin(3 * np.pi * t),
  }
  return shapes.get(intonation, np.ones_like(t))


def _syllables(text: str) -> list[tuple[str, int]]:
  """(vowel, word index) per vowel group of each word."""
  out = []
  words = re.findall(r"[a-z']+", text.lower())
  for w, word in enumerate(words):
    groups = re.findall(r"[aeiouy]+", word) or ["a"]
    out += [(g[0], w) for g in groups]
  return out


def _envelope(n: int) -> np.ndarray:
  attack = max(n // 8, 1)
  env = np.ones(n)
  env[:attack] = np.linspace(0, 1, attack)
  env[attack:] = np.exp(-2.5 * np.linspace(0, 1, n - attack))
  return env


def _formant_gain(freq: np.ndarray, vowel: str) -> np.ndarray:
  """Two resonances (100 Hz wide) and a 6 dB/octave tilt."""
  gain = np.zeros_like(freq)
  for f in FORMANTS[vowel]:
    gain += 1.0 / (1.0 + ((freq - f) / 100.0) ** 2)
  return (gain + 0.05) / np.maximum(freq / 100.0, 1.0)


def _voiced(f0_T: np.ndarray, vowel: str) -> np.ndarray:
  phase = 2 * np.pi * np.cumsum(f0_T) / RATE
  out = np.zeros_like(f0_T)
  mean_f0 = float(f0_T.mean())
  for k in range(1, int(4000 // mean_f0) + 1):
    out += _formant_gain(np.array([k * mean_f0]), vowel)[0] * np.sin(k * phase)
  return out


def _unvoiced(n: int, vowel: str, rng) -> np.ndarray:
  spectrum = np.fft.rfft(rng.standard_normal(n))
  spectrum *= _formant_gain(np.fft.rfftfreq(n, 1 / RATE), vowel)
  return np.fft.irfft(spectrum, n)


def render(record: dict, seed: int = 0) -> np.ndarray:
  """One record's clip (float32 mono, 16 kHz, peak below 1)."""
  rng = np.random.default_rng([seed, 7])
  text = record.get("transcription") or "ah"
  sylls = _syllables(text)
  words = re.findall(r"[a-z']+", text.lower())
  stressed = {str(w).lower() for w in record.get("stressed_words") or ()}
  n = int(SYLLABLE_SECONDS.get(record.get("speed_level"), 0.2) * RATE)
  gap = np.zeros(int(WORD_GAP_SECONDS * RATE))
  base = BASE_F0.get(str(record.get("gender", "")).lower(), 165.0)
  base *= PITCH.get(record.get("pitch_level"), 1.0)
  loud = ENERGY.get(record.get("energy_level"), 0.3)
  intonation = record.get("intonation", "flat")
  pieces, last_word = [], 0
  for s, (vowel, w) in enumerate(sylls):
    if w != last_word:
      pieces.append(gap)
      last_word = w
    stress = 1.5 if w < len(words) and words[w] in stressed else 1.0
    if record.get("emotion") == "whisper":
      sound = _unvoiced(n, vowel, rng)
    else:  # the contour glides through the syllable
      t_T = (s + np.arange(n) / n) / len(sylls)
      jitter = 1.0 + 0.02 * rng.standard_normal()
      lift = 1.08 if stress > 1 else 1.0
      sound = _voiced(base * contour(intonation, t_T) * jitter * lift, vowel)
    sound /= np.abs(sound).max() + 1e-9
    pieces.append(loud * stress * _envelope(n) * sound)
  wave = np.concatenate(pieces + [gap])
  wave += 0.002 * rng.standard_normal(len(wave))  # a room, not silence
  return (wave / max(1.0, np.abs(wave).max() / 0.99)).astype(np.float32)
