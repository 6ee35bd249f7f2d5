"""HF import/export: round trip, transformers reload, sharding, bad input."""

import json
import os

import jax
import numpy as np
import pytest
import tiny_hf
import transformers

import emojax.hf
from emojax import sharding
from emojax.hf import safetensors_io
from emojax.model import model as model_lib


def _tensors(folder):
  return {
    name: np.asarray(safetensors_io.read(info))
    for name, info in safetensors_io.index(folder).items()
  }


@pytest.mark.parametrize("make", [tiny_hf.qwen2, tiny_hf.llama])
def test_round_trip_is_bitwise_and_reloads(make, tmp_path):
  model = make()
  src = tiny_hf.save(model, tmp_path / "src")
  cfg, params = emojax.hf.load(src)
  out = emojax.hf.save(cfg, params, str(tmp_path / "out"), tokenizer_dir=src)
  a, b = _tensors(src), _tensors(out)
  assert sorted(a) == sorted(b)
  for name in a:
    assert (
      a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes()
    ), name
  reloaded = type(model).from_pretrained(out).eval()
  ids = np.random.RandomState(1).randint(0, 128, (2, 7))
  mask = np.ones_like(ids)
  pos = np.broadcast_to(np.arange(7), ids.shape)
  np.testing.assert_array_equal(
    tiny_hf.logits(reloaded, ids, mask, pos),
    tiny_hf.logits(model, ids, mask, pos),
  )


def test_sharded_export_with_index(tmp_path):
  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "src")
  cfg, params = emojax.hf.load(src)
  out = emojax.hf.save(
    cfg, params, str(tmp_path / "out"), max_shard_bytes=40_000
  )
  files = sorted(os.listdir(out))
  assert safetensors_io.INDEX_FILE in files
  assert sum(f.endswith(".safetensors") for f in files) > 2
  back_cfg, back = emojax.hf.load(out)
  assert back_cfg == cfg
  jax.tree.map(np.testing.assert_array_equal, back, params)
  transformers.Qwen2ForCausalLM.from_pretrained(out)


def test_bf16_conversion_on_the_way_in_and_out(tmp_path):
  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "src")
  cfg, params = emojax.hf.load(src, dtype="bfloat16")
  assert cfg.param_dtype == "bfloat16"
  assert all(x.dtype == jax.numpy.bfloat16 for x in jax.tree.leaves(params))
  out = emojax.hf.save(cfg, params, str(tmp_path / "out"))
  model = transformers.Qwen2ForCausalLM.from_pretrained(out)
  assert str(model.dtype) == "torch.bfloat16"


def test_load_onto_mesh_places_shards_by_rules(tmp_path):
  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "src")
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  cfg, params = emojax.hf.load(src, mesh=mesh)
  w_q = params["layers"]["w_q_LDHE"]  # (layers, embed, heads, head_dim)
  assert w_q.sharding.spec == jax.sharding.PartitionSpec(
    None, "fsdp", "tensor", None
  )
  assert w_q.addressable_shards[0].data.shape == (2, 32, 2, 16)
  _, ref = emojax.hf.load(src)
  jax.tree.map(np.testing.assert_array_equal, params, ref)


def _edit_config(folder, **changes):
  path = os.path.join(folder, "config.json")
  with open(path) as f:
    cfg = json.load(f)
  cfg.update(changes)
  with open(path, "w") as f:
    json.dump(cfg, f)


def _rewrite_tensors(folder, fn):
  path = os.path.join(folder, "model.safetensors")
  tensors = fn(_tensors(folder))
  os.remove(path)
  safetensors_io.write(path, tensors)


def test_bad_checkpoints_fail_with_the_name(tmp_path):
  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "m")
  name = "model.layers.1.mlp.up_proj.weight"

  _rewrite_tensors(src, lambda t: {k: v for k, v in t.items() if k != name})
  with pytest.raises(emojax.hf.CheckpointError, match=f"{name} is missing"):
    emojax.hf.load(src)

  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "m2")
  _rewrite_tensors(src, lambda t: t | {name: t[name][:, :-1].copy()})
  with pytest.raises(emojax.hf.CheckpointError, match=f"{name} has shape"):
    emojax.hf.load(src)

  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "m3")
  path = os.path.join(src, "model.safetensors")
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 100)
  with pytest.raises(
    emojax.hf.CheckpointError, match="model.safetensors: truncated"
  ):
    emojax.hf.load(src)

  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "m4")
  _edit_config(src, architectures=["MistralForCausalLM"])
  with pytest.raises(emojax.hf.CheckpointError, match="MistralForCausalLM"):
    emojax.hf.load(src)

  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "m5")
  _edit_config(src, use_sliding_window=True)
  with pytest.raises(emojax.hf.CheckpointError, match="use_sliding_window"):
    emojax.hf.load(src)


def test_failed_export_leaves_the_old_folder(tmp_path):
  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "src")
  cfg, params = emojax.hf.load(src)
  out = emojax.hf.save(cfg, params, str(tmp_path / "out"))
  before = sorted(os.listdir(out))
  broken = dict(params, final_norm_D=params["final_norm_D"][:-1])
  with pytest.raises(ValueError, match="final_norm_D"):
    emojax.hf.save(cfg, broken, out)
  assert sorted(os.listdir(out)) == before
  assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []


def test_forward_accepts_loaded_bf16_params(tmp_path):
  src = tiny_hf.save(tiny_hf.qwen2(), tmp_path / "src")
  cfg, params = emojax.hf.load(src, dtype="bfloat16")
  logits = model_lib.forward(params, cfg, {"input_ids": np.ones((1, 4), int)})
  assert np.isfinite(np.asarray(logits)).all()
