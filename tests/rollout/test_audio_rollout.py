"""Greedy Qwen2.5-Omni rollout with clips against transformers' `generate`."""

import jax
import numpy as np
import tiny_omni_hf
import tiny_vlm_hf
import torch

from emojax import rollout
from emojax.model import vlm

CFG = tiny_omni_hf.CFG
N = 8


def _generate(params, batch, cfg=CFG, num_generations=2):
  return rollout.generate(
    params,
    cfg,
    batch,
    jax.random.key(0),
    num_generations=num_generations,
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


def _greedy_at_max_plus_one(hf_model, b, n):
  """transformers' forward, greedily, each new token one past the row's
  largest position (Qwen's and vLLM's rule; transformers 5.x's `generate`
  continues from the last prompt position instead, which differs when a
  sound's last chunk ends below its video's rows and columns)."""
  t = {k: torch.as_tensor(v) for k, v in b.items()}
  t["use_audio_in_video"] = True
  pos, _ = tiny_omni_hf.hf_rope_index_with_sound(hf_model, b)
  top = pos.amax(dim=(0, 2))
  out = []
  for k in range(n):
    step = (top + 1 + torch.arange(k)[:, None]).T[None].expand(3, -1, -1)
    new = torch.as_tensor(np.asarray(out, np.int64).T.reshape(len(top), k))
    with torch.no_grad():
      logits = hf_model(
        **t
        | {
          "input_ids": torch.cat([t["input_ids"], new], 1),
          "attention_mask": torch.cat(
            [t["attention_mask"], torch.ones_like(new)], 1
          ),
          "position_ids": torch.cat([pos, step], 2),
        }
      ).logits
    out.append(logits[:, -1].argmax(-1).numpy())
  return np.stack(out, 1)


def test_greedy_with_videos_and_their_sound_equals_transformers():
  """TMRoPE's interleaved prompts (tiny_omni_hf.sound_batch); row 0's
  sound ends its video's last chunk, so its decoding starts above its
  last prompt position."""
  cfg = CFG.replace(audio=CFG.audio.replace(seconds_per_chunk=1))
  hf_model = tiny_vlm_hf.sharpen(tiny_omni_hf.model(cfg))
  params = tiny_omni_hf.emojax_params(cfg, hf_model)
  batch = tiny_omni_hf.sound_batch(cfg)
  want = _greedy_at_max_plus_one(hf_model, tiny_vlm_hf.left_aligned(batch), N)
  got = _generate(params, batch, cfg, num_generations=1)
  np.testing.assert_array_equal(got.completion_ids, want)
  assert len(np.unique(want)) > 6
  one = vlm.prepare(cfg, batch)
  last = np.flatnonzero(batch["attention_mask"][0])[-1]
  assert one["position_ids"][:, 0].max() > one["position_ids"][0, 0, last]
