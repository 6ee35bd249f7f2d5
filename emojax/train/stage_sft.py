"""SFT stages: `sft` on reasoning-annotated rows, `pretrain` on captions.

`pretrain` builds the embedded default's base model: the tiny VLM learns to
describe faces in plain words (no AU codes, no emotion words), as a
pretrained Qwen2.5-VL already can.
"""

from __future__ import annotations

import functools

import jax
from absl import logging

from emojax import sharding
from emojax.model import vlm
from emojax.train import data, evaluate, optim, sft
from emojax.train.run import Run, Stage


def _source(run: Run, index: int, kind: str):
  if kind == "pretrain":
    return run.data.as_data_source("train")
  parts = [run.data.as_data_source("sft")]
  if run.config.sft.include_synthesized:
    for path in run.history.get("synthesized", []):
      rows = data.read_synth(path)
      parts.append(
        data.SynthSource(run.data.as_data_source("train"), rows, origin=path)
      )
  return data.Concat(*parts)


def build(run: Run, index: int, kind: str, params, restored) -> Stage:
  """The stage; `restored` is (TrainState, progress) when resuming it."""
  sc = run.config.pretrain if kind == "pretrain" else run.config.sft
  cfg = run.model_cfg
  if kind == "pretrain":  # after `ground`: tower frozen, merger trained
    freeze, merger = sc.freeze_tower, True
  else:
    freeze, merger = run.config.model.freeze_vision, False
  trainable = vlm.trainable_mask(params, freeze, merger) if cfg.vision else None
  tx = optim.make(sc.optim, sc.steps, trainable)
  state = optim.init_state(params, tx) if restored is None else restored[0]
  it = data.iterator(
    _source(run, index, kind),
    run.tokenizer,
    cfg,
    run.config.data,
    mode="sft",
    batch_size=sc.batch_size,
    seed=run.config.seed * 1000 + index,
    prompt="caption" if kind == "pretrain" else "task",
    target="caption" if kind == "pretrain" else sc.get("target", "description"),
  )
  if restored is not None:
    it.set_state(restored[1]["data"])
  apply = jax.jit(functools.partial(optim.update, tx=tx), donate_argnums=0)
  holder = {"state": state}

  def step(i: int) -> dict:
    batch = next(it)
    with sharding.use_rules(run.mesh, run.rules):
      g, loss, tokens = sft.accumulate(
        cfg,
        holder["state"].params,
        batch,
        sc.micro_batch_size,
        mesh=run.mesh,
        rules=run.rules,
        frozen=(freeze, merger),
      )
      holder["state"], gnorm = apply(holder["state"], g)
    return {
      "loss": float(loss),
      "grad_norm": float(gnorm),
      "tokens": float(tokens),
      "lr": float(optim.schedule(sc.optim, sc.steps)(i)),
    }

  def finish() -> None:
    """The base model's check: held-out captions scored per region."""
    scalars = evaluate.evaluate_captions(
      run, holder["state"].params, sc.num_eval
    )
    run.history["base_captions"] = scalars
    run.monitor.scalars(
      run.global_step, {f"pretrain/captions/{k}": v for k, v in scalars.items()}
    )
    logging.info("base model captions on held-out faces: %s", scalars)

  return Stage(
    index=index,
    name=kind,
    num_steps=sc.steps,
    step=step,
    state=lambda: {"train": holder["state"]},
    progress=lambda: {"data": it.get_state()},
    finish=finish if kind == "pretrain" and sc.get("num_eval") else None,
  )
