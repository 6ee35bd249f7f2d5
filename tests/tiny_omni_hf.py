"""A tiny random Qwen2.5-Omni thinker in transformers, and a batch that
mixes clips, an image and text."""

from __future__ import annotations

import numpy as np
import tiny_vlm_hf
import torch
from transformers.models.qwen2_5_omni import configuration_qwen2_5_omni as hfc
from transformers.models.qwen2_5_omni import modeling_qwen2_5_omni as hfm

from emojax.data import audio_features
from emojax.hf import qwen2_5_omni as hf_omni
from emojax.model import audio_lm, tmrope
from emojax.model import config as config_lib

VOCAB = tiny_vlm_hf.VOCAB
# Short chunks (10 frames) so a 0.4-s clip already spans several.
CFG = config_lib.tiny_omni(VOCAB)
CFG = CFG.replace(audio=CFG.audio.replace(n_window=5))


def hf_config(cfg: config_lib.ModelConfig) -> hfc.Qwen2_5OmniThinkerConfig:
  """transformers' thinker config for an emojax Qwen2.5-Omni config."""
  vl = tiny_vlm_hf.hf_config(cfg)
  a = cfg.audio
  return hfc.Qwen2_5OmniThinkerConfig(
    text_config=vl.text_config.to_dict(),
    vision_config=vl.vision_config.to_dict(),
    audio_config=dict(
      num_mel_bins=a.num_mel_bins,
      encoder_layers=a.encoder_layers,
      encoder_attention_heads=a.encoder_attention_heads,
      encoder_ffn_dim=a.encoder_ffn_dim,
      d_model=a.d_model,
      max_source_positions=a.max_source_positions,
      n_window=a.n_window,
      output_dim=a.output_dim,
    ),
    audio_token_index=cfg.audio_token_id,
    audio_start_token_id=cfg.audio_token_id + 1,
    audio_end_token_id=cfg.audio_token_id + 2,
    image_token_index=cfg.image_token_id,
    video_token_index=cfg.video_token_id,
    vision_start_token_id=cfg.vision_start_token_id,
    vision_end_token_id=cfg.vision_start_token_id + 1,
    tie_word_embeddings=cfg.tie_embeddings,
    position_id_per_seconds=cfg.vision.tokens_per_second,
    seconds_per_chunk=cfg.audio.seconds_per_chunk,
  )


def model(cfg=CFG, seed: int = 0):
  """A random fp32 thinker; norms and biases random too."""
  torch.manual_seed(seed)
  m = hfm.Qwen2_5OmniThinkerForConditionalGeneration(hf_config(cfg)).eval()
  return tiny_vlm_hf.randomise_norms(m)


def emojax_params(cfg, hf_model):
  sd = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
  return hf_omni.from_tensors(cfg, sd)


def clips(seed: int = 0) -> list[np.ndarray]:
  """Three 16 kHz clips (glides with noise): 0.37 s, 0.11 s, 0.24 s."""
  rng = np.random.RandomState(seed)
  out = []
  for n in (5920, 1760, 3840):
    t = np.arange(n) / audio_features.SAMPLING_RATE
    tone = np.sin(2 * np.pi * rng.uniform(120, 300) * t * (1 + t))
    out.append((0.3 * tone + 0.02 * rng.randn(n)).astype(np.float32))
  return out


def audio_inputs(cfg, seed: int = 0, max_frames: int = 48) -> dict:
  feats, lens = zip(
    *(
      audio_features.log_mel(c, cfg.audio.num_mel_bins, max_frames)
      for c in clips(seed)
    ),
    strict=True,
  )
  lens = np.asarray(lens, np.int64)
  return {
    "input_features": np.stack(feats),
    "feature_attention_mask": (
      np.arange(max_frames)[None] < lens[:, None]
    ).astype(np.int64),
  }


def batch(cfg=CFG, seed: int = 0, T: int = 48) -> dict:
  """Row 0: clip 0 + text, left padded; row 1: text, image, clip 1; row 2:
  text only, left padded; row 3: clip 2 then text, right padded."""
  vis = tiny_vlm_hf.processor(cfg)(
    images=tiny_vlm_hf.images(seed)[:1], return_tensors="np"
  )
  aud = audio_inputs(cfg, seed)
  lens = aud["feature_attention_mask"].sum(-1)
  rng = np.random.RandomState(seed)
  start, a = cfg.vision_start_token_id, cfg.audio_token_id

  def text(n):
    return rng.randint(1, cfg.vocab_size - 10, n).tolist()

  def clip(j):
    ids = [a + 1, a, a + 2]
    return audio_lm.expand_audio_placeholders(cfg, ids, lens[j : j + 1])

  img = tiny_vlm_hf.vlm.expand_image_placeholders(
    cfg, [start, cfg.image_token_id, start + 1], vis["image_grid_thw"]
  )
  rows = [
    text(2) + clip(0) + text(3),
    text(2) + img + clip(1) + text(2),
    text(11),
    clip(2) + text(4),
  ]
  ids, mask = tiny_vlm_hf.pad_rows(rows, T, left=(0, 2))
  return {
    "input_ids": ids,
    "attention_mask": mask,
    "pixel_values": vis["pixel_values"].astype(np.float32),
    "image_grid_thw": vis["image_grid_thw"].astype(np.int64),
    **aud,
  }


def hf_logits(hf_model, b: dict) -> np.ndarray:
  with torch.no_grad():
    out = hf_model(**{k: torch.as_tensor(v) for k, v in b.items()})
  return out.logits.numpy()


def sound_batch(cfg, seed: int = 0, T: int = 96) -> dict:
  """Videos with their sound, in transformers' layout (use_audio_in_video):
  row 0, left padded: text, video A (4 steps of 4x4 patches, 0.5 s each)
  with a 1.3-s clip, text; row 1: text, an image, text, a lone 0.37-s
  clip, text, video B (2 steps of 4x6, 1 s each) with a 0.24-s clip,
  text, right padded; row 2: text only. With 1-s chunks (25 positions)
  A and its clip interleave twice; B's second chunk has no sound."""
  rng = np.random.RandomState(seed)
  start, a = cfg.vision_start_token_id, cfg.audio_token_id
  image_grid = np.array([[1, 4, 4]])
  video_grid = np.array([[4, 4, 4], [2, 4, 6]])
  seconds = np.array([0.5, 1.0], np.float32)
  short = clips(seed)
  waves = [_glide(rng, 20800), short[0], short[2]]  # A's, lone, B's
  feats, lens = zip(
    *(audio_features.log_mel(w, cfg.audio.num_mel_bins, 160) for w in waves),
    strict=True,
  )
  lens = np.asarray(lens, np.int64)

  def text(n):
    return rng.randint(1, cfg.vocab_size - 10, n).tolist()

  def with_sound(j, clip):
    return tmrope.expand_video_audio_placeholders(
      cfg,
      [start, cfg.video_token_id, start + 1],
      video_grid[j : j + 1],
      seconds[j : j + 1],
      lens[clip : clip + 1],
    )

  lone = audio_lm.expand_audio_placeholders(cfg, [a + 1, a, a + 2], lens[1:2])
  img = tiny_vlm_hf.vlm.expand_image_placeholders(
    cfg, [start, cfg.image_token_id, start + 1], image_grid
  )
  rows = [
    text(3) + with_sound(0, 0) + text(4),
    text(2) + img + text(2) + lone + text(1) + with_sound(1, 2) + text(2),
    text(11),
  ]
  ids, mask = tiny_vlm_hf.pad_rows(rows, T, left=(0,))
  return {
    "input_ids": ids,
    "attention_mask": mask,
    **tiny_vlm_hf.random_visuals(cfg, rng, image_grid, video_grid),
    "video_second_per_grid": seconds,
    "input_features": np.stack(feats),
    "feature_attention_mask": (np.arange(160)[None] < lens[:, None]).astype(
      np.int64
    ),
    "use_audio_in_video": True,
  }


def _glide(rng, n: int) -> np.ndarray:
  t = np.arange(n) / audio_features.SAMPLING_RATE
  tone = np.sin(2 * np.pi * rng.uniform(120, 300) * t * (1 + t))
  return (0.3 * tone + 0.02 * rng.randn(n)).astype(np.float32)


def hf_rope_index_with_sound(hf_model, b: dict):
  """transformers' positions and deltas of a `sound_batch`-style batch
  (use_audio_in_video=True), as torch tensors."""
  t = {k: torch.as_tensor(v) for k, v in b.items()}
  return hf_model.get_rope_index(
    t["input_ids"],
    t["image_grid_thw"],
    t["video_grid_thw"],
    t["attention_mask"],
    True,
    t["feature_attention_mask"].sum(-1),
    t["video_second_per_grid"],
  )
