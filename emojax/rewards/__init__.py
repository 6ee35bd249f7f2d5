"""Rewards: host Python over decoded completions, in a name table.

Every entry is `fn(completions: list[str], examples: dict) -> np.ndarray[B]`
with `examples` carrying the rows' fields (`labels`: list[list[str]],
`AUs`: list[list[str]], `text` and `caption`: list[str]) plus, where a
reward needs them, `completion_lengths` (tokens per row), `label_set`,
`group_size`, `step`.

Per-token masks: `SPANS[name](completion) -> (start, end) | None` gives the
character span a reward scores (absent = the whole completion); the trainer
turns it into a token mask with `tags.span_token_mask` and the tokens'
character offsets, then into loss weights with
`emojax.rl.loss.per_reward_token_weights` (Facial-R1's per-reward masks).
"""

from collections.abc import Callable, Sequence

import numpy as np

from emojax.rewards import (
  au,
  confidence,
  consistency,
  emotion,
  length,
  prosody,
  tags,
  trust,
  wheel_f1,
)

RewardFn = Callable[[list[str], dict], np.ndarray]

REWARDS: dict[str, RewardFn] = {
  "format": tags.format_reward,
  "format_context": tags.format_context_reward,
  "emotion": emotion.emotion_reward,
  "set_f1": emotion.set_f1_reward,
  "au_f1": au.au_f1_reward,
  "au_f1_plain": au.au_f1_plain_reward,
  "facs_consistency": consistency.consistency_reward,
  "facs_consistency_intense": consistency.consistency_intense_reward,
  "ew_f1": wheel_f1.make_ew_reward(),
  "confidence": confidence.confidence_reward,
  "length": length.make_length_reward(),
  "overlong": length.make_overlong_reward(),
  "trust_reasoning": trust.make_trust_reward(),
}

SPANS: dict[str, Callable[[str], tuple[int, int] | None]] = {
  "au_f1": tags.think_span,
  "au_f1_plain": tags.think_span,
}


JUDGES = {"facs": trust.RuleJudge, "prosody": prosody.ProsodyJudge}


def configured(cfg) -> dict[str, RewardFn]:
  """REWARDS with the rewards that take settings built from an rl config
  fragment: the length ones (max_completion_length, overlong_max,
  overlong_cache) and trust_reasoning (`trust`: judge and schedule)."""
  table = dict(REWARDS)
  table["length"] = length.make_length_reward(cfg.max_completion_length)
  table["overlong"] = length.make_overlong_reward(*length.overlong_lengths(cfg))
  t = cfg.trust
  table["trust_reasoning"] = trust.make_trust_reward(
    JUDGES[t.judge](),
    schedule=trust.Schedule(t.schedule, t.scale, t.horizon, t.start),
  )
  return table


def combine(
  completions: list[str],
  examples: dict,
  names: Sequence[str],
  group_size: int,
  rewards: dict[str, RewardFn] | None = None,
) -> np.ndarray:
  """rewards_PGR: each named reward, one part per name, rows grouped.

  Weights are applied later (`advantages.compute`'s reward_weights), so
  each part is logged unweighted. `rewards` overrides or extends REWARDS
  (e.g. a trust reward with a model judge).
  """
  table = {**REWARDS, **(rewards or {})}
  unknown = [n for n in names if n not in table]
  if unknown:
    raise KeyError(f"unknown rewards {unknown}; known: {sorted(table)}.")
  b = len(completions)
  if b % group_size:
    raise ValueError(
      f"{b} completions do not split into groups of {group_size}."
    )
  parts = []
  for name in names:
    r = np.asarray(table[name](completions, examples), np.float32)
    if r.shape != (b,):
      raise ValueError(f"reward {name!r} returned shape {r.shape}, not ({b},)")
    parts.append(r)
  return np.stack(parts, -1).reshape(b // group_size, group_size, len(names))
