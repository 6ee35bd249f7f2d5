"""Qwen2.5-Omni's audio tower and thinker logits against transformers."""

import functools

import jax
import numpy as np
import pytest
import tiny_omni_hf
import torch

from emojax import sharding
from emojax.model import audio, audio_lm, vlm
from emojax.model import model as model_lib
from emojax.model import params as params_lib
from emojax.model import specs as model_specs

CFG = tiny_omni_hf.CFG


@pytest.fixture(scope="module")
def setup():
  hf = tiny_omni_hf.model(CFG)
  batch = tiny_omni_hf.batch(CFG)
  ref = tiny_omni_hf.hf_logits(hf, batch)
  return hf, tiny_omni_hf.emojax_params(CFG, hf), batch, ref


def test_tower_equals_transformers_on_ragged_clips(setup):
  hf, params, batch, _ = setup
  lens = batch["feature_attention_mask"].sum(-1)
  # 37, 11, 24 frames: 4, 2 and 3 chunks of 10, each with a short tail.
  assert (lens % (2 * CFG.audio.n_window)).all()
  with torch.no_grad():
    ref = hf.get_audio_features(
      torch.as_tensor(batch["input_features"]),
      feature_attention_mask=torch.as_tensor(batch["feature_attention_mask"]),
    ).last_hidden_state.numpy()
  out_AUO = jax.jit(audio.encode, static_argnums=1)(
    params["audio"], CFG.audio, batch["input_features"], lens
  )
  n = audio.num_tokens(lens)
  got = np.concatenate([np.asarray(out_AUO)[a, :k] for a, k in enumerate(n)])
  assert len(got) == len(ref) == n.sum()
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
  lm_lens = hf.model.audio_tower._get_feat_extract_output_lengths(
    torch.as_tensor(lens)
  )[1]
  np.testing.assert_array_equal(n, lm_lens.numpy())


@pytest.mark.parametrize("lens", [[20, 3, 30], [10, 4, 2 * 100 + 7]])
def test_tower_equals_transformers_at_chunk_edges(setup, lens):
  """Whole chunks (20, 30, 10 frames), the shortest clips (3, 4 frames)."""
  hf, params, _, _ = setup
  lens = np.asarray(lens)
  feats = np.random.RandomState(0).randn(3, 128, lens.max()).astype(np.float32)
  mask = (np.arange(lens.max())[None] < lens[:, None]).astype(np.int64)
  with torch.no_grad():
    ref = hf.get_audio_features(
      torch.as_tensor(feats), feature_attention_mask=torch.as_tensor(mask)
    ).last_hidden_state.numpy()
  n = audio.num_tokens(lens)
  chunks = audio.real_chunks(CFG.audio, lens, feats.shape[-1], bucket=4)
  assert len(chunks) % 4 == 0 and (chunks == 3 * feats.shape[-1] // 10).any()
  for chunks_Y in (None, chunks):  # every chunk, or the ones with frames
    out_AUO = audio.encode(
      params["audio"], CFG.audio, feats, lens, chunks_Y=chunks_Y
    )
    got = np.concatenate([np.asarray(out_AUO)[a, :k] for a, k in enumerate(n)])
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_prepare_crops_the_padding_and_changes_nothing(setup):
  _, params, batch, ref = setup
  valid = batch["attention_mask"] > 0
  padded = {  # as the processor pads: 30 s of frames
    **batch,
    "input_features": np.pad(
      batch["input_features"], ((0, 0), (0, 0), (0, 3000 - 48))
    ),
    "feature_attention_mask": np.pad(
      batch["feature_attention_mask"], ((0, 0), (0, 3000 - 48))
    ),
  }
  prepared = vlm.prepare(CFG, audio_lm.prepare(CFG, padded), num_patches=64)
  # Longest clip 37 frames: four whole 10-frame chunks; of the 12, the
  # clips (37, 11, 24 frames) fill 4 + 2 + 3, padded to 16 ids.
  assert prepared["input_features"].shape[-1] == 40
  np.testing.assert_array_equal(
    prepared[audio_lm.CHUNKS_KEY], [0, 1, 2, 3, 4, 5, 8, 9, 10] + [12] * 7
  )
  got = np.asarray(
    jax.jit(model_lib.forward, static_argnums=1)(params, CFG, prepared)
  )
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)


def test_logits_match_transformers(setup):
  _, params, batch, ref = setup
  valid = batch["attention_mask"] > 0
  got = np.asarray(model_lib.forward(params, CFG, batch))
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)


def test_the_clips_steer_the_logits_of_their_rows_only(setup):
  _, params, batch, ref = setup
  valid = batch["attention_mask"] > 0
  louder = {**batch, "input_features": batch["input_features"] + 0.5}
  got = np.asarray(model_lib.forward(params, CFG, louder))
  has_clip = (batch["input_ids"] == CFG.audio_token_id).any(1)
  moved = [np.abs(got[b] - ref[b])[valid[b]].max() > 1e-3 for b in range(4)]
  np.testing.assert_array_equal(moved, has_clip)


def test_sharded_jit_equals_unsharded(setup):
  _, params, batch, ref = setup
  valid = batch["attention_mask"] > 0
  prepared = vlm.prepare(CFG, batch, num_patches=64)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  placed = jax.device_put(
    params, params_lib.shardings(model_specs(CFG), mesh, None)
  )
  assert any(
    not x.sharding.is_fully_replicated for x in jax.tree.leaves(placed["audio"])
  )
  fwd = jax.jit(functools.partial(model_lib.forward, cfg=CFG))
  with sharding.use_rules(mesh):
    got = np.asarray(fwd(placed, batch=prepared))
  np.testing.assert_allclose(got[valid], ref[valid], atol=1e-4, rtol=0)


def test_mismatched_clips_and_prompts_name_the_row(setup):
  _, params, batch, _ = setup
  ids = batch["input_ids"].copy()
  row3 = np.flatnonzero(ids[3] == CFG.audio_token_id)
  ids[3, row3[-1]] = 7  # clip 2's run one placeholder short
  with pytest.raises(ValueError, match=r"row 3: .* has 5 placeholders .* 6"):
    audio_lm.check_batch(CFG, {**batch, "input_ids": ids})
  cut = batch["attention_mask"].copy()
  cut[3, row3[-1] + 1 :] = 0  # row 3 truncated inside its clip
  with pytest.raises(
    ValueError, match="row 3: the prompt ends inside its audio run"
  ):
    audio_lm.check_batch(CFG, {**batch, "attention_mask": cut})
  no_audio = {
    k: v
    for k, v in batch.items()
    if k not in ("input_features", "feature_attention_mask")
  }
  with pytest.raises(ValueError, match="need input_features"):
    audio_lm.check_batch(CFG, no_audio)
  with pytest.raises(ValueError, match="no audio tower"):
    audio_lm.check_batch(CFG.replace(audio=None), batch)
  # Without a tower the placeholder id is just a token.
  audio_lm.check_batch(CFG.replace(audio=None), no_audio)
  with pytest.raises(ValueError, match="need input_features"):
    model_lib.forward(params, CFG, no_audio)
  short = {k: v for k, v in batch.items() if k != "feature_attention_mask"} | {
    "audio_feature_lengths": np.array([37, 2, 24])
  }
  with pytest.raises(ValueError, match="clip 1: feature_lens=2 frames"):
    audio_lm.check_batch(CFG, short)
  with pytest.raises(ValueError, match="2 clips were given"):
    audio_lm.expand_audio_placeholders(CFG, [1, CFG.audio_token_id], [20, 30])


def test_specs_add_the_audio_tower(setup):
  _, params, _, _ = setup
  specs = model_specs(CFG)
  params_lib.check_tree(specs, params)
  assert set(specs) - set(model_specs(CFG.replace(audio=None))) == {"audio"}
  with pytest.raises(ValueError, match="output_dim=8 must equal"):
    model_specs(CFG.replace(audio=CFG.audio.replace(output_dim=8)))


def test_freezing_the_towers_freezes_the_audio_tower_too(setup):
  _, params, _, _ = setup
  mask = params_lib.flatten(vlm.trainable_mask(params, freeze_vision=True))
  assert not any(v for k, v in mask.items() if k[0] in ("audio", "vision"))
  assert all(v for k, v in mask.items() if k[0] not in ("audio", "vision"))
  with_merger = vlm.trainable_mask(params, True, train_merger=True)
  assert not any(jax.tree.leaves(with_merger["audio"]))
  assert all(jax.tree.leaves(vlm.trainable_mask(params, False)))
