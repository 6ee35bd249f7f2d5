"""Image merging, 3-D positions and full VLM logits against transformers."""

import functools

import jax
import numpy as np
import pytest
import tiny_vlm_hf

from emojax import sharding
from emojax.model import config as config_lib
from emojax.model import model as model_lib
from emojax.model import params as params_lib
from emojax.model import specs as model_specs
from emojax.model import vlm

CFG = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)


@pytest.fixture(scope="module")
def setup():
  hf = tiny_vlm_hf.model(CFG)
  batch = tiny_vlm_hf.batch(CFG)
  ref = tiny_vlm_hf.hf_logits(hf, CFG, batch)
  return hf, tiny_vlm_hf.emojax_params(CFG, hf), batch, ref


def test_rope_index_matches_transformers(setup):
  hf, _, batch, _ = setup
  ref_pos, ref_delta = tiny_vlm_hf.hf_rope_index(hf, CFG, batch)
  pos, delta = vlm.get_rope_index(
    CFG, batch["input_ids"], batch["image_grid_thw"], batch["attention_mask"]
  )
  np.testing.assert_array_equal(pos, ref_pos)
  np.testing.assert_array_equal(delta, ref_delta)
  # Image positions really are 3-D (rows and columns differ).
  assert (pos[1] != pos[2]).any()


def test_logits_match_transformers(setup):
  _, params, batch, ref = setup
  valid = batch["attention_mask"] > 0
  got = np.asarray(model_lib.forward(params, CFG, batch))
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)


def test_sharded_jit_equals_unsharded(setup):
  _, params, batch, ref = setup
  valid = batch["attention_mask"] > 0
  # A fixed patch budget, as a training pipeline would use.
  prepared = vlm.prepare(CFG, batch, num_patches=128)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  specs = model_specs(CFG)
  placed = jax.device_put(params, params_lib.shardings(specs, mesh, None))
  vision_leaves = jax.tree.leaves(placed["vision"])
  assert any(not x.sharding.is_fully_replicated for x in vision_leaves)
  fwd = jax.jit(functools.partial(model_lib.forward, cfg=CFG))
  with sharding.use_rules(mesh):
    got = np.asarray(fwd(placed, batch=prepared))
  plain = np.asarray(
    jax.jit(functools.partial(model_lib.forward, cfg=CFG))(
      params, batch=prepared
    )
  )
  np.testing.assert_allclose(got[valid], plain[valid], atol=1e-5, rtol=0)
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)


def test_traced_grid_without_prepare_says_what_to_do(setup):
  _, params, batch, _ = setup
  fwd = jax.jit(functools.partial(model_lib.forward, cfg=CFG))
  with pytest.raises(ValueError, match=r"vlm.prepare\(cfg, batch\)"):
    fwd(params, batch=batch)


def test_specs_are_decoder_plus_vision(setup):
  _, params, _, _ = setup
  specs = model_specs(CFG)
  params_lib.check_tree(specs, params)
  assert set(specs) - {"vision"} == set(
    model_specs(CFG.replace(vision=None, family="qwen2"))
  )
  assert 1e6 < params_lib.count(specs) < 1e7  # "a few million"


def test_trainable_mask_freezes_vision_only(setup):
  _, params, _, _ = setup
  mask = vlm.trainable_mask(params, freeze_vision=True)
  flat = params_lib.flatten(mask)
  assert all(v == (k[0] != "vision") for k, v in flat.items())
  assert all(jax.tree.leaves(vlm.trainable_mask(params, freeze_vision=False)))
  tower_only = params_lib.flatten(vlm.trainable_mask(params, True, True))
  assert any(k[:2] == ("vision", "merger") for k in tower_only)
  assert all(
    v == (k[0] != "vision" or k[1] == "merger") for k, v in tower_only.items()
  )


def test_expand_image_placeholders():
  grid = np.array([[1, 4, 6], [1, 2, 2]])
  img, s = CFG.image_token_id, CFG.vision_start_token_id
  got = vlm.expand_image_placeholders(CFG, [7, s, img, 9, s, img, 8], grid)
  assert got == [7, s] + [img] * 6 + [9, s, img, 8]
  with pytest.raises(ValueError, match="1 image placeholders.*2 images"):
    vlm.expand_image_placeholders(CFG, [7, img], grid)


def _check(batch, **changes):
  b = dict(batch) | changes
  return vlm.check_batch(
    CFG,
    b["input_ids"],
    b["attention_mask"],
    b["pixel_values"],
    b["image_grid_thw"],
  )


def test_placeholder_image_count_mismatch_names_rows(setup):
  _, _, batch, _ = setup
  grid = batch["image_grid_thw"]
  extra = np.concatenate([grid, [[1, 2, 2]]])
  pixels = np.concatenate([batch["pixel_values"], batch["pixel_values"][:4]])
  with pytest.raises(ValueError, match=r"per row: \[1, 0, 1, 0\].*3 images"):
    _check(batch, image_grid_thw=extra, pixel_values=pixels)


def test_truncated_prompt_names_the_row(setup):
  _, _, batch, _ = setup
  ids, mask = batch["input_ids"].copy(), batch["attention_mask"].copy()
  first = np.flatnonzero(ids[2] == CFG.image_token_id)[0]
  mask[2, first + 3 :] = 0  # right-truncated through image B
  ids[2, first + 3 :] = 0
  with pytest.raises(ValueError, match="row 2.*truncated through its image"):
    _check(batch, input_ids=ids, attention_mask=mask)


def test_unexpanded_placeholder_names_the_fix(setup):
  _, _, batch, _ = setup
  ids = batch["input_ids"].copy()
  pads = np.flatnonzero(ids[0] == CFG.image_token_id)
  ids[0, pads[1:]] = 5
  with pytest.raises(ValueError, match="row 0.*expand_image_placeholders"):
    _check(batch, input_ids=ids)


def test_bad_channels_fail_before_compute(setup):
  _, params, batch, _ = setup
  gray = batch["pixel_values"][:, : 2 * 8 * 8]
  with pytest.raises(ValueError, match="channel"):
    model_lib.forward(params, CFG, batch | {"pixel_values": gray})


def test_a_frozen_tower_is_not_differentiated(setup):
  """freeze_vision: the tower's gradient is exactly zero and the language
  model's is unchanged, and the compiled gradient no longer holds the
  tower's backward (fewer FLOPs); the merger trains when asked."""
  from emojax.train import sft

  _, params, batch, _ = setup
  batch = dict(vlm.prepare(CFG, batch, num_patches=128))
  batch["loss_mask"] = batch["attention_mask"]

  def grads(frozen):
    return sft.grads(params, batch, 10.0, cfg=CFG, frozen=frozen)[0]

  free, frozen, merger = grads((False,)), grads((True,)), grads((True, True))
  flat = [params_lib.flatten(g) for g in (free, frozen, merger)]
  for k, g in flat[0].items():
    if k[0] == "vision":
      assert not np.any(flat[1][k]) and np.any(g)
      assert np.any(flat[2][k]) == (k[1] == "merger")
    else:
      np.testing.assert_allclose(flat[1][k], g, rtol=1e-5, atol=1e-7)

  def flops(frozen):
    fn = functools.partial(sft.grads, cfg=CFG, frozen=frozen)
    cost = jax.jit(fn).lower(params, batch, 10.0).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]

  assert flops((True,)) < 0.85 * flops((False,))
