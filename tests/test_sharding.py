"""Mesh construction, logical rules, and sharded == unsharded forward."""

import jax
import numpy as np
import pytest
import tiny_hf
from jax.sharding import PartitionSpec as P

import emojax.hf
from emojax import sharding
from emojax.model import config as config_lib
from emojax.model import decoder
from emojax.model import model as model_lib
from emojax.model import params as params_lib


def test_mesh_shape_resolves_rest_and_checks_devices():
  assert sharding.mesh_shape({"data": -1, "tensor": 2}, 8) == {
    "data": 4,
    "fsdp": 1,
    "tensor": 2,
  }
  with pytest.raises(ValueError, match="needs 16 devices"):
    sharding.mesh_shape({"data": 4, "tensor": 4}, 8)
  with pytest.raises(ValueError, match="at most one axis"):
    sharding.mesh_shape({"data": -1, "fsdp": -1}, 8)
  with pytest.raises(ValueError, match="unknown axes"):
    sharding.mesh_shape({"model": 2}, 8)


def test_logical_to_spec_uses_each_mesh_axis_once():
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  rules = {"batch": ("data", "fsdp"), "embed": "fsdp", "heads": "tensor"}
  assert sharding.logical_to_spec(("batch", "embed"), rules, mesh) == P(
    ("data", "fsdp"), None
  )
  assert sharding.logical_to_spec(("embed", "heads"), rules, mesh) == P(
    "fsdp", "tensor"
  )
  with pytest.raises(KeyError, match="no sharding rule"):
    sharding.logical_to_spec(("nope",), rules, mesh)
  # Axes of size 1 vanish, so one rule set serves every mesh.
  small = sharding.make_mesh({"data": -1}, devices=jax.devices()[:2])
  assert sharding.logical_to_spec(("embed", "heads"), rules, small) == P(
    None, None
  )


def test_param_shardings_follow_the_rules():
  cfg = config_lib.tiny_text()
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  params = params_lib.init(
    decoder.specs(cfg), jax.random.key(0), mesh, sharding.DEFAULT_RULES
  )
  emb = params["embed"]["embedding_VD"]
  assert emb.sharding.spec == P("tensor", "fsdp")
  assert emb.addressable_shards[0].data.shape == (
    cfg.vocab_size // 2,
    cfg.hidden_size // 2,
  )
  w_down = params["layers"]["w_down_LFD"]
  assert w_down.sharding.spec == P(None, "tensor", "fsdp")


def test_sharded_forward_equals_single_device(tmp_path):
  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path)
  cfg, ref_params = emojax.hf.load(src)
  rng = np.random.RandomState(0)
  ids = rng.randint(1, 128, (4, 12))
  mask = np.ones_like(ids)
  mask[1, :5] = 0
  batch = {"input_ids": ids, "attention_mask": mask}
  want = model_lib.forward(ref_params, cfg, batch)

  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  rules = sharding.DEFAULT_RULES
  _, params = emojax.hf.load(src, mesh=mesh, rules=rules)
  batch_sharding = sharding.named_sharding(mesh, ("batch", None), rules)
  batch = jax.device_put(batch, batch_sharding)

  def fwd(params, batch):
    with sharding.use_rules(mesh, rules):
      return model_lib.forward(params, cfg, batch)

  got = jax.jit(fwd)(params, batch)
  assert got.sharding.spec[0] == ("data", "fsdp")
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_qwen2_5_7b_parameter_count_without_allocating():
  specs = decoder.specs(config_lib.qwen2_5_7b())
  n = params_lib.count(specs)
  assert 7.6e9 < n < 7.65e9  # Qwen2.5-7B: 7.61B
  abstract = params_lib.abstract(specs)
  assert all(
    isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract)
  )
