"""model.attention='pallas' gives the same logits as 'xla'.

On CPU the kernels run in Pallas interpret mode automatically. Padding
positions are excluded: there the kernels return 0 (nothing to attend to)
where XLA's softmax averages every value.
"""

import functools

import jax
import numpy as np
import pytest
import tiny_hf
from jax.sharding import NamedSharding, PartitionSpec

import emojax.hf
from emojax import sharding
from emojax.model import decoder, kv_cache
from emojax.model import model as model_lib


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny")
  cfg, params = emojax.hf.load(tiny_hf.save(tiny_hf.qwen2(), path))
  rng = np.random.RandomState(0)
  ids = rng.randint(1, 128, (4, 21))
  mask = np.ones((4, 21), np.int32)
  mask[1, :5] = 0  # left padded
  mask[2, 17:] = 0  # right padded
  return cfg, params, ids * mask, mask


def _forward(params, cfg, ids, mask):
  fwd = jax.jit(functools.partial(model_lib.forward, cfg=cfg))
  return np.asarray(
    fwd(params, batch={"input_ids": ids, "attention_mask": mask})
  )


def test_forward_logits_equal_xla(setup):
  cfg, params, ids, mask = setup
  want = _forward(params, cfg, ids, mask)
  got = _forward(params, cfg.replace(attention="pallas"), ids, mask)
  real = mask > 0
  np.testing.assert_allclose(got[real], want[real], atol=1e-5, rtol=1e-5)


def test_sharded_forward_equals_xla(setup):
  cfg, params, ids, mask = setup
  want = _forward(params, cfg, ids, mask)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  placed = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
  with sharding.use_rules(mesh):
    got = _forward(placed, cfg.replace(attention="pallas"), ids, mask)
  real = mask > 0
  np.testing.assert_allclose(got[real], want[real], atol=1e-5, rtol=1e-5)


def test_cached_decode_equals_full_forward(setup):
  cfg, params, ids, mask = setup
  mask = mask.copy()
  mask[2] = 1  # decode needs real tokens at the end of every row
  pos = np.maximum(np.cumsum(mask, 1) - 1, 0) * mask
  want = _forward(params, cfg, ids, mask)
  cfg = cfg.replace(attention="pallas")
  cache = kv_cache.init(cfg, batch_size=4, max_len=24)
  P = 18  # prefill (XLA: T != S), then decode steps (decode kernel)
  x = decoder.embed_tokens(params, cfg, ids[:, :P])
  h, cache = decoder.run_layers(params, cfg, x, pos[:, :P], mask[:, :P], cache)
  outs = [decoder.unembed(params, cfg, h)]
  step = jax.jit(functools.partial(decoder.run_layers, cfg=cfg))
  for t in range(P, ids.shape[1]):
    x = decoder.embed_tokens(params, cfg, ids[:, t : t + 1])
    h, cache = step(
      params,
      x_BTD=x,
      positions=pos[:, t : t + 1],
      segment_ids_BT=mask[:, t : t + 1],
      cache=cache,
    )
    outs.append(decoder.unembed(params, cfg, h))
  got = np.concatenate([np.asarray(o) for o in outs], axis=1)
  real = mask > 0
  np.testing.assert_allclose(got[real], want[real], atol=1e-5, rtol=1e-5)
