"""EmoCaliber's calibration reward over a verbalised `<confidence>`.

Transcribes EmoCaliber `train/cus_reward.py` (METHODS.md section 6): with
every tag present (each exactly once here, so repeats cannot hedge), the
five sub-tags inside `<think>` and 0 < c < 1, let i = 1[the answer is one
word equal to the label, lowercased, punctuation removed]; the score is
1 + i + 2 * (i * ln c + (1 - i) * ln(1 - c)). Otherwise -5.
"""

import math
import string

import numpy as np

from emojax.rewards import tags

SUBTAGS = ("element", "human", "context", "interaction", "analysis")
_BAD = -5.0


def _plain(text: str) -> str:
  return text.lower().translate(str.maketrans("", "", string.punctuation))


def _once(text: str, tag: str) -> bool:
  return text.count(f"<{tag}>") == 1 and text.count(f"</{tag}>") == 1


def confidence_score(text: str, gold: str) -> float:
  """The EmoCaliber score of one completion."""
  if not all(_once(text, t) for t in ("think", "answer", "confidence")):
    return _BAD
  think = tags.contents(text, "think")
  if not think or not all(_once(think[0], t) for t in SUBTAGS):
    return _BAD
  answer = tags.contents(text, "answer")
  conf = tags.contents(text, "confidence")
  if not answer or not conf:
    return _BAD
  try:
    c = float(conf[0].strip())
  except ValueError:
    return _BAD
  if not 0.0 < c < 1.0:
    return _BAD
  words = _plain(answer[0]).split()
  i = float(len(words) == 1 and words[0] == _plain(gold).strip())
  return 1.0 + i + 2.0 * (i * math.log(c) + (1.0 - i) * math.log(1.0 - c))


def confidence_reward(completions: list[str], examples: dict) -> np.ndarray:
  """`confidence_score` against each row's first label."""
  golds = [(labels or [""])[0] for labels in examples["labels"]]
  pairs = zip(completions, golds, strict=True)
  return np.array([confidence_score(c, g) for c, g in pairs])
