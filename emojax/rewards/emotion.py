"""Emotion-label rewards: single-label accuracy and multi-label set F1.

Both read the `<answer>` block. They close the hacks peers' users hit: an
empty answer scores 0 (Visual-RFT #176), hedged answers like "A or B" or
"A, B" score 0 for single-label accuracy (Visual-RFT #79), and several
answer blocks score 0 instead of letting the last one win.
"""

import re
import string
import unicodedata
from collections.abc import Sequence

import numpy as np

from emojax.data import facs
from emojax.rewards import tags

_SPLIT = re.compile(r"\s*(?:[,;/|\u3001\uff0c]|\band\b)\s*")


def single_answer(text: str) -> str | None:
  """The contents of the only `<answer>` block, or None if not exactly one."""
  answers = tags.contents(text, "answer")
  return answers[0] if len(answers) == 1 else None


def _row_labels(examples: dict, i: int) -> list[str]:
  return [w for w in examples.get("labels", [[]])[i] if w and w.strip()]


def _allowed(examples: dict, i: int) -> frozenset[str] | None:
  """The row's label set (normalised), or None for 'any known emotion'."""
  label_set = examples.get("label_set")
  if label_set is None:
    return None
  row = label_set if isinstance(label_set, str) else label_set[i]
  words = facs.LABEL_SETS[row] if isinstance(row, str) else row
  return frozenset(facs.normalize_label(w) for w in words)


def predicted_label(text: str, allowed: frozenset[str] | None) -> str | None:
  """The one normalised label the completion answers, or None."""
  answer = single_answer(text)
  label = None if answer is None else facs.normalize_label(answer)
  if label is None or (allowed is not None and label not in allowed):
    return None
  return label


def emotion_reward(completions: list[str], examples: dict) -> np.ndarray:
  """Facial-R1's accuracy, hardened.

  1 if the answer is exactly one emotion word whose normalised noun equals
  the row's first label, else 0; a row with no label scores 0.5 for any
  valid answer (Facial-R1). The answer must be in `examples['label_set']`
  (per-row list of words or a facs.LABEL_SETS key, or one key for all rows)
  when given, else any emotion word facs knows.
  """
  out = np.zeros(len(completions))
  for i, text in enumerate(completions):
    label = predicted_label(text, _allowed(examples, i))
    gold = _row_labels(examples, i)
    if label is None:
      continue
    out[i] = 0.5 if not gold else float(label == facs.normalize_label(gold[0]))
  return out


def label_key(word: str) -> str | None:
  """A comparison key for open-vocabulary words: the facs label noun where
  known, else the NFKC-lowercased ASCII word; None for junk."""
  label = facs.normalize_label(word)
  if label is not None:
    return label
  w = unicodedata.normalize("NFKC", word).strip(string.punctuation + " ")
  w = w.lower()
  ok = w.isascii() and w.replace(" ", "").replace("-", "").isalpha()
  return w if ok else None


def split_labels(answer: str) -> list[str]:
  """'sad, angry and tired' -> ['sad', 'angry', 'tired'] (raw words)."""
  return [w for w in _SPLIT.split(answer.strip()) if w.strip()]


def f1(pred: set, gold: set) -> float:
  """Set F1; 0 when either side is empty."""
  hits = len(pred & gold)
  return 2.0 * hits / (len(pred) + len(gold)) if hits else 0.0


def set_f1_scores(
  pred_words: Sequence[str], gold_words: Sequence[str]
) -> float:
  """F1 between normalised label sets (HumanOmniV2's emer_ov_mc)."""
  pred = {k for w in pred_words if (k := label_key(w))}
  gold = {k for w in gold_words if (k := label_key(w))}
  return f1(pred, gold)


def set_f1_reward(completions: list[str], examples: dict) -> np.ndarray:
  """F1 of the answer's comma-separated labels against the row's labels."""
  out = np.zeros(len(completions))
  for i, text in enumerate(completions):
    answer = single_answer(text)
    if answer is not None:
      out[i] = set_f1_scores(split_labels(answer), _row_labels(examples, i))
  return out
