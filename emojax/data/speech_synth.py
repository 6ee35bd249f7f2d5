"""Synthetic EmotionCoT records: emotion -> prosody cues -> reasoning.

The speech counterpart of `emojax.data.synth` (faces): each record is a
pure function of (seed, index) in EmotionCoT's JSONL layout
(`emojax.data.tfds.emotion_cot`). `write_clip` also renders its audio
(`emojax.data.voice`), for `launch/make_data.py --dataset=prosody_synth`.
Transcripts are emotionally neutral sentences, so only the cues tell the
nine classes apart, as in EmotionThinker's claim that prosody carries the
emotion. Each
class has a prosody profile (pitch, energy, speed, intonation); with
probability `swap_rate` one cue takes another level, so labels are not a
lookup of the cues. The profiles are emojax's, loosely after the
speech-emotion literature, not measured on any corpus.
"""

import os

import numpy as np

from emojax.data import audio_io, prosody, voice

# EmotionThinker's nine classes as its prompt writes them (HF model card),
# the words EmotionCoT's `emotion` field uses.
CLASSES = (
  "neutral",
  "happy",
  "sad",
  "angry",
  "contempt or disgust",
  "confused",
  "whisper",
  "surprise",
  "fear",
)
# Class -> (pitch, energy, speed, intonation).
PROFILES = {
  "neutral": ("normal", "normal", "normal", "flat"),
  "happy": ("high", "high", "normal", "rising"),
  "sad": ("low", "low", "slow", "falling"),
  "angry": ("high", "high", "fast", "falling"),
  "contempt or disgust": ("low", "normal", "slow", "falling-rising"),
  "confused": ("normal", "low", "slow", "rising"),
  "whisper": ("low", "low", "normal", "flat"),
  "surprise": ("high", "high", "normal", "rising-falling"),
  "fear": ("high", "low", "fast", "rising"),
}
_SENTENCES = (
  "I left the keys on the kitchen table",
  "The train leaves at seven tomorrow",
  "She told me the meeting moved to Friday",
  "We are painting the fence this weekend",
  "He said the package arrived this morning",
  "The store closes early on Sundays",
  "They changed the password again",
  "My brother is coming over tonight",
  "The report is due at the end of the month",
  "You can put the boxes in the garage",
)
_CUES = ("pitch", "energy", "speed", "intonation")
SWAP_RATE = 0.15


def split_seed(seed: int, split: str) -> int:
  """A seed per split, so splits draw disjoint record streams."""
  return seed * 1_000_003 + sum((i + 1) * ord(c) for i, c in enumerate(split))


def make_record(
  seed: int, index: int, *, reasoning: bool, swap_rate: float = SWAP_RATE
) -> dict:
  """One EmotionCoT record (`reasoning` adds the CoT the SFT stage reads)."""
  rng = np.random.default_rng([seed, index])
  emotion = CLASSES[rng.integers(len(CLASSES))]
  levels = dict(zip(_CUES, PROFILES[emotion], strict=True))
  if rng.random() < swap_rate:
    cue = _CUES[rng.integers(len(_CUES))]
    others = [v for v in prosody.LEVELS[cue] if v != levels[cue]]
    levels[cue] = others[rng.integers(len(others))]
  words = _SENTENCES[rng.integers(len(_SENTENCES))].split()
  stressed = [words[rng.integers(len(words))]]
  record = {
    "audio_path": f"synthetic/{seed}/{index:06d}.wav",
    "transcription": " ".join(words) + ".",
    "emotion": emotion,
    "gender": ("Male", "Female")[rng.integers(2)],
    "age_level": ("Young Adult", "Middle-aged", "Elderly")[rng.integers(3)],
    "pitch_level": levels["pitch"],
    "energy_level": levels["energy"],
    "speed_level": levels["speed"],
    "intonation": levels["intonation"],
    "stressed_words": stressed,
  }
  if reasoning:
    record["reasoning"] = _reasoning(record, emotion)
  return record


def _reasoning(r: dict, emotion: str) -> str:
  """EmotionCoT's shape: speaker, quote, prosody, then the conclusion."""
  label = {"contempt or disgust": "disgust", "confused": "confusion"}
  word = label.get(emotion, emotion)
  age = r["age_level"].lower()
  article = "An" if age[0] in "aeiou" else "A"
  return (
    f"{article} {age} {r['gender'].lower()} speaker says "
    f'"{r["transcription"][:-1]}", stressing "{r["stressed_words"][0]}". '
    f"The pitch is {r['pitch_level']} and the energy is {r['energy_level']}; "
    f"the pace is {r['speed_level']} with a {r['intonation']} intonation. "
    f"The words are plain, so the voice carries it: {word}."
  )


def audio_path(split: str, index: int) -> str:
  return f"audio/{split}/{index:06d}.wav"


def write_clip(
  root: str, seed: int, job: tuple[str, int, bool]
) -> tuple[str, dict, dict | None]:
  """Renders record job = (split, index, with reasoning) to its WAV under
  `root`; returns (split, its JSONL row, its SFT row or None), with
  `audio_path` relative to `root`. A module function, so make_data's
  spawned workers can import it."""
  split, index, with_reasoning = job
  record = make_record(split_seed(seed, split), index, reasoning=True)
  rel = audio_path(split, index)
  audio_io.write(os.path.join(root, rel), voice.render(record, seed=index))
  row = {k: v for k, v in record.items() if k != "reasoning"}
  row["audio_path"] = rel
  sft = {**row, "reasoning": record["reasoning"]} if with_reasoning else None
  return split, row, sft
