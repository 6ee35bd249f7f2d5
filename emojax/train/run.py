"""The run context every stage shares, and the step loop stages run in.

A stage is a number of steps. After every step the loop may log, save a
checkpoint (train state + the stage's progress, including the data
iterator's state), or stop for a SIGTERM (saving first). Resuming restores
all of it, so a killed run ends with the same parameters as an unbroken one.
"""

from __future__ import annotations

import dataclasses
import math
import signal
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging
from tqdm import tqdm

from emojax import checkpoint, monitor, multihost
from emojax.model.config import ModelConfig


class Preempted(SystemExit):
  """Raised after a SIGTERM save; the same command resumes the run."""


class StopFlag:
  """Set by SIGTERM (preemption); checked between steps."""

  def __init__(self):
    self.set = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def restore(self) -> None:
    """Puts back the handler that was there before this run."""
    signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM: saving a checkpoint, then exiting.")
    self.set = True


@dataclasses.dataclass
class Run:
  config: Any
  workdir: str
  model_cfg: ModelConfig
  tokenizer: Any
  mesh: jax.sharding.Mesh
  rules: Any
  data: Any  # the prepared tfds builder
  ckpt: checkpoint.RunCheckpoints
  monitor: monitor.Monitor
  stop: StopFlag
  global_step: int = 0
  history: dict = dataclasses.field(default_factory=dict)

  def key(self, *path: int) -> jax.Array:
    """A PRNG key determined by the seed and `path` alone (resume-safe)."""
    key = jax.random.key(self.config.seed)
    for p in path:
      key = jax.random.fold_in(key, p)
    return key


@dataclasses.dataclass
class Stage:
  """One stage's loop: `step(i)` returns metrics; state lives in closures."""

  index: int
  name: str
  num_steps: int
  step: Callable[[int], dict]
  state: Callable[[], Any]  # the pytree to checkpoint
  progress: Callable[[], dict]  # JSON-able extra state (data iterator, ...)
  finish: Callable[[], Any] | None = None  # runs once, after the last step
  params: Callable[[], Any] | None = None  # the model params it hands on


def check_finite(metrics: dict, where: str) -> None:
  bad = {
    k: v
    for k, v in metrics.items()
    if isinstance(v, float) and not math.isfinite(v)
  }
  if bad:
    raise FloatingPointError(
      f"{where}: non-finite {bad}. Stopped before saving, so the last good "
      "checkpoint is intact; lower the learning rate or raise grad clipping "
      "and resume with the same command."
    )


def loop(run: Run, stage: Stage, start: int) -> None:
  """Steps `start..num_steps` with logging, checkpoints and preemption."""
  cfg = run.config
  bar = tqdm(
    total=stage.num_steps,
    initial=start,
    desc=f"[{stage.index}] {stage.name}",
    disable=jax.process_index() != 0,
    dynamic_ncols=True,
  )
  for i in range(start, stage.num_steps):
    metrics = stage.step(i)
    run.global_step += 1
    check_finite(metrics, f"stage {stage.index} ({stage.name}) step {i}")
    bar.update(1)
    if (i + 1) % cfg.log_every == 0 or i + 1 == stage.num_steps:
      scalars = {f"{stage.name}/{k}": v for k, v in metrics.items()}
      run.monitor.scalars(run.global_step, scalars)
      bar.set_postfix(_short(metrics))
    last = i + 1 == stage.num_steps
    # One host's SIGTERM stops every host after the same step (a save is a
    # collective: a host saving alone would wait for the others forever).
    stop = multihost.any_process(run.stop.set)
    if stop or (i + 1) % cfg.checkpoint_every == 0 and not last:
      save(run, stage, i + 1)
    if stop:
      run.ckpt.wait()
      bar.close()
      raise Preempted(143)
  bar.close()


def save(run: Run, stage: Stage, stage_step: int, force: bool = True) -> None:
  progress = {
    "stage": stage.index,
    "stage_step": stage_step,
    "global_step": run.global_step,
    "history": run.history,
    **stage.progress(),
  }
  run.ckpt.save(run.global_step, stage.state(), progress, force=force)


def _short(metrics: dict) -> dict:
  keys = ("loss", "reward", "rewards/emotion/mean", "rewards/au_f1/mean")
  return {
    k.split("/")[-2] if "/" in k else k: f"{metrics[k]:.3f}"
    for k in keys
    if k in metrics
  }


def host_float(tree) -> dict:
  return {k: float(np.asarray(v)) for k, v in tree.items()}
