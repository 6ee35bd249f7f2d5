"""Qwen2.5-Omni thinker import/export: layouts, round trips, parity."""

import json

import numpy as np
import pytest
import tiny_omni_hf
import torch
from safetensors.numpy import save_file
from transformers.models.qwen2_5_omni import configuration_qwen2_5_omni as hfc
from transformers.models.qwen2_5_omni import modeling_qwen2_5_omni as hfm

import emojax.hf
from emojax.hf import qwen2_5_omni as hf_omni
from emojax.hf.errors import CheckpointError
from emojax.model import config as config_lib
from emojax.model import model as model_lib
from emojax.model import params as params_lib

CFG = tiny_omni_hf.CFG


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  hf = tiny_omni_hf.model(CFG, seed=1)
  folder = tmp_path_factory.mktemp("tiny_omni")
  hf.save_pretrained(str(folder))
  batch = tiny_omni_hf.batch(CFG, seed=1)
  return hf, str(folder), batch, tiny_omni_hf.hf_logits(hf, batch)


def test_load_matches_transformers(saved):
  _, folder, batch, ref = saved
  cfg, params = emojax.hf.load(folder)
  assert cfg == CFG
  valid = batch["attention_mask"] > 0
  got = np.asarray(model_lib.forward(params, cfg, batch))
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)


def test_save_loads_in_transformers_and_round_trips(saved, tmp_path):
  _, folder, batch, ref = saved
  cfg, params = emojax.hf.load(folder)
  out = emojax.hf.save(cfg, params, str(tmp_path / "out"))
  back = hfm.Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out)
  valid = batch["attention_mask"] > 0
  np.testing.assert_array_equal(
    tiny_omni_hf.hf_logits(back.eval(), batch)[valid], ref[valid]
  )
  cfg2, params2 = emojax.hf.load(out)
  assert cfg2 == cfg
  for path, leaf in params_lib.flatten(params).items():
    np.testing.assert_array_equal(params_lib.flatten(params2)[path], leaf)


@pytest.mark.parametrize(
  "arch", ["Qwen2_5OmniModel", "Qwen2_5OmniForConditionalGeneration"]
)
def test_released_full_model_layout_imports_the_thinker(saved, tmp_path, arch):
  """Qwen2.5-Omni-7B's folder: `thinker.*` beside talker and token2wav
  (stored in another dtype, which must not decide the params' dtype)."""
  hf, folder, batch, ref = saved
  with open(f"{folder}/config.json") as f:
    thinker = json.load(f)
  full = {
    "architectures": [arch],
    "model_type": "qwen2_5_omni",
    "thinker_config": thinker,
    "talker_config": {"model_type": "qwen2_5_omni_talker"},
  }
  (tmp_path / "config.json").write_text(json.dumps(full))
  tensors = {
    "thinker." + k: v.detach().numpy().copy()
    for k, v in hf.state_dict().items()
  }
  for i in range(200):  # outnumber the thinker's tensors
    tensors[f"talker.model.layers.{i}.w"] = np.zeros((4, 2), np.float16)
  tensors["token2wav.code2wav_dit_model.x"] = np.zeros(3, np.float16)
  save_file(tensors, str(tmp_path / "model.safetensors"))
  cfg, params = emojax.hf.load(str(tmp_path))
  assert cfg == CFG  # param_dtype float32, the thinker's
  valid = batch["attention_mask"] > 0
  got = np.asarray(model_lib.forward(params, cfg, batch))
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)


def test_sharded_export_keeps_fused_parts_together(saved, tmp_path):
  _, folder, _, _ = saved
  cfg, params = emojax.hf.load(folder)
  out = emojax.hf.save(cfg, params, str(tmp_path / "s"), max_shard_bytes=20_000)
  with open(f"{out}/model.safetensors.index.json") as f:
    weight_map = json.load(f)["weight_map"]
  assert len(set(weight_map.values())) > 20
  for i in range(cfg.vision.depth):
    files = {weight_map[f"visual.blocks.{i}.attn.{p}.weight"] for p in "qkv"}
    assert len(files) == 1
  back = hfm.Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out)
  sd = {k: v.detach().numpy() for k, v in back.state_dict().items()}
  for path, leaf in params_lib.flatten(hf_omni.from_tensors(cfg, sd)).items():
    np.testing.assert_array_equal(leaf, params_lib.flatten(params)[path])


def test_both_tensor_layouts_import_the_same(saved):
  hf, _, _, _ = saved
  memory = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
  assert any(k.startswith("model.audio_tower.") for k in memory)
  saved_layout = hf_omni.to_tensors(CFG, hf_omni.from_tensors(CFG, memory))
  assert len(saved_layout) == len(memory)
  for name, value in memory.items():
    got = saved_layout[hf_omni.canonical_name(name)]
    np.testing.assert_array_equal(got, value)


def test_unsupported_audio_configs_are_refused(saved):
  _, folder, _, _ = saved
  with open(f"{folder}/config.json") as f:
    hf = json.load(f)
  hf["audio_config"]["activation_function"] = "relu"
  with pytest.raises(CheckpointError, match="activation_function='relu'"):
    hf_omni.config_from_hf(hf, "config.json")
  del hf["audio_config"]
  with pytest.raises(CheckpointError, match="no audio_config"):
    hf_omni.config_from_hf(hf, "config.json")


def test_extra_thinker_tensors_are_still_refused(saved, tmp_path):
  hf, folder, _, _ = saved
  (tmp_path / "config.json").write_text(open(f"{folder}/config.json").read())
  tensors = {k: v.detach().numpy().copy() for k, v in hf.state_dict().items()}
  tensors["model.audio_tower.extra.weight"] = np.zeros(2, np.float32)
  save_file(tensors, str(tmp_path / "model.safetensors"))
  with pytest.raises(CheckpointError, match="audio_tower.extra.weight"):
    emojax.hf.load(str(tmp_path))


def test_bf16_export_converts(saved, tmp_path):
  _, folder, _, _ = saved
  cfg, params = emojax.hf.load(folder)
  out = emojax.hf.save(cfg, params, str(tmp_path / "bf16"), dtype="bfloat16")
  back = hfm.Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out)
  assert back.model.audio_tower.conv1.weight.dtype == torch.bfloat16


def test_transformers_default_full_config_is_the_7b_thinker():
  """Qwen2_5OmniConfig() describes Qwen2.5-Omni-7B, bar its vision width
  default (3584; the released checkpoint's tower is 1280 wide) and the
  ids its text config leaves unset; it names no mrope_section, which
  transformers' rotary then takes as (16, 24, 24)."""
  hf = hfc.Qwen2_5OmniConfig().to_dict()
  hf["thinker_config"]["vision_config"]["hidden_size"] = 1280
  hf["thinker_config"] |= {"eos_token_id": 151645, "pad_token_id": 151643}
  assert (
    hf_omni.config_from_hf(hf, "config.json") == config_lib.qwen2_5_omni_7b()
  )
  # transformers 4's layout: the sections in text_config.rope_scaling.
  text = hf["thinker_config"]["text_config"]
  theta = text.pop("rope_parameters")["rope_theta"]
  text |= {"rope_theta": theta, "rope_scaling": {"mrope_section": [32, 16, 16]}}
  cfg = hf_omni.config_from_hf(hf, "config.json")
  assert cfg.mrope_section == (32, 16, 16)
