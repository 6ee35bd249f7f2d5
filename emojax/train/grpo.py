"""One GRPO step: rollout -> rewards -> advantages -> logprobs -> update.

The host orchestrates (rewards are Python over decoded text); every array
step is jitted once per shape: the rollout engine, the old/reference
logprob passes, and the per-micro-batch gradient. Micro-batches share one
global loss denominator computed from the whole batch beforehand, so the
accumulated gradient equals the full-batch one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from emojax import model as model_lib
from emojax import rewards as rewards_lib
from emojax import rollout as rollout_lib
from emojax.model import params as params_lib
from emojax.model import vlm
from emojax.rewards import tags
from emojax.rl import advantages, logprobs, loss, metrics


@dataclasses.dataclass
class Scored:
  """A rollout with its rewards and advantages, rows in [P, G] order."""

  prompts: dict  # host batch of the P prompts (labels, AUs, images, ...)
  rollout: rollout_lib.Rollout
  rewards_PGR: np.ndarray
  adv_PG: np.ndarray


def score(
  prompts, ro, rl, step: int, table, label_set
) -> tuple[np.ndarray, np.ndarray]:
  """rewards_PGR (one part per configured name) and adv_PG."""
  G = rl.group_size
  rows = np.repeat(np.arange(len(prompts["input_ids"])), G)
  examples = {
    "labels": [prompts["labels"][r] for r in rows],
    "AUs": [prompts["AUs"][r] for r in rows],
    "text": [prompts["text"][r] for r in rows],
    "caption": [prompts["caption"][r] for r in rows],
    "label_set": [tuple(label_set)] * len(rows),
    "completion_lengths": np.asarray(ro.lengths),
    "group_size": G,
    "step": step,
  }
  rewards_PGR = rewards_lib.combine(
    list(ro.text), examples, list(rl.reward_names), G, table
  )
  adv_PG = np.asarray(advantages.run(jnp.asarray(rewards_PGR), rl))
  return rewards_PGR, adv_PG


def train_batch(scored: Scored) -> dict:
  """The rollout in the shared-prompt layout of `emojax.model.prefix`.

  `prompt` holds the P prompts once (host batch, images included) as the
  engine fed them (left-aligned ids and mask), `completion_ids` and
  `completion_mask` the B = P*G completions.
  """
  ro = scored.rollout
  G = ro.num_generations
  prompt = dict(scored.prompts)
  prompt["input_ids"] = np.asarray(ro.prompt_ids)[::G]
  prompt["attention_mask"] = np.asarray(ro.prompt_mask)[::G]
  return {
    "prompt": prompt,
    "completion_ids": np.asarray(ro.completion_ids),
    "completion_mask": np.asarray(ro.completion_mask),
  }


def token_weights(
  scored: Scored, rl, decode_piece: Callable
) -> np.ndarray | None:
  """Facial-R1's per-reward token masks as loss weights, or None."""
  masks = rl.get("token_masks")
  if not masks:
    return None
  ro = scored.rollout
  ids_BC = np.asarray(ro.completion_ids)
  mask_BC = np.asarray(ro.completion_mask)
  per_reward = []
  for kind in masks:
    if kind == "all":
      per_reward.append(mask_BC.astype(bool))
      continue
    rows = []
    for b, text in enumerate(ro.text):
      offsets = _char_offsets(ids_BC[b], int(ro.lengths[b]), decode_piece)
      span = tags.think_span(text) if kind == "think" else None
      rows.append(tags.span_token_mask(span, offsets))
    per_reward.append(np.stack(rows))
  return np.asarray(
    loss.per_reward_token_weights(jnp.asarray(np.stack(per_reward)), mask_BC)
  )


def _char_offsets(ids_C, length: int, decode_piece) -> np.ndarray:
  """(start, end) characters of each token in the decoded completion."""
  out, end = np.zeros((len(ids_C), 2), np.int64), 0
  for t in range(length):
    start, end = end, len(decode_piece(list(ids_C[: t + 1])))
    out[t] = (start, end)
  out[length:] = end
  return out


@functools.partial(jax.jit, static_argnames=("cfg", "start", "temperature"))
def policy_logprobs(params, batch, *, cfg, start=None, temperature=1.0):
  """Per-token logprobs of the completion under `params` (no gradient), of
  the tempered policy the rollout sampled from (TRL divides logits by the
  sampling temperature for old, reference and new logprobs alike). `batch`
  and `start` as in `logprobs.completion_logprobs`."""
  logp_BC, _ = logprobs.completion_logprobs(
    params, cfg, batch, start, temperature=temperature
  )
  return logp_BC


@functools.partial(
  jax.jit, static_argnames=("cfg", "start", "rl_static", "frozen")
)
def grads(
  params, batch, inputs, *, cfg, rl_static, start=None, frozen=(False,)
):
  """Gradient of one micro-batch's share of the GRPO loss; `frozen` as in
  `sft.grads`."""
  rl = dict(rl_static)

  def loss_fn(p):
    if cfg.vision is not None:
      p = vlm.stop_frozen(p, *frozen)
    logp_BC, entropy_BC = logprobs.completion_logprobs(
      p, cfg, batch, start, temperature=rl["temperature"]
    )
    _, m = loss.grpo_loss(
      logp_BC,
      inputs.get("old_logp"),
      inputs.get("ref_logp"),
      inputs["adv"],
      inputs["mask"],
      rl,
      token_weights_BT=inputs.get("token_weights"),
      sample_weights_B=inputs.get("sample_weights"),
      entropy_BT=entropy_BC,
      kl_weight=inputs.get("kl_weight"),
    )
    return m["numerator"] / inputs["denominator"], m

  (value, m), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return params_lib.constrain(g, model_lib.specs(cfg)), value, m


def denominator(rl, mask_BC: np.ndarray) -> float:
  """The loss type's normaliser over the whole accumulated batch."""
  kind = rl.loss_type
  if kind == "grpo":
    return float(len(mask_BC))
  if kind == "dr_grpo":
    return float(len(mask_BC) * mask_BC.shape[1])
  return float(max(mask_BC.sum(), 1))


def static_rl(rl) -> tuple:
  """The loss fields as a hashable tuple (a static jit argument)."""
  keys = (
    "loss_type",
    "epsilon",
    "epsilon_high",
    "delta",
    "dual_clip",
    "importance_sampling_level",
    "beta",
    "kl_estimator",
    "entropy_coef",
    "temperature",
  )
  return tuple((k, rl.get(k)) for k in keys)


def grpo_metrics(scored: Scored, rl) -> dict[str, Any]:
  ro = scored.rollout
  out = metrics.reward_metrics(
    jnp.asarray(scored.rewards_PGR), list(rl.reward_names), rl
  )
  out.update(metrics.completion_metrics(ro.lengths, ro.truncated))
  return {k: float(v) for k, v in out.items()}
