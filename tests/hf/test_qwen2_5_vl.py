"""Qwen2.5-VL import/export: configs, tensor names, round trips, parity."""

import json

import numpy as np
import pytest
import tiny_vlm_hf
import transformers

import emojax.hf
from emojax.hf import qwen2_5_vl as hf_vl
from emojax.hf.errors import CheckpointError
from emojax.model import config as config_lib
from emojax.model import model as model_lib
from emojax.model import params as params_lib

CFG = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  hf = tiny_vlm_hf.model(CFG, seed=1)
  folder = tmp_path_factory.mktemp("tiny_vl")
  hf.save_pretrained(str(folder))
  batch = tiny_vlm_hf.batch(CFG, seed=1)
  return hf, str(folder), batch, tiny_vlm_hf.hf_logits(hf, CFG, batch)


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
  back = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(out)
  valid = batch["attention_mask"] > 0
  got = tiny_vlm_hf.hf_logits(back, cfg, batch)
  np.testing.assert_array_equal(got[valid], ref[valid])
  cfg2, params2 = emojax.hf.load(out)
  assert cfg2 == cfg
  for path, leaf in params_lib.flatten(params).items():
    np.testing.assert_array_equal(params_lib.flatten(params2)[path], leaf)


def test_both_tensor_layouts_import_the_same(saved):
  hf, _, _, _ = saved
  memory = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
  assert any(k.startswith("model.language_model.") for k in memory)
  released = hf_vl.to_tensors(CFG, hf_vl.from_tensors(CFG, memory))
  assert any(k.startswith("visual.") for k in released)
  assert len(released) == len(memory)
  for name, value in memory.items():
    np.testing.assert_array_equal(released[hf_vl.canonical_name(name)], value)


def test_released_config_layout_reads_the_same(saved):
  _, folder, _, _ = saved
  with open(f"{folder}/config.json") as f:
    nested = json.load(f)
  old = hf_vl.config_to_hf(CFG, "float32")
  assert "text_config" not in old and old["rope_scaling"]["type"] == "mrope"
  assert hf_vl.config_from_hf(nested, "nested") == CFG
  assert hf_vl.config_from_hf(old, "released") == CFG


def test_7b_preset_matches_transformers_reading_of_its_config():
  cfg = config_lib.qwen2_5_vl_7b()
  hf = transformers.Qwen2_5_VLConfig(**hf_vl.config_to_hf(cfg, "bfloat16"))
  t, v = hf.text_config, hf.vision_config
  assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads) == (
    3584,
    28,
    28,
  )
  assert (t.num_key_value_heads, t.intermediate_size, t.vocab_size) == (
    4,
    18944,
    152064,
  )
  assert t.rope_parameters["mrope_section"] == [16, 24, 24]
  assert t.rope_parameters["rope_theta"] == 1e6
  assert (v.depth, v.hidden_size, v.out_hidden_size) == (32, 1280, 3584)
  assert list(v.fullatt_block_indexes) == [7, 15, 23, 31]
  assert (hf.image_token_id, hf.vision_start_token_id) == (151655, 151652)
  assert hf.vision_end_token_id == 151653
  assert hf_vl.config_from_hf(hf_vl.config_to_hf(cfg, "bf16"), "7b") == cfg


def test_bad_mrope_config_is_refused():
  bad = hf_vl.config_to_hf(CFG, "float32")
  bad["rope_scaling"]["mrope_section"] = [4, 4, 4]
  with pytest.raises(CheckpointError, match="mrope_section.*head_dim"):
    hf_vl.config_from_hf(bad, "cfg.json")
