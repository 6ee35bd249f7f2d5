"""Length rewards, counted in tokens.

Token counts come from `examples['completion_lengths']` (one int per row);
Tunix's overlong penalty counts string characters instead, which is wrong
for any tokenizer.
"""

import numpy as np


def _lengths(examples: dict, n: int) -> np.ndarray:
  if "completion_lengths" not in examples:
    raise KeyError(
      "length rewards need examples['completion_lengths'] (tokens per "
      "completion); the trainer adds it from the rollout mask."
    )
  lengths = np.asarray(examples["completion_lengths"], np.float64)
  if lengths.shape != (n,):
    raise ValueError(
      f"completion_lengths has shape {lengths.shape}, expected ({n},)."
    )
  return lengths


def overlong_lengths(cfg) -> tuple[int, int]:
  """(overlong_max, overlong_cache) of an rl config, defaults resolved."""
  max_len = cfg.get("overlong_max") or cfg.max_completion_length
  cache = cfg.get("overlong_cache")
  return max_len, max_len // 4 if cache is None else cache


def overlong_penalty(
  lengths: np.ndarray, max_len: int, cache_len: int
) -> np.ndarray:
  """DAPO's soft overlong punishment: 0 up to max_len - cache_len, then a
  linear ramp to -1 at max_len, -1 beyond."""
  budget = max_len - cache_len
  ramp = (budget - lengths) / max(cache_len, 1)
  return np.where(lengths <= budget, 0.0, np.maximum(ramp, -1.0))


def make_overlong_reward(max_len: int = 2048, cache_len: int = 512):
  """A reward fn applying `overlong_penalty` with these lengths."""

  def overlong_reward(completions: list[str], examples: dict) -> np.ndarray:
    lengths = _lengths(examples, len(completions))
    return overlong_penalty(lengths, max_len, cache_len)

  return overlong_reward


def make_length_reward(max_len: int = 2048):
  """A reward fn giving -tokens / max_len: a mild push to be concise."""

  def length_reward(completions: list[str], examples: dict) -> np.ndarray:
    return -_lengths(examples, len(completions)) / max_len

  return length_reward
