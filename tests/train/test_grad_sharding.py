"""Gradients and updated params keep the params' FSDP shardings.

On the 8 fake CPU devices with the weights sharded over `fsdp`: XLA left
to itself replicated the GRPO and SFT gradients (a full fp32 copy on every
device, all-reduced), which on a real 7B run is 30 GB a device. The
sharding propagation tested here is XLA's SPMD partitioner, the same on
every backend.
"""

import jax
import numpy as np
import optax
import pytest

from emojax import kernels, sharding
from emojax import model as model_lib
from emojax.model import config as config_lib
from emojax.model import params as params_lib
from emojax.train import grpo, optim, sft

P, G, TP, C = 8, 2, 16, 8


@pytest.fixture(scope="module")
def setup():
  mesh = sharding.make_mesh({"data": 1, "fsdp": -1, "tensor": 1})
  # Widths that divide by the 8 fsdp devices, so every weight is sharded.
  cfg = config_lib.tiny_text().replace(hidden_size=64, intermediate_size=128)
  params = params_lib.init(model_lib.specs(cfg), jax.random.key(0), mesh)
  return mesh, cfg, params


def _rows(mesh, x):
  axes = ("batch",) + (None,) * (x.ndim - 1)
  spec = sharding.named_sharding(mesh, axes, shape=x.shape)
  return jax.device_put(x, spec)


def _same_shardings(tree, like):
  """(path, got, want) of every leaf whose sharding differs from like's."""
  leaves = jax.tree_util.tree_flatten_with_path(like)[0]
  return [
    (jax.tree_util.keystr(path), g.sharding.spec, p.sharding.spec)
    for (path, p), g in zip(leaves, jax.tree.leaves(tree), strict=True)
    if not g.sharding.is_equivalent_to(p.sharding, p.ndim)
  ]


def test_some_weights_are_sharded(setup):
  # Not vacuous: the params themselves are split over the devices.
  _, _, params = setup
  specs = [p.sharding.spec for p in jax.tree.leaves(params)]
  assert sum("fsdp" in str(s) for s in specs) >= 8


# Both logprob paths run in shard_map (`rl.sharded_logprobs`), whose
# gradient must not come out replicated either; each device scores the
# FSDP group's 128 rows on its 512 / 8 vocab columns.
@pytest.mark.parametrize("logprobs", ["chunked", "fused"])
def test_grpo_gradients_keep_param_shardings(setup, logprobs, monkeypatch):
  mesh, cfg, params = setup
  cfg = cfg.replace(logprobs=logprobs)
  name = f"{logprobs}_logprobs"
  seen, impl = [], getattr(kernels, name)

  def spy(h, w, t, **kw):
    seen.append((h.shape[0] * h.shape[1], w.shape[1]))
    return impl(h, w, t, **kw)

  monkeypatch.setattr(kernels, name, spy)
  jax.clear_caches()  # trace again, through the spy
  rng = np.random.RandomState(0)
  ids = rng.randint(1, cfg.vocab_size - 8, (P, TP)).astype(np.int32)
  batch = {
    "prompt": {
      "input_ids": _rows(mesh, ids),
      "attention_mask": _rows(mesh, np.ones((P, TP), np.int32)),
    },
    "completion_ids": _rows(mesh, np.tile(ids[:, :C], (G, 1))),
    "completion_mask": _rows(mesh, np.ones((P * G, C), np.int32)),
  }
  inputs = {
    "adv": _rows(mesh, rng.randn(P * G).astype(np.float32)),
    "mask": _rows(mesh, np.ones((P * G, C), np.float32)),
    "denominator": np.float32(P * G),
  }
  rl = dict(
    loss_type="grpo",
    epsilon=0.2,
    epsilon_high=0.2,
    importance_sampling_level="token",
    beta=0.0,
    kl_estimator="k3",
    entropy_coef=0.0,
    temperature=1.0,
  )
  with sharding.use_rules(mesh):
    g, _, _ = grpo.grads(
      params, batch, inputs, cfg=cfg, rl_static=grpo.static_rl(rl)
    )
  assert _same_shardings(g, params) == []
  assert set(seen) == {(P * G * C, cfg.vocab_size // 8)}


@pytest.mark.parametrize("logprobs", ["chunked", "fused"])
def test_sft_gradients_and_update_keep_param_shardings(setup, logprobs):
  mesh, cfg, params = setup
  cfg = cfg.replace(logprobs=logprobs)
  rng = np.random.RandomState(1)
  ids = rng.randint(1, cfg.vocab_size - 8, (8, 12)).astype(np.int32)
  batch = {
    "input_ids": _rows(mesh, ids),
    "attention_mask": _rows(mesh, np.ones_like(ids)),
    "loss_mask": _rows(mesh, np.ones_like(ids)),
  }
  with sharding.use_rules(mesh):
    g, _, _ = sft.grads(params, batch, np.float32(96.0), cfg=cfg)
  assert _same_shardings(g, params) == []
  tx = optax.adamw(1e-3)
  state = optim.init_state(params, tx)
  apply = jax.jit(lambda s, g: optim.update(s, g, tx=tx), donate_argnums=0)
  state, _ = apply(state, g)
  assert _same_shardings(state.params, params) == []
