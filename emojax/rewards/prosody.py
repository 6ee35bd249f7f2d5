"""A rule judge of speech-emotion reasoning against the clip's prosody cues.

EmotionThinker scores reasoning with a reward model over several criteria
(METHODS.md section 5; its criteria and model are UNVERIFIED). Without a
model, this judge checks what EmotionCoT's reasoning is written to do
(`EmotionCoT/pipeline/api_call.py`'s template): discuss the prosody it
hears (pitch, energy, speed, intonation) and the speaker profile, and
quote the transcription. Its score in [0, 1] is the mean of

  (a) F1 of the (cue, level) claims the `<think>` text makes against the
      row's known cues (`emojax.data.prosody`, from the row's caption);
      claims about a cue the row has no reading of are not counted, and
      a wrong level counts against precision as a made-up AU does in
      Facial-R1's AU F1;
  (b) 1 if `<think>` quotes the transcription (a quoted span of at least
      two words, or the whole of a shorter transcript, found in it), or
      the row has no transcription; else 0.

An empty `<think>` scores 0.
"""

import re

import numpy as np

from emojax.data import prosody
from emojax.rewards import tags
from emojax.rewards.emotion import f1

# Words that name a cue, and the words that give its level. A level word
# counts for the nearest cue word in its sentence, within _WINDOW words.
_CUE_WORDS = {
  "pitch": ("pitch", "pitched"),
  "energy": ("energy", "loudness", "volume", "intensity"),
  "speed": ("speed", "pace", "rate", "tempo"),
  "intonation": ("intonation", "contour", "inflection", "melody"),
}
_HIGH_LOW = {
  "high": ("high", "higher", "raised", "elevated", "heightened"),
  "low": ("low", "lower", "lowered", "subdued", "deep"),
  "normal": ("normal", "moderate", "average", "medium"),
}
_LEVEL_WORDS = {
  "pitch": _HIGH_LOW,
  "energy": _HIGH_LOW,
  "speed": {
    "fast": ("fast", "quick", "rapid", "hurried", "brisk"),
    "slow": ("slow", "slowed", "sluggish", "unhurried"),
    "normal": ("normal", "moderate", "average", "medium", "steady"),
  },
  "intonation": {
    "rising-falling": ("rising-falling", "rise-fall"),
    "falling-rising": ("falling-rising", "fall-rise"),
    "rising": ("rising", "rises", "upward"),
    "falling": ("falling", "falls", "downward"),
    "flat": ("flat", "monotone", "monotonous"),
    "expressive": ("expressive", "varied", "animated"),
  },
}
# Speaker traits are claimed anywhere in the text ("a middle-aged female
# speaker"), so they are whole-word or whole-phrase matches.
_SPEAKER_WORDS = {
  "gender": {
    "female": ("female", "woman", "lady", "girl"),
    "male": ("male", "man", "gentleman", "boy"),
  },
  "age": {
    "child": ("child", "kid"),
    "teenager": ("teenager", "teen", "adolescent"),
    "young adult": ("young adult", "young"),
    "middle-aged": ("middle-aged", "middle aged"),
    "elderly": ("elderly", "older", "old", "senior"),
  },
}
_WINDOW = 4
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*")
_QUOTE = re.compile(r"[\"\u201c\u201d']([^\"\u201c\u201d]+?)[\"\u201c\u201d']")


def _normal(text: str) -> str:
  return " ".join(_TOKEN.findall(text.lower()))


def level_claims(think: str) -> set[tuple[str, str]]:
  """(cue, level) pairs the text asserts, e.g. ('pitch', 'high')."""
  claims = set()
  for sentence in _SENTENCE.split(think.lower()):
    words = _TOKEN.findall(sentence)
    for cue, names in _CUE_WORDS.items():
      at = [i for i, w in enumerate(words) if w in names]
      for i in at:
        near = _nearest_level(words, i, _LEVEL_WORDS[cue])
        if near:
          claims.add((cue, near))
  text = f" {_normal(think)} "
  for cue, levels in _SPEAKER_WORDS.items():
    for lvl, forms in levels.items():
      if any(f" {f} " in text for f in forms):
        claims.add((cue, lvl))
  return claims


def _nearest_level(words, i, levels) -> str | None:
  best, best_d = None, _WINDOW + 1
  for j in range(max(0, i - _WINDOW), min(len(words), i + _WINDOW + 1)):
    for lvl, forms in levels.items():
      if words[j] in forms and abs(j - i) < best_d:
        best, best_d = lvl, abs(j - i)
  return best


def quotes_transcript(think: str, transcript: str) -> bool:
  """Whether a quoted span of `think` (two words or more, or the whole of a
  shorter transcript) occurs in the transcript."""
  said = f" {_normal(transcript)} "
  if not said.strip():
    return True
  need = min(2, len(said.split()))
  for span in _QUOTE.findall(think):
    words = _normal(span)
    if len(words.split()) >= need and f" {words} " in said:
      return True
  return False


class ProsodyJudge:
  """Scores each completion's `<think>` against its row's caption cues
  (examples['caption']) and transcription (examples['text'])."""

  def __call__(self, completions: list[str], examples: dict) -> np.ndarray:
    n = len(completions)
    captions = examples.get("caption") or [""] * n
    texts = examples.get("text") or [""] * n
    scores = np.zeros(n)
    for i, completion in enumerate(completions):
      think = tags.contents(completion, "think")
      body = think[0] if think else ""
      if not body.strip():
        continue
      gold = set(prosody.parse_caption(captions[i]).levels().items())
      known = {cue for cue, _ in gold}
      claims = {c for c in level_claims(body) if c[0] in known}
      cues = f1(claims, gold) if gold else 1.0
      scores[i] = (cues + float(quotes_transcript(body, texts[i]))) / 2.0
    return scores
