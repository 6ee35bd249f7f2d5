"""What the rollout engine returns: completions, masks and logprobs.

Rows are `B = P * G`, prompt-major (row `p * G + g` is sample g of prompt
p), so `x.reshape(P, G, ...)` is the group view GRPO needs; `group` does it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax


@functools.partial(
  jax.tree_util.register_dataclass,
  data_fields=[
    "prompt_ids",
    "prompt_mask",
    "completion_ids",
    "completion_mask",
    "logprobs",
    "shaped_logprobs",
    "lengths",
    "truncated",
  ],
  meta_fields=["num_generations", "text"],
)
@dataclasses.dataclass(frozen=True)
class Rollout:
  """G completions per prompt; field names follow TRL's.

  prompt_ids, prompt_mask: `[B, Tp]` int32, the left-padded prompts each
    row was generated from (repeated G times), for the trainer's forward.
  completion_ids: `[B, T]` int32; the stop token is included, and slots
    after it (or past `lengths`) hold the pad id.
  completion_mask: `[B, T]` int32, 1 on generated tokens (stop included).
  logprobs: `[B, T]` float32, log p of each sampled token under the raw
    policy (log_softmax of the logits, before any shaping); 0 where masked.
  shaped_logprobs: `[B, T]` float32, the same under the distribution
    actually sampled from (temperature, top-k, top-p; 0 for greedy).
  lengths: `[B]` int32, generated tokens per row.
  truncated: `[B]` bool, True where no stop token came within the budget.
  num_generations: G.
  text: the decoded completions (B strings) when a decoder was given.
  """

  prompt_ids: jax.Array
  prompt_mask: jax.Array
  completion_ids: jax.Array
  completion_mask: jax.Array
  logprobs: jax.Array
  shaped_logprobs: jax.Array
  lengths: jax.Array
  truncated: jax.Array
  num_generations: int = 1
  text: tuple[str, ...] | None = None

  def group(self, x_B: jax.Array) -> jax.Array:
    """`[B, ...]` -> `[P, G, ...]`."""
    G = self.num_generations
    return x_B.reshape(x_B.shape[0] // G, G, *x_B.shape[1:])
