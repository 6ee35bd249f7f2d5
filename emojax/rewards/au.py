"""Action-unit rewards: F1 of the AUs the reasoning names (Facial-R1).

AUs count only inside the first `<think>` block, as in Facial-R1; the
per-token mask of these rewards is that block (`tags.think_span`).
"""

import numpy as np

from emojax.data import facs
from emojax.rewards import tags
from emojax.rewards.emotion import f1


def think_aus(text: str) -> frozenset[str]:
  """Canonical AUs named inside the first `<think>` block."""
  span = tags.think_span(text)
  return facs.au_set(text[span[0] : span[1]]) if span else frozenset()


def _gold(examples: dict, i: int) -> frozenset[str]:
  return frozenset(facs.canonical_au(a) for a in examples["AUs"][i])


def au_f1_reward(completions: list[str], examples: dict) -> np.ndarray:
  """Facial-R1's R_AU = 2*F1 - 1 in [-1, 1].

  0 when the row has no AUs; -1 when the reasoning names none.
  """
  out = np.zeros(len(completions))
  for i, text in enumerate(completions):
    gold, pred = _gold(examples, i), think_aus(text)
    if gold:
      out[i] = 2.0 * f1(pred, gold) - 1.0 if pred else -1.0
  return out


def au_f1_plain_reward(completions: list[str], examples: dict) -> np.ndarray:
  """Plain F1 in [0, 1]; 0 when the row has no AUs or none are named."""
  return np.array(
    [f1(think_aus(c), _gold(examples, i)) for i, c in enumerate(completions)]
  )
