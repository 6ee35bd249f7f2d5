"""Start-up checks of a training config: fail with the field and the fix."""

from __future__ import annotations

import os

import jax

from emojax import sharding
from emojax.rewards import JUDGES, REWARDS, length, trust
from emojax.rl import advantages, loss
from emojax.train import data, optim

TOKEN_MASKS = ("all", "think")

STAGES = ("ground", "pretrain", "sft", "grpo", "synthesize")


class ConfigError(ValueError):
  """The config cannot run; the message names the field and the fix."""


def validate(config, num_devices: int | None = None) -> None:
  """Raises `ConfigError` naming the field; `num_devices` defaults to all."""
  num_devices = num_devices or jax.device_count()
  unknown = [s for s in config.stages if s not in STAGES]
  if unknown:
    raise ConfigError(
      f"config.stages has unknown {unknown}; stages are {STAGES}."
    )
  rl = config.rl
  if "grpo" in config.stages:
    check_rl(rl)
    rows = rl.prompts_per_step * rl.group_size
    micro = rl.micro_batch_size
    if micro and (rows % micro or micro % rl.group_size):
      raise ConfigError(
        f"config.rl.micro_batch_size={micro} must divide the {rows} rows of "
        "a step (prompts_per_step x group_size) and hold whole groups (a "
        f"multiple of group_size={rl.group_size}: each prompt is computed "
        "once for its group); pick such a divisor."
      )
  if "ground" in config.stages:
    _check_ground(config)
  for name in ("ground", "pretrain", "sft", "rl"):
    try:  # The schedule's own check, before a stage builds it.
      optim.schedule(config[name].optim, 1)
    except ValueError as e:
      raise ConfigError(f"config.{name}.{e}") from None
  for name in ("sft", "pretrain"):
    sc = config[name]
    if sc.micro_batch_size and sc.batch_size % sc.micro_batch_size:
      raise ConfigError(
        f"config.{name}.micro_batch_size={sc.micro_batch_size} does not "
        f"divide config.{name}.batch_size={sc.batch_size}."
      )
  try:
    sharding.mesh_shape(dict(config.mesh), num_devices)
  except ValueError as e:
    raise ConfigError(f"{e} ({num_devices} devices here).") from None
  d = config.data
  if d.dataset not in data.SYNTHETIC and not d.manual_dir:
    raise ConfigError(
      f"config.data.dataset={d.dataset!r} reads your files: set "
      "--config.data.manual_dir=/path/to/them."
    )
  if d.manual_dir and not os.path.isdir(os.path.expanduser(d.manual_dir)):
    raise ConfigError(
      f"config.data.manual_dir={d.manual_dir!r} is not a folder; point it at "
      "the dataset's files."
    )
  if config.model.hf_dir and not os.path.isdir(config.model.hf_dir):
    raise ConfigError(
      f"config.model.hf_dir={config.model.hf_dir!r} is not a folder; point "
      "it at a transformers checkpoint."
    )


def check_rl(rl) -> None:
  """The GRPO fragment's own fields (also `configs.common.validate`)."""
  choices = (
    ("advantage", advantages.MODES),
    ("advantage_impl", advantages.IMPLS),
    ("loss_type", loss.LOSS_TYPES),
    ("kl_estimator", loss.KL_ESTIMATORS),
  )
  for name, allowed in choices:
    if rl[name] not in allowed:
      raise ConfigError(
        f"config.rl.{name}={rl[name]!r}; choose from {allowed}."
      )
  bad = [n for n in rl.reward_names if n not in REWARDS]
  if bad:
    raise ConfigError(
      f"config.rl.reward_names has unknown {bad}; choose from "
      f"{sorted(REWARDS)}."
    )
  for name in ("reward_weights", "token_masks"):
    value = rl[name]
    if value is not None and len(value) != len(rl.reward_names):
      raise ConfigError(
        f"config.rl.{name} needs one entry per config.rl.reward_names "
        f"({len(value)} vs {len(rl.reward_names)})."
      )
  bad = [k for k in rl.token_masks or () if k not in TOKEN_MASKS]
  if bad:
    raise ConfigError(
      f"config.rl.token_masks has unknown {bad}; choose from {TOKEN_MASKS} "
      "(a reward's loss over all completion tokens or its <think> span)."
    )
  if rl.group_size < 2:
    raise ConfigError(
      f"config.rl.group_size={rl.group_size}: GRPO compares completions "
      "within a group, so it needs at least 2 (Facial-R1 uses 8)."
    )
  if "overlong" in rl.reward_names:
    _check_overlong(rl)
  _check_trust(rl.trust)


def _check_trust(t) -> None:
  if t.judge not in JUDGES:
    raise ConfigError(
      f"config.rl.trust.judge={t.judge!r}; choose from {sorted(JUDGES)}."
    )
  if t.schedule not in trust.SCHEDULES:
    raise ConfigError(
      f"config.rl.trust.schedule={t.schedule!r}; choose from {trust.SCHEDULES}."
    )
  if not t.horizon > 0:
    raise ConfigError(
      f"config.rl.trust.horizon={t.horizon}: the decay or ramp length T "
      "must be > 0 steps."
    )


def _check_overlong(rl) -> None:
  """DAPO's penalty ramps from overlong_max - overlong_cache to
  overlong_max; it must start below the longest completion."""
  max_len, cache = length.overlong_lengths(rl)
  if not 0 <= cache < max_len or max_len - cache >= rl.max_completion_length:
    raise ConfigError(
      f"config.rl.overlong_max={max_len} and overlong_cache="
      f"{cache}: the 'overlong' reward needs 0 <= overlong_cache"
      f" < overlong_max and overlong_max - overlong_cache below "
      f"max_completion_length={rl.max_completion_length} (DAPO: L_max is "
      "the generation limit), or it never fires."
    )


def _check_ground(config) -> None:
  g = config.ground
  if config.data.dataset != "facs_synth":
    raise ConfigError(
      f"config.stages has 'ground', which renders synthetic faces, but "
      f"config.data.dataset={config.data.dataset!r}; drop the stage (real "
      "VLMs can already see) or use facs_synth."
    )
  if not 0 <= g.num_held_out < g.num_faces:
    raise ConfigError(
      f"config.ground.num_held_out={g.num_held_out} must be below "
      f"config.ground.num_faces={g.num_faces}."
    )
  if g.batch_size > g.num_faces - g.num_held_out:
    raise ConfigError(
      f"config.ground.batch_size={g.batch_size} is more than the "
      f"{g.num_faces - g.num_held_out} training faces; raise "
      "config.ground.num_faces."
    )
