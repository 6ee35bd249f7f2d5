"""Greedy Qwen2.5-VL rollout with images against transformers' `generate`."""

import jax
import numpy as np
import tiny_vlm_hf
import torch

from emojax import rollout
from emojax.model import config as config_lib

CFG = config_lib.tiny_vlm(tiny_vlm_hf.VOCAB)
N = 8


def _sharpened_model():
  """HF's 0.02 init makes greedy paths collapse to one repeated token, which
  would make parity vacuous: redraw every weight matrix larger."""
  hf_model = tiny_vlm_hf.model(CFG)
  torch.manual_seed(1)
  with torch.no_grad():
    for p in hf_model.parameters():
      if p.ndim >= 2:
        p.normal_(0.0, 0.2)
  return hf_model


def _hf_greedy(hf_model, batch):
  t = {k: torch.as_tensor(v) for k, v in batch.items()}
  t["mm_token_type_ids"] = (t["input_ids"] == CFG.image_token_id).int()
  with torch.no_grad():
    out = hf_model.generate(
      **t,
      do_sample=False,
      max_new_tokens=N,
      min_new_tokens=N,
      eos_token_id=None,
      pad_token_id=CFG.pad_token_id,
    )
  return out[:, batch["input_ids"].shape[1] :].numpy()


def test_greedy_with_images_equals_transformers_generate():
  hf_model = _sharpened_model()
  params = tiny_vlm_hf.emojax_params(CFG, hf_model)
  # Row 0: left-padded image + text; row 1: text only; row 2: text + image,
  # right padded (the engine left-aligns it).
  batch = tiny_vlm_hf.batch(CFG)
  want = _hf_greedy(hf_model, tiny_vlm_hf.left_aligned(batch))
  got = rollout.generate(
    params,
    CFG,
    batch,
    jax.random.key(0),
    num_generations=2,
    max_new_tokens=N,
    greedy=True,
    stop_token_ids=(),
  )
  np.testing.assert_array_equal(got.group(got.completion_ids)[:, 0], want)
  np.testing.assert_array_equal(got.group(got.completion_ids)[:, 1], want)
  assert len(np.unique(want)) > 6  # a real path, not one repeated token
  # The images steer generation: other pixels change the image rows only.
  other = rollout.generate(
    params,
    CFG,
    {**batch, "pixel_values": -batch["pixel_values"]},
    jax.random.key(0),
    num_generations=2,
    max_new_tokens=N,
    greedy=True,
    stop_token_ids=(),
  )
  has_image = (batch["input_ids"] == CFG.image_token_id).any(axis=1)
  changed = (other.group(other.completion_ids)[:, 0] != want).any(axis=1)
  np.testing.assert_array_equal(changed, has_image)
