"""Supervised fine-tuning: masked cross-entropy on assistant tokens.

Micro-batches accumulate exactly: each one's summed token loss is divided
by the token count of the whole batch, so the accumulated gradient equals
the full batch's whatever the split.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from emojax import model as model_lib
from emojax.model import params as params_lib
from emojax.model import vlm
from emojax.model.config import ModelConfig
from emojax.rl import logprobs
from emojax.train import batching


def token_nll_sum(params, cfg: ModelConfig, batch):
  """(sum of -log p over loss-masked tokens, their count)."""
  logp_BC, _ = logprobs.completion_logprobs(params, cfg, batch, 1)
  mask_BC = batch["loss_mask"][:, 1:].astype(jnp.float32)
  return -(logp_BC * mask_BC).sum(), mask_BC.sum()


@functools.partial(jax.jit, static_argnames=("cfg", "frozen"))
def grads(params, batch, denominator, *, cfg: ModelConfig, frozen=(False,)):
  """Gradient of this micro-batch's share of the batch's mean token loss;
  `frozen` is `vlm.stop_frozen`'s (freeze_vision[, train_merger])."""

  def loss_fn(p):
    if cfg.vision is not None:
      p = vlm.stop_frozen(p, *frozen)
    nll, n = token_nll_sum(p, cfg, batch)
    return nll / denominator, n

  (loss, n), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return params_lib.constrain(g, model_lib.specs(cfg)), loss, n


def micro_batches(cfg: ModelConfig, batch, size: int, mesh=None, rules=None):
  """Device batches of at most `size` rows each (0: one batch)."""
  rows = len(batch["input_ids"])
  size = size or rows
  for start in range(0, rows, size):
    part = batching.take_rows(
      cfg, batch, np.arange(start, min(start + size, rows))
    )
    part = batching.device_batch(cfg, part)
    yield part if mesh is None else batching.place(part, mesh, rules)


def accumulate(
  cfg: ModelConfig,
  params,
  batch,
  micro_batch_size: int,
  *,
  mesh=None,
  rules=None,
  frozen=(False,),
):
  """(grads, mean token loss, tokens) over the batch's micro-batches."""
  denominator = float(max(np.asarray(batch["loss_mask"])[:, 1:].sum(), 1))
  total_g, total_loss = None, 0.0
  for part in micro_batches(cfg, batch, micro_batch_size, mesh, rules):
    g, loss, _ = grads(params, part, denominator, cfg=cfg, frozen=frozen)
    total_g = g if total_g is None else jax.tree.map(jnp.add, total_g, g)
    total_loss = total_loss + loss
  return total_g, total_loss, denominator
