"""Trust-weighted reasoning reward (GRPO-PTR / SophiaVL-R1 Trust-GRPO).

Transcribes SophiaVL-R1 `verl/workers/reward/custom.py` (METHODS.md section
5): per group, mu_c and mu_w are the mean judge scores of correct
(answer >= 0.5) and wrong completions; the weight is w(step), times
exp(mu_c - mu_w) when mu_c < mu_w and some completion is correct; the judge
runs only where answer >= 0.2 (else its score is 0). This part returns
weight * judge; the answer reward is its own part, so the sum is
SophiaVL's `answer + disc * think`.

Schedules: 'anneal' is SophiaVL's w = 0.3 * exp(-step / T); 'progressive'
is EmotionThinker's reasoning reward introduced over training, UNVERIFIED
form w = 0.3 * clip((step - start) / T, 0, 1).
"""

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Protocol

import numpy as np

from emojax.data import facs
from emojax.rewards import tags
from emojax.rewards.au import think_aus
from emojax.rewards.emotion import emotion_reward, f1

RewardFn = Callable[[list[str], dict], np.ndarray]


class Judge(Protocol):
  """Scores the reasoning of each completion in [0, 1]."""

  def __call__(self, completions: list[str], examples: dict) -> np.ndarray: ...


_HEDGE = re.compile(r"\b(?:no|not|without|maybe|perhaps|might)\b", re.I)


class RuleJudge:
  """A judge without a model: mean of (a) F1 of AUs named in `<think>`
  against the row's AUs (1 when the row has none), (b) no negations or
  hedges (Facial-R1's prompt bans them), (c) a non-empty think block."""

  def __call__(self, completions: list[str], examples: dict) -> np.ndarray:
    scores = []
    for i, text in enumerate(completions):
      think = tags.contents(text, "think")
      body = think[0] if think else ""
      rows = examples.get("AUs", [[]] * len(completions))
      gold = {facs.canonical_au(a) for a in rows[i]}
      au = f1(think_aus(text), gold)
      parts = (au if gold else 1.0, float(not _HEDGE.search(body)))
      scores.append((sum(parts) + float(bool(body.strip()))) / 3.0)
    return np.array(scores)


SCHEDULES = ("anneal", "progressive")


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Weight of the reasoning reward over training steps."""

  kind: str = "anneal"  # 'anneal' (SophiaVL) or 'progressive'.
  scale: float = 0.3  # SophiaVL's initial weight.
  horizon: float = 1000.0  # T, in steps.
  start: float = 0.0  # 'progressive': step where the ramp begins.

  def __call__(self, step: int) -> float:
    if self.kind == "anneal":
      return self.scale * math.exp(-step / self.horizon)
    if self.kind == "progressive":
      ramp = (step - self.start) / self.horizon
      return self.scale * min(max(ramp, 0.0), 1.0)
    raise ValueError(f"Schedule.kind={self.kind!r}; use anneal|progressive.")


def make_trust_reward(
  judge: Judge | None = None,
  answer_fn: RewardFn = emotion_reward,
  schedule: Schedule = Schedule(),
) -> RewardFn:
  """A reward fn; needs examples['group_size'] and examples['step']."""
  judge = judge or RuleJudge()

  def trust_reasoning_reward(
    completions: list[str], examples: dict
  ) -> np.ndarray:
    g = int(examples["group_size"])
    answer_B = answer_fn(completions, examples)
    ask = [i for i, a in enumerate(answer_B) if a >= 0.2]
    think_B = np.zeros(len(completions))
    if ask:
      sub = {k: _take(v, ask, len(completions)) for k, v in examples.items()}
      think_B[ask] = judge([completions[i] for i in ask], sub)
    return trust_weights(answer_B, think_B, g, schedule(examples["step"]))

  return trust_reasoning_reward


def _take(value, rows, n):
  if isinstance(value, (list, tuple, np.ndarray)) and len(value) == n:
    return [value[i] for i in rows]
  return value


def trust_weights(
  answer_B: np.ndarray, think_B: np.ndarray, group_size: int, weight: float
) -> np.ndarray:
  """weight * trust * think_B, trust from each group's correct/wrong means."""
  answer_PG = answer_B.reshape(-1, group_size)
  think_PG = think_B.reshape(-1, group_size)
  out_PG = np.zeros_like(think_PG)
  for p in range(answer_PG.shape[0]):
    right = answer_PG[p] >= 0.5
    disc = weight
    if right.any() and (~right).any():
      mu_c, mu_w = think_PG[p][right].mean(), think_PG[p][~right].mean()
      if mu_c < mu_w:
        disc *= math.exp(mu_c - mu_w)
    out_PG[p] = disc * think_PG[p]
  return out_PG.reshape(-1)
