"""Train state and the AdamW optimiser (warmup + decay, clipping, freezing).

Params, optimizer state and step travel as one pytree (`TrainState`) so one
jitted update donates and returns it whole, and one orbax save holds it.
"""

from __future__ import annotations

from typing import Any

import jax
import optax
from flax import struct


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


SCHEDULES = ("cosine", "linear", "constant")


def schedule(cfg, total_steps: int) -> optax.Schedule:
  """Linear warmup to `cfg.lr`, then `cfg.schedule`: 'cosine' or 'linear'
  (the HF Trainer's default, so TRL's) decay to `lr * final_lr_ratio` at
  `total_steps`, or 'constant' (verl's)."""
  kind = cfg.get("schedule", "cosine")
  if kind not in SCHEDULES:
    raise ValueError(f"optim.schedule={kind!r}; choose from {SCHEDULES}.")
  warmup = min(int(cfg.warmup_steps), max(total_steps - 1, 0))
  end = cfg.lr * cfg.final_lr_ratio
  if kind == "cosine":
    return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else cfg.lr,
      peak_value=cfg.lr,
      warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1),
      end_value=end,
    )
  if kind == "linear":
    after = optax.linear_schedule(cfg.lr, end, max(total_steps - warmup, 1))
  else:
    after = optax.constant_schedule(cfg.lr)
  if not warmup:
    return after
  rise = optax.linear_schedule(0.0, cfg.lr, warmup)
  return optax.join_schedules([rise, after], [warmup])


def make(cfg, total_steps: int, trainable=None) -> optax.GradientTransformation:
  """AdamW with global-norm clipping; `trainable` (bool tree) freezes leaves.

  Frozen leaves get zero updates and no Adam moments (`optax.multi_transform`
  with `set_to_zero`), so freezing the vision tower also saves its memory.
  """
  tx = optax.chain(
    optax.clip_by_global_norm(cfg.grad_clip),
    optax.adamw(
      schedule(cfg, total_steps),
      b1=cfg.b1,
      b2=cfg.b2,
      eps=cfg.eps,
      weight_decay=cfg.weight_decay,
    ),
  )
  if trainable is None:
    return tx
  labels = jax.tree.map(lambda t: "train" if t else "freeze", trainable)
  return optax.multi_transform(
    {"train": tx, "freeze": optax.set_to_zero()}, labels
  )


def init_state(params, tx: optax.GradientTransformation) -> TrainState:
  """Step 0; under jit so every leaf lands on the params' devices (scalars
  replicated over the mesh), which checkpoint restores then reproduce."""

  def make(p):
    return TrainState(jax.numpy.zeros((), jax.numpy.int32), p, tx.init(p))

  return jax.jit(make)(params)


def update(state: TrainState, grads, *, tx) -> tuple[TrainState, jax.Array]:
  """One optimiser step (jit it with the state donated); returns grad norm."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return TrainState(state.step + 1, params, opt_state), optax.global_norm(grads)
