"""Forward tokens/s: emojax (jit) vs transformers (torch) on the same weights.

  python launch/benchmark.py forward [--batch=8] [--seq=128] [--iters=10]

The model is the small Qwen2 shape of PEERS.md's CPU GRPO workload (vocab
1024, width 256, 4 layers, 8 query / 2 kv heads), fp32, random weights.
"""

import argparse
import tempfile

import jax
import numpy as np
import torch
import transformers

import emojax.hf
from benchmarks import _common
from emojax.model import model as model_lib

SHAPE = dict(
  vocab_size=1024,
  hidden_size=256,
  intermediate_size=768,
  num_hidden_layers=4,
  num_attention_heads=8,
  num_key_value_heads=2,
  rope_theta=10000.0,
  tie_word_embeddings=False,
)


def main(argv) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--seq", type=int, default=128)
  parser.add_argument("--iters", type=int, default=10)
  args = parser.parse_args(argv[1:])

  torch.manual_seed(0)
  hf_model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**SHAPE))
  hf_model.eval()
  with tempfile.TemporaryDirectory() as folder:
    hf_model.save_pretrained(folder)
    cfg, params = emojax.hf.load(folder)

  ids = np.random.RandomState(0).randint(0, 1024, (args.batch, args.seq))
  batch = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
  fwd = jax.jit(model_lib.forward, static_argnums=1)
  t_emojax = _common.median_seconds(
    lambda: fwd(params, cfg, batch).block_until_ready(), args.iters
  )
  ids_t = torch.as_tensor(ids)
  mask_t = torch.ones_like(ids_t)

  def torch_fwd():
    with torch.inference_mode():
      hf_model(input_ids=ids_t, attention_mask=mask_t)

  t_torch = _common.median_seconds(torch_fwd, args.iters)
  tokens = args.batch * args.seq
  print(f"machine: {_common.describe()}; torch {torch.__version__}")
  print(f"forward B={args.batch} T={args.seq}, fp32, {SHAPE}")
  print(f"  emojax (jax.jit):      {tokens / t_emojax:10.0f} tok/s")
  print(f"  transformers (torch):  {tokens / t_torch:10.0f} tok/s")
  print(f"  ratio emojax/transformers: {t_torch / t_emojax:.2f}x")
  return 0
