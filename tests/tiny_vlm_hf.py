"""A tiny random Qwen2.5-VL in transformers, and a mixed image/text batch."""

from __future__ import annotations

import numpy as np
import torch
import transformers

from emojax.hf import qwen2_5_vl as hf_vl
from emojax.model import config as config_lib
from emojax.model import vlm

VOCAB = 512


def hf_config(cfg: config_lib.ModelConfig) -> transformers.Qwen2_5_VLConfig:
  """transformers' config for an emojax Qwen2.5-VL config (fp32)."""
  v = cfg.vision
  return transformers.Qwen2_5_VLConfig(
    text_config=dict(
      vocab_size=cfg.vocab_size,
      hidden_size=cfg.hidden_size,
      intermediate_size=cfg.intermediate_size,
      num_hidden_layers=cfg.num_layers,
      num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_kv_heads,
      max_position_embeddings=cfg.max_position_embeddings,
      rms_norm_eps=cfg.rms_norm_eps,
      rope_parameters=dict(
        rope_type="default",
        rope_theta=cfg.rope_theta,
        mrope_section=list(cfg.mrope_section),
      ),
      bos_token_id=None,
      eos_token_id=cfg.eos_token_ids[0],
    ),
    vision_config=dict(
      depth=v.depth,
      hidden_size=v.hidden_size,
      intermediate_size=v.intermediate_size,
      num_heads=v.num_heads,
      patch_size=v.patch_size,
      window_size=v.window_size,
      fullatt_block_indexes=list(v.fullatt_block_indexes),
      out_hidden_size=v.out_hidden_size,
      tokens_per_second=v.tokens_per_second,
    ),
    image_token_id=cfg.image_token_id,
    video_token_id=cfg.video_token_id,
    vision_start_token_id=cfg.vision_start_token_id,
    vision_end_token_id=cfg.vision_start_token_id + 1,
    tie_word_embeddings=cfg.tie_embeddings,
  )


def model(cfg=None, seed: int = 0):
  """A random fp32 `Qwen2_5_VLForConditionalGeneration`, norms/biases too."""
  cfg = cfg or config_lib.tiny_vlm(VOCAB)
  torch.manual_seed(seed)
  m = transformers.Qwen2_5_VLForConditionalGeneration(hf_config(cfg)).eval()
  return randomise_norms(m)


def randomise_norms(m):
  """Norm scales and biases drawn at random, in place: the defaults (norm
  1, bias 0) would hide a swapped norm or a dropped bias."""
  with torch.no_grad():
    for name, p in m.named_parameters():
      if "norm" in name or "ln_" in name or name.endswith(".bias"):
        p.copy_(1.0 + 0.2 * torch.randn_like(p))
  return m


def sharpen(m, seed: int = 1):
  """Every weight matrix redrawn larger, in place: HF's 0.02 init makes
  greedy paths collapse to one repeated token, which would make
  generation parity vacuous."""
  torch.manual_seed(seed)
  with torch.no_grad():
    for p in m.parameters():
      if p.ndim >= 2:
        p.normal_(0.0, 0.2)
  return m


def emojax_params(cfg, hf_model):
  """The same weights through emojax's in-memory importer."""
  sd = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
  return hf_vl.from_tensors(cfg, sd)


def images(seed: int = 0) -> list[np.ndarray]:
  """Two faces of different sizes and aspect ratios (uint8 RGB)."""
  rng = np.random.RandomState(seed)
  return [
    rng.randint(0, 256, (64, 48, 3), np.uint8),
    rng.randint(0, 256, (40, 72, 3), np.uint8),
  ]


def processor(cfg):
  v = cfg.vision
  return transformers.Qwen2VLImageProcessorPil(
    patch_size=v.patch_size,
    merge_size=v.spatial_merge_size,
    temporal_patch_size=v.temporal_patch_size,
    min_pixels=16 * 16,
    max_pixels=96 * 96,
  )


def batch(cfg, seed: int = 0, T: int = 40) -> dict:
  """Row 0: left-padded image A + text; rows 1, 3: text only (3 left
  padded); row 2: text + image B, right padded. Numpy, in HF's names."""
  out = processor(cfg)(images=images(seed), return_tensors="np")
  grid = out["image_grid_thw"]
  rng = np.random.RandomState(seed)
  start = cfg.vision_start_token_id

  def text(n):
    return rng.randint(1, cfg.vocab_size - 8, n).tolist()

  def img(j):
    ids = [start, cfg.image_token_id, start + 1]
    return vlm.expand_image_placeholders(cfg, ids, grid[j : j + 1])

  rows = [
    text(3) + img(0) + text(5),
    text(17),
    text(4) + img(1) + text(2),
    text(T - 6),
  ]
  ids, mask = pad_rows(rows, T, left=(0, 3))
  return {
    "input_ids": ids,
    "attention_mask": mask,
    "pixel_values": out["pixel_values"].astype(np.float32),
    "image_grid_thw": grid.astype(np.int64),
  }


def video_batch(
  cfg, seed: int = 0, T: int = 40, seconds=(0.5, 0.25), image: bool = True
):
  """transformers' layout with videos: row 0 left-padded text + video A
  (3 temporal steps of 4x6 patches) + text; row 1 text + image + text +
  video B (2 steps of 4x4) + text, right padded; row 2 text only. The
  patches are random (the layout, not the pixels, is under test);
  `seconds` is each video's second_per_grid_t; `image=False` leaves row
  1's image out (emojax's pipelines carry one visual per row)."""
  rng = np.random.RandomState(seed)
  start = cfg.vision_start_token_id
  image_grid = np.array([[1, 4, 4]] if image else np.zeros((0, 3), int))
  video_grid = np.array([[3, 4, 6], [2, 4, 4]])

  def text(n):
    return rng.randint(1, cfg.vocab_size - 8, n).tolist()

  def visual(token, grid):  # one placeholder, expanded by emojax
    ids = [start, token, start + 1]
    if token == cfg.video_token_id:
      return vlm.expand_video_placeholders(cfg, ids, grid[None])
    return vlm.expand_image_placeholders(cfg, ids, grid[None])

  rows = [
    text(3) + visual(cfg.video_token_id, video_grid[0]) + text(4),
    text(2)
    + (visual(cfg.image_token_id, image_grid[0]) if image else [])
    + text(3)
    + visual(cfg.video_token_id, video_grid[1])
    + text(2),
    text(11),
  ]
  ids, mask = pad_rows(rows, T, left=(0,))
  return {
    "input_ids": ids,
    "attention_mask": mask,
    **random_visuals(cfg, rng, image_grid, video_grid),
    "second_per_grid_ts": np.asarray(seconds, np.float32),
  }


def random_visuals(cfg, rng, image_grid, video_grid) -> dict:
  """Random patches for these grids, in transformers' names (the layout,
  not the pixels, is under test)."""
  v = cfg.vision
  C = 3 * v.temporal_patch_size * v.patch_size**2
  patches = lambda g: rng.randn(int(np.prod(g, axis=-1).sum()), C)
  return {
    "pixel_values": patches(image_grid).astype(np.float32),
    "image_grid_thw": np.asarray(image_grid, np.int64),
    "pixel_values_videos": patches(video_grid).astype(np.float32),
    "video_grid_thw": np.asarray(video_grid, np.int64),
  }


def pad_rows(rows, T: int, left=()) -> tuple[np.ndarray, np.ndarray]:
  """(input_ids, attention_mask) [len(rows), T]: the rows in `left` left
  padded, the others right padded."""
  ids = np.zeros((len(rows), T), np.int64)
  mask = np.zeros((len(rows), T), np.int64)
  for b, row in enumerate(rows):
    s = T - len(row) if b in left else 0
    ids[b, s : s + len(row)] = row
    mask[b, s : s + len(row)] = 1
  return ids, mask


def left_aligned(b: dict) -> dict:
  """The same rows left-padded (transformers' generate and GRPO need that)."""
  ids, mask = b["input_ids"], b["attention_mask"]
  out_ids, out_mask = np.zeros_like(ids), np.zeros_like(mask)
  for r in range(len(ids)):
    real = ids[r][mask[r] > 0]
    out_ids[r, len(ids[r]) - len(real) :] = real
    out_mask[r, len(ids[r]) - len(real) :] = 1
  return {**b, "input_ids": out_ids, "attention_mask": out_mask}


def hf_greedy(hf_model, b: dict, n: int, pad_id: int = 0) -> np.ndarray:
  """transformers' greedy `generate`: exactly n new tokens per row."""
  t = {k: torch.as_tensor(v) for k, v in b.items()}
  if "mm_token_type_ids" in t:
    t["mm_token_type_ids"] = t["mm_token_type_ids"].int()
  with torch.no_grad():
    out = hf_model.generate(
      **t,
      do_sample=False,
      max_new_tokens=n,
      min_new_tokens=n,
      eos_token_id=None,
      pad_token_id=pad_id,
    )
  return out[:, b["input_ids"].shape[1] :].numpy()


def hf_logits(hf_model, cfg, b: dict) -> np.ndarray:
  with torch.no_grad():
    out = hf_model(**_torch(cfg, b))
  return out.logits.numpy()


def hf_rope_index(hf_model, cfg, b: dict) -> tuple[np.ndarray, np.ndarray]:
  t = _torch(cfg, b)
  pos, deltas = hf_model.model.get_rope_index(
    t["input_ids"],
    mm_token_type_ids=t["mm_token_type_ids"],
    image_grid_thw=t["image_grid_thw"],
    video_grid_thw=t.get("video_grid_thw"),
    second_per_grid_ts=t.get("second_per_grid_ts"),
    attention_mask=t["attention_mask"],
  )
  return pos.numpy(), deltas.numpy().reshape(-1)


def mm_token_types(cfg, ids):
  """transformers' modality per token: text 0, image 1, video 2."""
  ids = torch.as_tensor(ids)
  return (ids == cfg.image_token_id).int() + 2 * (
    ids == cfg.video_token_id
  ).int()


def _torch(cfg, b: dict) -> dict:
  t = {k: torch.as_tensor(v) for k, v in b.items()}
  t["mm_token_type_ids"] = mm_token_types(cfg, t["input_ids"])
  return t
