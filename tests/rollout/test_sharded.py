"""Rollout on 8 fake CPU devices equals the single-device rollout."""

import types

import jax
import numpy as np
import tiny_hf
from jax.sharding import PartitionSpec

import emojax.hf
from emojax import rollout, sharding
from emojax.rollout import sampler
from emojax.train import generation


def test_sharded_rollout_equals_single_device(tmp_path):
  folder = tiny_hf.save(tiny_hf.qwen2(initializer_range=0.3), tmp_path)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  cfg, params = emojax.hf.load(folder)
  _, params_sharded = emojax.hf.load(folder, mesh=mesh)
  rng = np.random.RandomState(0)
  ids = rng.randint(1, 128, (4, 7))
  mask = np.ones_like(ids)
  mask[1, :3] = mask[3, :5] = 0
  batch = {"input_ids": ids, "attention_mask": mask}
  kw = dict(
    num_generations=2, max_new_tokens=8, temperature=1.0, stop_token_ids=()
  )
  want = rollout.generate(params, cfg, batch, jax.random.key(1), **kw)
  sampler.release_caches()
  # The mesh is taken from the params' shardings.
  got = rollout.generate(params_sharded, cfg, batch, jax.random.key(1), **kw)
  np.testing.assert_array_equal(got.completion_ids, want.completion_ids)
  np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-5, rtol=5e-6)
  # Rows over the batch axes, the cache's KV heads over `tensor`.
  (cache,) = sampler._CACHES.values()
  for k_BKES in cache.k_BKES:
    assert k_BKES.sharding.spec == PartitionSpec(("data", "fsdp"), "tensor")
  assert got.completion_ids.sharding.spec[0] == ("data", "fsdp")


def test_the_runs_sharding_rules_reach_the_engine(tmp_path):
  """`train.generation.generate` (every stage's rollout) places the cache
  and the rows by the config's rules, not the defaults."""
  folder = tiny_hf.save(tiny_hf.qwen2(initializer_range=0.3), tmp_path)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  cfg, params = emojax.hf.load(folder, mesh=mesh)
  rules = dict(sharding.DEFAULT_RULES, batch="data")  # Not fsdp too.
  run = types.SimpleNamespace(
    model_cfg=cfg,
    tokenizer=types.SimpleNamespace(decode=lambda ids, **_: ""),
    mesh=mesh,
    rules=rules,
  )
  ids = np.random.RandomState(0).randint(1, 128, (4, 7))
  batch = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
  sampler.release_caches()
  got = generation.generate(
    run, params, batch, jax.random.key(1), max_new_tokens=4, num_generations=2
  )
  (cache,) = sampler._CACHES.values()
  for k_BKES in cache.k_BKES:
    assert k_BKES.sharding.spec[0] == "data"
  assert got.completion_ids.sharding.spec[0] == "data"
  sampler.release_caches()
