"""The stage loop: `train(config, workdir)` runs `config.stages` in order.

Resuming: the newest checkpoint says which stage and step to continue
from. Between stages a boundary checkpoint holds only the params (each
stage starts a fresh optimiser, as Facial-R1's separate runs do); within a
stage, checkpoints hold the stage's whole state and data position.
"""

from __future__ import annotations

import json
import os

import jax
from absl import logging

import emojax.hf
from emojax import checkpoint, monitor, multihost
from emojax.eval import compare
from emojax.train import (
  base,
  data,
  evaluate,
  setup,
  stage_ground,
  stage_grpo,
  stage_sft,
  stage_synthesize,
)
from emojax.train.run import Run, StopFlag, loop
from emojax.train.validate import validate


def _build(run: Run, index: int, params, restored):
  kind = run.config.stages[index]
  if kind in ("sft", "pretrain"):
    return stage_sft.build(run, index, kind, params, restored)
  if kind == "ground":
    return stage_ground.build(run, index, params, restored)
  if kind == "grpo":
    return stage_grpo.build(run, index, params, restored)
  return stage_synthesize.build(run, index, params, restored)


def _restored(run: Run, index: int, params, step: int, progress: dict):
  """The stage's saved state, restored into the fresh stage's structure."""
  target = _build(run, index, params, None).state()
  state = run.ckpt.restore_state(step, target)
  if "train" in state and hasattr(state["train"], "params"):
    return (state["train"], progress, state.get("ref"))
  return (None, progress, None)


def _params_of(tree):
  if "train" in tree and hasattr(tree["train"], "params"):
    return tree["train"].params
  return tree.get("params", tree.get("train"))


def _boundary(run: Run, next_index: int, params) -> None:
  progress = {
    "stage": next_index,
    "stage_step": 0,
    "global_step": run.global_step,
    "history": run.history,
  }
  run.ckpt.save(run.global_step, {"params": params}, progress, force=True)


def make_run(config, workdir: str, devices=None) -> Run:
  """Everything the stages share; `devices` defaults to all of them."""
  validate(config, len(devices) if devices else None)
  os.makedirs(workdir, exist_ok=True)
  tok = setup.tokenizer(config)
  model_cfg = setup.model_config(config, tok)
  mesh, rules = setup.mesh_and_rules(config, devices)
  _write_config(config, workdir)
  return Run(
    config=config,
    workdir=workdir,
    model_cfg=model_cfg,
    tokenizer=tok,
    mesh=mesh,
    rules=rules,
    data=data.builder(config.data),
    ckpt=checkpoint.RunCheckpoints(
      os.path.join(workdir, "checkpoints"),
      keep=config.keep_checkpoints,
      async_save=config.async_checkpoints,
    ),
    monitor=monitor.Monitor(workdir),
    stop=StopFlag(),
  )


def train(config, workdir: str) -> dict:
  """Runs (or resumes) every stage; returns the evaluation history."""
  base_dir = ensure_base(config) if config.model.base else None
  run = make_run(config, workdir)
  try:
    _run(run, base_dir)
  finally:
    run.stop.restore()
  return run.history


def ensure_base(config) -> str:
  """The cached base model's params checkpoint, built first if missing."""
  if not config.model.base:
    raise ValueError(
      "config.model.base is empty: this config starts from "
      f"model.hf_dir={config.model.hf_dir!r} and has no base model to "
      "build; run without --base_only, or set --config.model.base=NAME."
    )
  out = os.path.join(base.folder(config), "params")
  if os.path.exists(os.path.join(out, checkpoint.CONFIG_FILE)):
    return out
  logging.warning(
    "building the base model %r once, cached in %s; later runs reuse it.",
    config.model.base,
    out,
  )
  c = base.base_config(config)
  run = make_run(c, os.path.join(base.folder(config), "work"))
  try:
    params = _run(run, None)
  finally:
    run.stop.restore()
  checkpoint.save_params(out, run.model_cfg, params)
  return out


def _run(run: Run, base_dir: str | None):
  """Every stage from the newest checkpoint on; returns the final params."""
  config = run.config
  params = setup.initial_params(
    config, run.model_cfg, run.mesh, run.rules, base_dir
  )
  start, stage_step, latest = 0, 0, run.ckpt.latest_step()
  if latest is not None:
    progress = run.ckpt.progress(latest)
    start, stage_step = progress["stage"], progress["stage_step"]
    run.global_step, run.history = progress["global_step"], progress["history"]
    logging.info("resuming at stage %d step %d", start, stage_step)
    if stage_step == 0:
      params = run.ckpt.restore_state(latest, {"params": params})["params"]
  elif config.eval.num_examples and "base" not in run.history.get("evals", {}):
    _record_eval(run, params, "base")
  for index in range(start, len(config.stages)):
    restored = None
    if latest is not None and index == start and stage_step > 0:
      restored = _restored(run, index, params, latest, progress)
      if restored[0] is None:  # synthesis: its params are the stage's input
        restored = (None, progress, None)
    stage = _build(run, index, params, restored)
    loop(run, stage, stage_step if index == start else 0)
    if stage.finish is not None:
      stage.finish()
    params = stage.params() if stage.params else _params_of(stage.state())
    if config.eval.num_examples and config.stages[index] in ("sft", "grpo"):
      _record_eval(run, params, f"{index}-{config.stages[index]}")
    _boundary(run, index + 1, params)
  run.ckpt.wait()
  _finish(run, params)
  return params


def _record_eval(run: Run, params, name: str) -> None:
  scalars = evaluate.evaluate(run, params, name)
  run.history.setdefault("evals", {})[name] = scalars
  run.monitor.scalars(
    run.global_step, {f"eval/{name}/{k}": v for k, v in scalars.items()}
  )
  logging.info(
    "eval %s: %s",
    name,
    {
      k: round(v, 3)
      for k, v in scalars.items()
      if k.startswith(("emotion/acc", "au/macro"))
    },
  )


def _finish(run: Run, params) -> None:
  """The stage comparison report, and an HF export if asked for."""
  evals = run.history.get("evals", {})
  if jax.process_index() == 0 and evals:
    folders = [os.path.join(run.workdir, "eval", name) for name in evals]
    compare.compare(folders, os.path.join(run.workdir, "report"))
  if run.config.export_hf:
    tok_dir = os.path.join(run.workdir, "tokenizer")
    multihost.leader_only(
      "emojax_tokenizer", lambda: run.tokenizer.save(tok_dir)
    )
    emojax.hf.save(
      run.model_cfg,
      params,
      os.path.join(run.workdir, "hf"),
      tokenizer_dir=tok_dir,
    )
  run.monitor.flush()
  run.ckpt.close()


def _write_config(config, workdir: str) -> None:
  path = os.path.join(workdir, "config.json")
  text = config.to_json_best_effort(indent=2, sort_keys=True)

  def write():
    if os.path.exists(path):
      with open(path) as f:
        if json.load(f) != json.loads(text):
          logging.warning(
            "%s differs from the config given; resuming with the new one.",
            path,
          )
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)

  multihost.leader_only("emojax_config", write)
