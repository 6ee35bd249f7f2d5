"""The GRPO stage: rollouts on label-only rows, verifiable rewards, updates.

Each step draws P prompts, samples G completions each, scores them with the
configured rewards, and takes `num_iterations` optimiser steps on the P*G
rows. Dynamic sampling (DAPO) replaces groups whose rewards do not vary
with groups from further draws, a bounded number of times.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from emojax import rewards as rewards_lib
from emojax import sharding
from emojax.model import vlm
from emojax.rl import advantages, loss
from emojax.rl.weights import au_rarity_weights
from emojax.rollout import Rollout
from emojax.train import batching, data, generation, grpo, optim
from emojax.train.run import Run, Stage


def _rarity(run: Run) -> dict[tuple[str, int], float]:
  """Facial-R1's AU-rarity weight of every train row, by (source, line)."""
  source = run.data.as_data_source("train")
  rows = [source[i] for i in range(len(source))]
  aus = [
    [a.decode() if isinstance(a, bytes) else a for a in r["AUs"]] for r in rows
  ]
  w = au_rarity_weights(aus)
  return {
    (_text(r["source"]), int(r["line"])): float(x)
    for r, x in zip(rows, w, strict=True)
  }


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def _pad_left(x: np.ndarray, width: int, value: int) -> np.ndarray:
  pad = width - x.shape[1]
  return np.pad(x, ((0, 0), (pad, 0)), constant_values=value) if pad else x


def merge(
  cfg, parts: list[grpo.Scored], groups: list[np.ndarray]
) -> grpo.Scored:
  """The chosen groups of several scored draws as one [P, G] batch."""
  G = parts[0].rollout.num_generations
  width = max(p.rollout.prompt_ids.shape[1] for p in parts)
  fields, prompts, rewards, adv, text = {}, [], [], [], []
  for part, keep in zip(parts, groups, strict=True):
    rows = (keep[:, None] * G + np.arange(G)[None]).reshape(-1)
    ro = part.rollout
    for f in dataclasses.fields(Rollout):
      if f.name in ("num_generations", "text"):
        continue
      x = np.asarray(getattr(ro, f.name))[rows]
      if f.name in ("prompt_ids", "prompt_mask"):
        x = _pad_left(
          x, width, cfg.pad_token_id if f.name == "prompt_ids" else 0
        )
      fields.setdefault(f.name, []).append(x)
    prompts.append(batching.take_rows(cfg, part.prompts, keep))
    rewards.append(part.rewards_PGR[keep])
    adv.append(part.adv_PG[keep])
    text += [ro.text[r] for r in rows]
  ro = Rollout(
    **{k: np.concatenate(v) for k, v in fields.items()},
    num_generations=G,
    text=tuple(text),
  )
  merged = {}
  for p in prompts:
    for k, v in p.items():
      merged.setdefault(k, []).append(v)
  host = {
    k: (sum(v, []) if isinstance(v[0], list) else np.concatenate(v))
    for k, v in merged.items()
  }
  return grpo.Scored(host, ro, np.concatenate(rewards), np.concatenate(adv))


def build(run: Run, index: int, params, restored) -> Stage:
  rl, cfg = run.config.rl, run.model_cfg
  trainable = None
  if cfg.vision is not None:
    trainable = vlm.trainable_mask(params, run.config.model.freeze_vision)
  # Each rollout batch makes num_iterations updates: the schedule counts
  # updates (as TRL's does), or mu > 1 would finish its decay early.
  tx = optim.make(rl.optim, rl.steps * rl.num_iterations, trainable)
  if restored is None:
    state = optim.init_state(params, tx)
    ref = jax.tree.map(jnp.copy, params) if rl.beta else None
  else:
    state, ref = restored[0], restored[2]
  it = data.iterator(
    run.data.as_data_source("train"),
    run.tokenizer,
    cfg,
    run.config.data,
    mode="rollout",
    batch_size=rl.prompts_per_step,
    seed=run.config.seed * 1000 + index,
  )
  if restored is not None:
    it.set_state(restored[1]["data"])
  table = rewards_lib.configured(rl)
  rarity = _rarity(run) if rl.au_rarity_weights else None
  apply = jax.jit(functools.partial(optim.update, tx=tx), donate_argnums=0)
  holder = {"state": state, "ref": ref}
  decode = functools.partial(run.tokenizer.decode, skip_special_tokens=True)

  def draw(i: int, attempt: int) -> grpo.Scored:
    prompts = next(it)
    ro = generation.generate(
      run,
      holder["state"].params,
      prompts,
      run.key(index, i, attempt),
      num_generations=rl.group_size,
      max_new_tokens=rl.max_completion_length,
      temperature=rl.temperature,
      top_p=rl.top_p,
      top_k=rl.top_k,
    )
    rewards_PGR, adv_PG = grpo.score(
      prompts, ro, rl, i, table, run.config.data.emotions
    )
    return grpo.Scored(prompts, ro, rewards_PGR, adv_PG)

  def step(i: int) -> dict:
    scored, extra = _dynamic_sample(draw, i, rl, cfg)
    out = _update(run, holder, apply, scored, i, rarity, decode)
    out.update(grpo.grpo_metrics(scored, rl))
    out.update(extra)
    if (
      rl.ref_sync_every
      and (i + 1) % rl.ref_sync_every == 0
      and holder["ref"] is not None
    ):
      holder["ref"] = jax.tree.map(jnp.copy, holder["state"].params)
    if rl.log_completions_every and i % rl.log_completions_every == 0:
      _log_completions(run, index, scored)
    return out

  def state_tree():
    tree = {"train": holder["state"]}
    if holder["ref"] is not None:
      tree["ref"] = holder["ref"]
    return tree

  return Stage(
    index=index,
    name="grpo",
    num_steps=rl.steps,
    step=step,
    state=state_tree,
    progress=lambda: {"data": it.get_state()},
  )


def _dynamic_sample(draw, i: int, rl, cfg):
  """The step's scored batch, zero-variance groups refilled if configured."""
  first = draw(i, 0)
  if not rl.dynamic_sampling:
    return first, {}
  P = rl.prompts_per_step
  zero = np.asarray(
    advantages.zero_variance_groups(jnp.asarray(first.rewards_PGR), rl)
  )
  parts, keeps = [first], [np.flatnonzero(~zero)]
  retries = 0
  while (
    sum(len(k) for k in keeps) < P and retries < rl.dynamic_sampling_retries
  ):
    retries += 1
    more = draw(i, retries)
    z = np.asarray(
      advantages.zero_variance_groups(jnp.asarray(more.rewards_PGR), rl)
    )
    need = P - sum(len(k) for k in keeps)
    parts.append(more)
    keeps.append(np.flatnonzero(~z)[:need])
  short = P - sum(len(k) for k in keeps)
  if short:  # out of retries: fill with zero-variance groups (advantage 0)
    keeps[0] = np.sort(np.concatenate([keeps[0], np.flatnonzero(zero)[:short]]))
  scored = merge(cfg, parts, keeps)
  return scored, {
    "dynamic_sampling/retries": float(retries),
    "dynamic_sampling/zero_std_kept": float(short),
  }


def _update(run: Run, holder, apply, scored: grpo.Scored, i, rarity, decode):
  rl, cfg = run.config.rl, run.model_cfg
  batch = grpo.train_batch(scored)
  ro = scored.rollout
  mask_BC = np.asarray(ro.completion_mask).astype(np.float32)
  if rl.mask_truncated_completions:
    mask_BC = mask_BC * ~np.asarray(ro.truncated)[:, None]
  inputs = {
    "adv": scored.adv_PG.reshape(-1).astype(np.float32),
    "mask": mask_BC,
  }
  weights = grpo.token_weights(scored, rl, decode)
  if weights is not None:
    inputs["token_weights"] = weights.astype(np.float32)
  if rarity is not None:
    keys = zip(scored.prompts["source"], scored.prompts["line"], strict=True)
    weights_P = [rarity.get((_text(s), int(n)), 1.0) for s, n in keys]
    inputs["sample_weights"] = np.repeat(
      np.array(weights_P, np.float32), ro.num_generations
    )
  if rl.beta:
    inputs["kl_weight"] = np.float32(loss.beta_at(rl, i, rl.steps))
  denominator = grpo.denominator(rl, mask_BC)
  parts = list(_micro(cfg, batch, inputs, rl.micro_batch_size, run))
  with sharding.use_rules(run.mesh, run.rules):
    for part_rows, part_in in parts:
      if rl.num_iterations > 1:
        part_in["old_logp"] = grpo.policy_logprobs(
          holder["state"].params,
          part_rows,
          cfg=cfg,
          temperature=rl.temperature,
        )
      if rl.beta:
        part_in["ref_logp"] = grpo.policy_logprobs(
          holder["ref"],
          part_rows,
          cfg=cfg,
          temperature=rl.temperature,
        )
    metrics = {}
    for _ in range(rl.num_iterations):
      total, sums = None, {}
      for part_rows, part_in in parts:
        g, value, m = grpo.grads(
          holder["state"].params,
          part_rows,
          dict(part_in, denominator=np.float32(denominator)),
          cfg=cfg,
          rl_static=grpo.static_rl(rl),
          frozen=(run.config.model.freeze_vision,),
        )
        total = g if total is None else jax.tree.map(jnp.add, total, g)
        sums["loss"] = sums.get("loss", 0.0) + float(value)
        for k in (
          "kl",
          "entropy",
          "clip_ratio/region_mean",
          "clip_ratio/low_mean",
          "clip_ratio/high_mean",
        ):
          if k in m:
            sums[k] = sums.get(k, 0.0) + float(m[k]) / len(parts)
      holder["state"], gnorm = apply(holder["state"], total)
      metrics = dict(sums, grad_norm=float(gnorm))
  return metrics


def _micro(cfg, batch: dict, inputs: dict, size: int, run: Run):
  """(device batch, inputs) per micro-batch of whole groups of rows."""
  ids_BC = batch["completion_ids"]
  B = len(ids_BC)
  G = B // len(batch["prompt"]["input_ids"])
  size = size or B  # a multiple of G (validate.py)
  for s in range(0, B, size):
    idx = np.arange(s, min(s + size, B))
    prompts = batching.take_rows(cfg, batch["prompt"], idx[::G] // G)
    part = {
      # bucket=0: the prompts' last column must stay their last token.
      "prompt": batching.device_batch(cfg, prompts, bucket=0),
      "completion_ids": ids_BC[idx],
      "completion_mask": batch["completion_mask"][idx],
    }
    part = batching.place(part, run.mesh, run.rules)
    part_in = {
      k: (v[idx] if isinstance(v, np.ndarray) and v.ndim and len(v) == B else v)
      for k, v in inputs.items()
    }
    yield part, part_in


def _log_completions(run: Run, index: int, scored: grpo.Scored) -> None:
  rl = run.config.rl
  G = rl.group_size
  rows = []
  r_BR = scored.rewards_PGR.reshape(-1, scored.rewards_PGR.shape[-1])
  adv_B = scored.adv_PG.reshape(-1)
  for b, text in enumerate(scored.rollout.text[: 4 * G]):
    p = b // G
    row = {
      "completion": text,
      "labels": scored.prompts["labels"][p],
      "AUs": scored.prompts["AUs"][p],
      "advantage": float(adv_B[b]),
    }
    row.update({n: float(r_BR[b, k]) for k, n in enumerate(rl.reward_names)})
    rows.append(row)
  run.monitor.completions(run.global_step, f"{index}-grpo", rows)
