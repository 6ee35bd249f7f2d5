"""Adversarial completions beside honest ones, with the score each must get.

Row gold: labels ['happiness'] and AUs ['AU6', 'AU12'] unless a case says
otherwise; label set basic7.
"""

import numpy as np
import pytest

from emojax.data import facs
from emojax.rewards import REWARDS, combine

HONEST = (
  "<think>cheeks raised (AU6), lip corners pulled up (AU12)</think>"
  "<answer>happiness</answer>"
)
T = "<think>cheeks raised (AU6), lip corners pulled up (AU12)</think>"
SPAM = " ".join(f"AU{n}" for n in facs.AUS)
# format, emotion, au_f1, facs_consistency.
CASES = [
  ("honest", HONEST, None, None, 1, 1, 1, 1),
  ("honest, spaces between", f"  {T}\n <answer>happiness</answer>\n", None,
   None, 1, 1, 1, 1),
  ("adjective form", f"{T}<answer>happy</answer>", None, None, 1, 1, 1, 1),
  ("wrong case and dot", f"{T}<answer>Happy.</answer>", None, None,
   1, 1, 1, 1),
  ("plural", f"{T}<answer>happinesses</answer>", None, None, 1, 1, 1, 1),
  ("AU spellings", "<think>AU06 and R12A</think><answer>happy</answer>",
   None, None, 1, 1, 1, 1),
  ("honest but wrong", f"{T}<answer>sadness</answer>", None, None,
   1, 0, 1, 0),
  ("half the AUs", "<think>AU6 AU4</think><answer>happiness</answer>", None,
   None, 1, 1, 0, 0.5),
  ("empty answer", f"{T}<answer></answer>", None, None, 0, 0, 1, 0),
  ("blank answer", f"{T}<answer>  </answer>", None, None, 0, 0, 1, 0),
  ("empty think", "<think></think><answer>happiness</answer>", None, None,
   0, 1, -1, 0),
  ("two answers", f"{T}<answer>sadness</answer><answer>happiness</answer>",
   None, None, 0, 0, 1, 0),
  ("label list", f"{T}<answer>happiness, sadness</answer>", None, None,
   1, 0, 1, 0),
  ("hedged", f"{T}<answer>happiness or sadness</answer>", None, None,
   1, 0, 1, 0),
  ("negated", f"{T}<answer>not sadness</answer>", None, None, 1, 0, 1, 0),
  ("answer nested in think",
   "<think>AU6 AU12 <answer>happiness</answer></think>"
   "<answer>happiness</answer>", None, None, 0, 0, 1, 0),
  ("think repeated",
   "<think>smiling</think><think>AU6 AU12</think><answer>happy</answer>",
   None, None, 0, 1, -1, 0),
  ("text after answer", f"{HONEST} happy!", None, None, 0, 1, 1, 1),
  ("text before think", f"Sure! {HONEST}", None, None, 0, 1, 1, 1),
  ("unclosed answer", f"{T}<answer>happiness", None, None, 0, 0, 1, 0),
  ("upper-case tags", "<THINK>AU6 AU12</THINK><ANSWER>happiness</ANSWER>",
   None, None, 0, 0, -1, 0),
  ("AU spam", f"<think>{SPAM}</think><answer>happiness</answer>", None,
   None, 1, 1, 2 * 4 / 32 - 1, 0.25),
  ("AUs only outside think",
   "<think>a smile</think><answer>happiness</answer> AU6 AU12", None, None,
   0, 1, -1, 0),
  ("AUs inside the answer",
   "<think>a smile</think><answer>happiness AU6 AU12</answer>", None, None,
   1, 0, -1, 0),
  ("Cyrillic look-alike", f"{T}<answer>h\u0430ppiness</answer>", None, None,
   1, 0, 1, 0),
  ("zero-width space", f"{T}<answer>happi\u200bness</answer>", None, None,
   1, 0, 1, 0),
  ("outside the label set", f"{T}<answer>joy</answer>", None, None,
   1, 0, 1, 0),
  ("row without label", f"{T}<answer>sadness</answer>", [], None,
   1, 0.5, 1, 0),
  ("row without label, bad answer", f"{T}<answer>joy</answer>", [], None,
   1, 0, 1, 0),
  ("row without AUs", HONEST, None, [], 1, 1, 0, 1),
  ("neutral, no diagnostic AU",
   "<think>lips part (AU25)</think><answer>neutral</answer>", ["neutral"],
   [], 1, 1, 0, 1),
]  # fmt: skip
NAMES = ["format", "emotion", "au_f1", "facs_consistency"]


def _examples():
  return {
    "labels": [["happiness"] if c[2] is None else c[2] for c in CASES],
    "AUs": [["AU6", "AU12"] if c[3] is None else c[3] for c in CASES],
    "label_set": "basic7",
  }


def test_table_is_big_enough():
  assert len(CASES) >= 20


@pytest.mark.parametrize("k, name", list(enumerate(NAMES)))
def test_each_case_scores_as_stated(k, name):
  completions = [c[1] for c in CASES]
  got = REWARDS[name](completions, _examples())
  want = np.array([c[4 + k] for c in CASES], np.float64)
  wrong = [
    f"{c[0]}: got {g}, want {w}"
    for c, g, w in zip(CASES, got, want, strict=True)
    if not np.isclose(g, w)
  ]
  assert not wrong, f"{name}: " + "; ".join(wrong)


def test_honest_beats_every_hack_in_total():
  completions = [c[1] for c in CASES]
  total = combine(completions, _examples(), NAMES, 1).sum(-1)[:, 0]
  honest = total[0]
  hacks = [i for i, c in enumerate(CASES) if c[2] is None and c[3] is None]
  assert all(total[i] <= honest for i in hacks)
  assert sum(total[i] == honest for i in hacks) == 6  # The honest variants.


def test_combine_shapes_and_errors():
  completions = [HONEST] * 4
  ex = {"labels": [["happiness"]] * 4, "AUs": [["AU6", "AU12"]] * 4}
  r = combine(completions, ex, ["format", "au_f1"], group_size=2)
  assert r.shape == (2, 2, 2) and (r == 1).all()
  with pytest.raises(KeyError, match="unknown rewards"):
    combine(completions, ex, ["accuracy"], 2)
  with pytest.raises(ValueError, match="groups of 3"):
    combine(completions, ex, ["format"], 3)
