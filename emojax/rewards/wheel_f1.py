"""ew_f1: emotion-wheel F1 of open-vocabulary answers (AffectGPT-R1).

The per-sample EW F1 (`emojax.data.wheel.ew_scores`, mean of level1 and
level2 unless set) times a length penalty when the answer lists more labels
than the gold, against label spamming. Penalties, with n = predicted and
m = gold label counts, applied only when n > m (third-party AffectGPT-R1
re-implementation, METHODS.md section 4): P1 = 1 / (n - m + 1),
P2 = m / n, P3 = log m / log n (0 when m = 1).
"""

import math

import numpy as np

from emojax.data import wheel
from emojax.rewards.emotion import single_answer, split_labels


def length_penalty(n_pred: int, n_gold: int, kind: str = "p3") -> float:
  """Multiplier in [0, 1] for predicting n_pred labels against n_gold."""
  if n_pred <= n_gold:
    return 1.0
  if kind == "p1":
    return 1.0 / (n_pred - n_gold + 1)
  if kind == "p2":
    return n_gold / n_pred
  if kind == "p3":
    return math.log(n_gold) / math.log(n_pred) if n_gold > 0 else 0.0
  raise ValueError(f"length penalty {kind!r}; choose p1, p2 or p3.")


def make_ew_reward(levels=wheel.LEVELS, penalty="p3", wheels=None):
  """A reward fn: EW F1 averaged over `levels`, times `penalty`."""

  def ew_f1_reward(completions: list[str], examples: dict) -> np.ndarray:
    out = np.zeros(len(completions))
    for i, text in enumerate(completions):
      answer = single_answer(text)
      gold = list(examples["labels"][i])
      if answer is None or not gold:
        continue
      pred = split_labels(answer)
      scores = [wheel.ew_scores(pred, gold, lv, wheels) for lv in levels]
      f = np.mean([s["f1"] if s else 0.0 for s in scores])
      n_pred = len({w.strip().lower() for w in pred})
      out[i] = f * length_penalty(n_pred, len(set(gold)), penalty)
    return out

  return ew_f1_reward
