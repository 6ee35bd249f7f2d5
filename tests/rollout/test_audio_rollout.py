"""Greedy Qwen2.5-Omni rollout with clips against transformers' `generate`."""

import jax
import numpy as np
import tiny_omni_hf
import tiny_vlm_hf

from emojax import rollout

CFG = tiny_omni_hf.CFG
N = 8


def _generate(params, batch):
  return rollout.generate(
    params,
    CFG,
    batch,
    jax.random.key(0),
    num_generations=2,
    max_new_tokens=N,
    greedy=True,
    stop_token_ids=(),
  )


def test_greedy_with_clips_equals_transformers_generate():
  hf_model = tiny_vlm_hf.sharpen(tiny_omni_hf.model(CFG))
  params = tiny_omni_hf.emojax_params(CFG, hf_model)
  # Rows: clip + text (left padded), text + image + clip, text, clip +
  # text (right padded: the engine left-aligns it).
  batch = tiny_omni_hf.batch(CFG)
  want = tiny_vlm_hf.hf_greedy(hf_model, tiny_vlm_hf.left_aligned(batch), N)
  got = _generate(params, batch)
  np.testing.assert_array_equal(got.group(got.completion_ids)[:, 0], want)
  np.testing.assert_array_equal(got.group(got.completion_ids)[:, 1], want)
  assert len(np.unique(want)) > 6  # a real path, not one repeated token
  # The clips steer generation: other features change the clip rows only.
  other = _generate(
    params, {**batch, "input_features": batch["input_features"] + 0.5}
  )
  has_clip = (batch["input_ids"] == CFG.audio_token_id).any(axis=1)
  changed = (other.group(other.completion_ids)[:, 0] != want).any(axis=1)
  np.testing.assert_array_equal(changed, has_clip)
