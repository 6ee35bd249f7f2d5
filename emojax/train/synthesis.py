"""Facial-R1 stage 3's verifier: does an output state exactly the truth?

Checks (METHODS.md section 1, `infer_emotion.py`): the set of AUs named
anywhere in the output equals the ground-truth set; the answered labels
equal the ground-truth labels; `<think>` and `<answer>` are present and
non-empty, once each. The issues are phrased as Facial-R1's retry prompt
expects them.
"""

from __future__ import annotations

from collections.abc import Sequence

from emojax.data import facs
from emojax.rewards import tags
from emojax.rewards.emotion import label_key, split_labels


def issues(text: str, aus: Sequence[str], labels: Sequence[str]) -> list[str]:
  """What is wrong with `text` (empty when it passes)."""
  out = []
  if not tags.is_think_answer(text):
    out.append(
      "The response must contain one non-empty <think>...</think> followed "
      "by one non-empty <answer>...</answer>"
    )
  gold_aus = {facs.canonical_au(a) for a in aus}
  if gold_aus and facs.au_set(text) != gold_aus:
    out.append(f"The predicted AUs must be: {sorted(gold_aus)}")
  gold = {label_key(w) for w in labels} - {None}
  answers = tags.contents(text, "answer")
  said = {label_key(w) for w in split_labels(answers[-1])} if answers else set()
  if gold and said != gold:
    out.append(f"The emotion label must be: {sorted(labels)}")
  return out
