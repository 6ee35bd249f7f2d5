"""VLM forward: emojax (jit) vs transformers (torch) on the same weights.

  python launch/benchmark.py vlm_forward [--batch=8] [--text=48] [--iters=5]

The tiny_vlm preset, fp32, random weights; each row is one 64x64 face
(8x8 patches -> 16 image tokens) plus `--text` text tokens. Reports
images/s and tokens/s of the full forward (vision tower + merge + LM).
"""

import argparse

import jax
import numpy as np
import torch
import transformers

from benchmarks import _common
from emojax.hf import qwen2_5_vl as hf_vl
from emojax.model import config as config_lib
from emojax.model import model as model_lib
from emojax.model import vision, vlm

GRID = (1, 8, 8)  # a 64x64 face


def _batch(cfg, rows: int, text: int) -> dict:
  rng = np.random.RandomState(0)
  grid = np.array([GRID] * rows)
  pixels = rng.randn(int(grid.prod(-1).sum()), vision.patch_dim(cfg.vision))
  start = cfg.vision_start_token_id
  ids = []
  for _ in range(rows):
    prompt = [start, cfg.image_token_id, start + 1]
    prompt += rng.randint(1, cfg.vocab_size - 8, text).tolist()
    ids.append(vlm.expand_image_placeholders(cfg, prompt, grid[:1]))
  ids = np.array(ids)
  return {
    "input_ids": ids,
    "attention_mask": np.ones_like(ids),
    "pixel_values": pixels.astype(np.float32),
    "image_grid_thw": grid,
  }


def main(argv) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--text", type=int, default=48)
  parser.add_argument("--iters", type=int, default=5)
  args = parser.parse_args(argv[1:])

  cfg = config_lib.tiny_vlm()
  torch.manual_seed(0)
  hf_cfg = transformers.Qwen2_5_VLConfig(**hf_vl.config_to_hf(cfg, "float32"))
  hf_model = transformers.Qwen2_5_VLForConditionalGeneration(hf_cfg).eval()
  state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
  params = jax.device_put(hf_vl.from_tensors(cfg, state))

  batch = _batch(cfg, args.batch, args.text)
  prepared = vlm.prepare(cfg, batch)
  fwd = jax.jit(model_lib.forward, static_argnums=1)
  t_emojax = _common.median_seconds(
    lambda: fwd(params, cfg, prepared).block_until_ready(), args.iters
  )
  tb = {k: torch.as_tensor(v) for k, v in batch.items()}
  tb["mm_token_type_ids"] = (tb["input_ids"] == cfg.image_token_id).int()

  def torch_fwd():
    with torch.inference_mode():
      hf_model(**tb)

  t_torch = _common.median_seconds(torch_fwd, args.iters)
  tokens = batch["input_ids"].size
  print(f"machine: {_common.describe()}; torch {torch.__version__}")
  print(
    f"vlm forward tiny_vlm fp32, B={args.batch} images {GRID} + "
    f"T={batch['input_ids'].shape[1]} tokens per row"
  )
  for name, t in (("emojax (jax.jit)", t_emojax), ("transformers", t_torch)):
    print(
      f"  {name:18s} {args.batch / t:8.1f} images/s "
      f"{tokens / t:10.0f} tok/s  ({t * 1e3:.1f} ms/batch)"
    )
  print(f"  ratio emojax/transformers: {t_torch / t_emojax:.2f}x")
  return 0
