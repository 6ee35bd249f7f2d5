"""VLM forward: emojax (jit) vs transformers (torch) on the same weights.

  python launch/benchmark.py vlm_forward [--batch=8] [--text=48] [--iters=5]
      [--frames=8]

The tiny_vlm preset, fp32, random weights; each row is one 64x64 face
(8x8 patches -> 16 image tokens) plus `--text` text tokens, or with
`--frames=N` one N-frame clip of it (N/2 time steps of 16 video tokens,
in transformers' video layout, which both sides take as it is). Reports
visuals/s and tokens/s of the full forward (vision tower + merge + LM).
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


def _batch(cfg, rows: int, text: int, frames: int = 0) -> dict:
  rng = np.random.RandomState(0)
  steps = -(-frames // cfg.vision.temporal_patch_size)
  grid = np.array([(max(steps, 1), *GRID[1:])] * rows)
  pixels = rng.randn(int(grid.prod(-1).sum()), vision.patch_dim(cfg.vision))
  start = cfg.vision_start_token_id
  token = cfg.video_token_id if frames else cfg.image_token_id
  expand = (
    vlm.expand_video_placeholders if frames else vlm.expand_image_placeholders
  )
  ids = []
  for _ in range(rows):
    prompt = [start, token, start + 1]
    prompt += rng.randint(1, cfg.vocab_size - 8, text).tolist()
    ids.append(expand(cfg, prompt, grid[:1]))
  ids = np.array(ids)
  batch = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
  if not frames:
    return {
      **batch,
      "pixel_values": pixels.astype(np.float32),
      "image_grid_thw": grid,
    }
  return {
    **batch,
    "pixel_values_videos": pixels.astype(np.float32),
    "video_grid_thw": grid,
    "second_per_grid_ts": np.full(rows, 0.5, np.float32),  # 4 fps clips
  }


def main(argv) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--text", type=int, default=48)
  parser.add_argument("--iters", type=int, default=5)
  parser.add_argument("--frames", type=int, default=0)
  args = parser.parse_args(argv[1:])

  cfg = config_lib.tiny_vlm()
  torch.manual_seed(0)
  hf_cfg = transformers.Qwen2_5_VLConfig(**hf_vl.config_to_hf(cfg, "float32"))
  hf_model = transformers.Qwen2_5_VLForConditionalGeneration(hf_cfg).eval()
  state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
  params = jax.device_put(hf_vl.from_tensors(cfg, state))

  batch = _batch(cfg, args.batch, args.text, args.frames)
  prepared = vlm.prepare(cfg, batch)
  fwd = jax.jit(model_lib.forward, static_argnums=1)
  t_emojax = _common.median_seconds(
    lambda: fwd(params, cfg, prepared).block_until_ready(), args.iters
  )
  tb = {k: torch.as_tensor(v) for k, v in batch.items()}
  ids = tb["input_ids"]
  tb["mm_token_type_ids"] = (ids == cfg.image_token_id).int() + 2 * (
    ids == cfg.video_token_id
  ).int()

  def torch_fwd():
    with torch.inference_mode():
      hf_model(**tb)

  t_torch = _common.median_seconds(torch_fwd, args.iters)
  tokens = batch["input_ids"].size
  print(f"machine: {_common.describe()}; torch {torch.__version__}")
  what = f"{args.frames}-frame clips" if args.frames else "images"
  print(
    f"vlm forward tiny_vlm fp32, B={args.batch} {what} "
    f"{batch.get('video_grid_thw', batch.get('image_grid_thw'))[0].tolist()}"
    f" + T={batch['input_ids'].shape[1]} tokens per row"
  )
  unit = "clips" if args.frames else "images"
  for name, t in (("emojax (jax.jit)", t_emojax), ("transformers", t_torch)):
    print(
      f"  {name:18s} {args.batch / t:8.1f} {unit}/s "
      f"{tokens / t:10.0f} tok/s  ({t * 1e3:.1f} ms/batch)"
    )
  print(f"  ratio emojax/transformers: {t_torch / t_emojax:.2f}x")
  return 0
