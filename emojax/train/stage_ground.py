"""The `ground` stage: the base model's vision tower learns where AUs move.

First half of building the embedded default's base model (`base.py`): the
tower and merger, plus a linear head on each merged token, are trained with
sigmoid cross-entropy against `emojax.data.grounding` targets (which AUs
move that token's pixels). The language model is untouched; the `pretrain`
stage then teaches it to describe faces from these tokens.

The faces are rendered when the stage starts (a pure function of the seed,
so a resumed stage renders the same ones); each step's batch is drawn from
(seed, stage, step) alone, so resuming needs no iterator state.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from emojax import multihost, sharding
from emojax.data import grounding, synth
from emojax.data import image_processor as ip
from emojax.eval import metrics
from emojax.model import vision
from emojax.train import data, optim
from emojax.train.run import Run, Stage


def faces(run: Run) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
  """Images uint8 [F, S, S, 3], targets [F, U, A] and the merged grid (h, w)."""
  gc, dc = run.config.ground, run.config.data
  seed = synth.split_seed(dc.seed, "ground")
  icfg = data.image_config(run.model_cfg, dc)
  merge = icfg.merge_size
  images, targets, grid_hw = [], [], None
  for i in range(gc.num_faces):
    image, moved_AHW = grounding.movement_AHW(
      synth.sample_face(seed, i), dc.image_size
    )
    if grid_hw is None:
      _, h, w = ip.preprocess(image, icfg)[1]
      grid_hw = (int(h) // merge, int(w) // merge)
    images.append(image)
    targets.append(grounding.token_targets(moved_AHW, grid_hw, gc.threshold))
  return np.stack(images), np.stack(targets), grid_hw


def build(run: Run, index: int, params, restored) -> Stage:
  """The stage; `restored` is (TrainState, progress) when resuming it."""
  gc, cfg = run.config.ground, run.model_cfg
  if cfg.vision is None:
    raise ValueError(
      "the ground stage trains a vision tower; this model has none."
    )
  logging.info(
    "ground: rendering %d faces and their movement maps", gc.num_faces
  )
  images, targets_FUA, _ = faces(run)
  num_train = gc.num_faces - gc.num_held_out
  icfg = data.image_config(cfg, run.config.data)
  grid = np.stack([ip.preprocess(images[0], icfg)[1]] * gc.batch_size)
  layout = vision.layout(cfg.vision, grid)
  head = {
    "w_DA": jnp.zeros((cfg.hidden_size, len(grounding.AUS))),
    "b_A": jnp.zeros((len(grounding.AUS),)),
  }
  tree = {"model": params, "head": head}
  trainable = {
    "model": {
      k: jax.tree.map(lambda _, t=(k == "vision"): t, v)
      for k, v in params.items()
    },
    "head": jax.tree.map(lambda _: True, head),
  }
  tx = optim.make(gc.optim, gc.steps, trainable)
  state = optim.init_state(tree, tx) if restored is None else restored[0]
  holder = {"state": state}

  # Inputs replicated over the mesh: global arrays on every process.
  everywhere = jax.sharding.NamedSharding(
    run.mesh, jax.sharding.PartitionSpec()
  )

  def pixels(idx):
    x = np.concatenate([ip.preprocess(images[i], icfg)[0] for i in idx])
    return multihost.put(x, everywhere)

  logits = functools.partial(_logits, cfg=cfg, layout=layout, n=gc.batch_size)

  @functools.partial(jax.jit, donate_argnums=0)
  def update(state, pixels_NC, targets_BUA):
    def loss_fn(tree):
      logits_BUA = logits(tree, pixels_NC)
      bce = optax.sigmoid_binary_cross_entropy(logits_BUA, targets_BUA)
      return bce.sum(-1).mean()  # nats per token, summed over AUs

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    state, gnorm = optim.update(state, grads, tx=tx)
    return state, loss, gnorm

  def step(i: int) -> dict:
    rng = np.random.default_rng([run.config.seed, index, i])
    idx = rng.choice(num_train, gc.batch_size, replace=False)
    with sharding.use_rules(run.mesh, run.rules):
      holder["state"], loss, gnorm = update(
        holder["state"],
        pixels(idx),
        multihost.put(targets_FUA[idx], everywhere),
      )
    return {
      "loss": float(loss),
      "grad_norm": float(gnorm),
      "lr": float(optim.schedule(gc.optim, gc.steps)(i)),
    }

  def finish() -> None:
    """Held-out token-level macro F1 over the AUs that occur, logged."""
    held = np.arange(num_train, gc.num_faces)
    held = held[: len(held) // gc.batch_size * gc.batch_size]
    pred = [
      multihost.to_host(
        logits(holder["state"].params, pixels(held[s : s + gc.batch_size]))
      )
      > 0
      for s in range(0, len(held), gc.batch_size)
    ]
    f1 = token_f1(np.concatenate(pred), targets_FUA[held])
    run.history.setdefault("ground", {})["token_au_macro_f1"] = f1
    run.monitor.scalars(run.global_step, {"ground/held_out_token_au_f1": f1})
    logging.info("ground: held-out token-level AU macro F1 %.3f", f1)

  return Stage(
    index=index,
    name="ground",
    num_steps=gc.steps,
    step=step,
    state=lambda: {"train": holder["state"]},
    progress=lambda: {},
    finish=finish if gc.num_held_out >= gc.batch_size else None,
    params=lambda: holder["state"].params["model"],
  )


def _logits(tree, pixels_NC, *, cfg, layout, n):
  feats_UD = vision.encode(
    tree["model"]["vision"],
    cfg.vision,
    pixels_NC,
    layout,
    dtype=jnp.dtype(cfg.dtype),
    impl=cfg.attention,
  )
  feats_BUD = feats_UD.reshape(n, -1, feats_UD.shape[-1]).astype(jnp.float32)
  return feats_BUD @ tree["head"]["w_DA"] + tree["head"]["b_A"][None, None]


def token_f1(pred_BUA: np.ndarray, gold_BUA: np.ndarray) -> float:
  """Macro F1 over AUs with any gold token (sklearn's zero_division=0)."""
  p = pred_BUA.reshape(-1, pred_BUA.shape[-1]).astype(bool)
  g = gold_BUA.reshape(-1, gold_BUA.shape[-1]).astype(bool)
  keep = g.any(0)
  tp = (p & g).sum(0)[keep]
  fp = (p & ~g).sum(0)[keep]
  fn = (~p & g).sum(0)[keep]
  return float(metrics.f1(tp, fp, fn).mean())
