"""Rollout: emojax's jitted sampler vs transformers `generate`.

  python launch/benchmark.py rollout [--preset=tiny|peers] [--iters=3]
  python launch/benchmark.py rollout --gpu   # on an H100/H200 only

CPU: a GRPO-sized batch (P=16 prompts of 32 tokens, G=8 samples each,
exactly 64 new tokens at temperature 1, EOS disabled) on the same random
fp32 weights in both; `tiny` is the `tiny_text` preset, `peers` the Qwen2
shape of PEERS.md's CPU GRPO workload. Prefill is timed alone (one new
token) so decode steps are reported separately.

GPU (`--gpu`): Qwen2.5-1.5B- and 7B-shaped random bf16 models, B=128 rows
(16 x 8), prompt 512, 256 new tokens; tokens/s against the HBM-bandwidth
roofline, i.e. per decode step the weights plus the filled KV cache read
once, over the bandwidth measured here by a large device copy.
"""

import argparse
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common
from emojax import rollout
from emojax.model import config as config_lib
from emojax.model import kv_cache
from emojax.model import params as params_lib
from emojax.model import specs as model_specs


def _prompts(P: int, T: int, vocab: int) -> dict:
  ids = np.random.RandomState(0).randint(10, min(1000, vocab - 1), (P, T))
  return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def _emojax_timer(params, cfg, prompts, G, N, cache_dtype=None):
  def run(n):
    out = rollout.generate(
      params,
      cfg,
      prompts,
      jax.random.key(0),
      num_generations=G,
      max_new_tokens=n,
      temperature=1.0,
      stop_token_ids=(),
      cache_dtype=cache_dtype,
    )
    jax.block_until_ready(out)
    assert int(np.asarray(out.lengths).min()) == n

  return run


def _report(name, t_full, t_prefill, B, N):
  step = (t_full - t_prefill) / max(N - 1, 1)
  print(
    f"  {name:22s} {B * N / t_full:9.0f} tok/s  {t_full * 1e3:8.1f} ms/batch"
    f"  prefill {t_prefill * 1e3:7.1f} ms  decode {step * 1e3:6.2f} ms/step"
    f" ({B / step:8.0f} tok/s)"
  )
  return step


def cpu(preset: str, iters: int) -> int:
  import torch
  import transformers

  import emojax.hf
  from emojax.hf import qwen2

  cfg = config_lib.tiny_text()
  if preset == "peers":
    cfg = cfg.replace(**_common.PEERS_QWEN2)
  P, G, T, N = 16, 8, 32, 64
  B = P * G
  torch.manual_seed(0)
  hf_cfg = transformers.Qwen2Config(**qwen2.config_to_hf(cfg, "float32"))
  hf_model = transformers.Qwen2ForCausalLM(hf_cfg).eval()
  with tempfile.TemporaryDirectory() as folder:
    hf_model.save_pretrained(folder, safe_serialization=True)
    cfg, params = emojax.hf.load(folder)
  prompts = _prompts(P, T, cfg.vocab_size)

  run = _emojax_timer(params, cfg, prompts, G, N)
  t_full, t_pre = (
    _common.median_seconds(lambda: run(N), iters),
    _common.median_seconds(lambda: run(1), iters),
  )

  ids = torch.as_tensor(np.repeat(prompts["input_ids"], G, axis=0))

  def hf_run(n):
    with torch.inference_mode():
      out = hf_model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=n,
        min_new_tokens=n,
        eos_token_id=None,
        pad_token_id=0,
      )
    assert out.shape[1] == T + n

  h_full = _common.median_seconds(lambda: hf_run(N), iters)
  h_pre = _common.median_seconds(lambda: hf_run(1), iters)
  cache_bytes = kv_cache.nbytes(cfg, B, T + N - 1)
  print(f"machine: {_common.describe()}; torch {torch.__version__}")
  print(
    f"rollout {preset} preset (D={cfg.hidden_size}, L={cfg.num_layers}, "
    f"V={cfg.vocab_size}) fp32: P={P} x G={G} = {B} rows, prompt {T}, "
    f"{N} new tokens, temperature 1; median of {iters}"
  )
  step = _report("emojax (jit while_loop)", t_full, t_pre, B, N)
  h_step = _report("transformers generate", h_full, h_pre, B, N)
  print(
    f"  ratio emojax/transformers: {h_full / t_full:.2f}x per batch, "
    f"{h_step / step:.2f}x per decode step"
  )
  print(
    f"  KV cache: {cache_bytes / 2**20:.2f} MiB fp32 "
    f"({kv_cache.nbytes(cfg, B, T + N - 1, 'bfloat16') / 2**20:.2f} MiB "
    "bf16), allocated once and reused"
  )
  return 0


def _bandwidth() -> float:
  """Bytes/s of a 4 GiB device copy (read + write)."""
  x = jnp.ones((1 << 30,), jnp.float32)
  copy = jax.jit(lambda a: a + 1)
  t = _common.median_seconds(lambda: copy(x).block_until_ready(), 5)
  return 2 * x.nbytes / t


def gpu(iters: int) -> int:
  P, G, T, N = 16, 8, 512, 256
  B = P * G
  bw = _bandwidth()
  print(f"machine: {_common.describe()}")
  print(
    f"rollout bf16 random weights: B={B} ({P} x {G}), prompt {T}, {N} new "
    f"tokens, temperature 1; measured copy bandwidth {bw / 1e12:.2f} TB/s"
  )
  for name in ("qwen2_5_1_5b", "qwen2_5_7b"):
    cfg = config_lib.PRESETS[name]().replace(
      dtype="bfloat16", param_dtype="bfloat16"
    )
    specs = model_specs(cfg)
    params = params_lib.init(specs, jax.random.key(0))
    prompts = _prompts(P, T, cfg.vocab_size)
    run = _emojax_timer(params, cfg, prompts, G, N)
    t_full = _common.median_seconds(lambda run=run: run(N), iters)
    t_pre = _common.median_seconds(lambda run=run: run(1), iters)
    print(f" {name}:")
    step = _report("emojax", t_full, t_pre, B, N)
    weights = params_lib.count(specs) * 2
    # On average a decode step reads the prompt plus half the completion.
    cache = kv_cache.nbytes(cfg, B, T + N // 2, "bfloat16")
    roof = (weights + cache) / bw
    print(
      f"  roofline {roof * 1e3:.2f} ms/step ({B / roof:.0f} tok/s): emojax "
      f"at {roof / step:.1%} (transformers generate on an H200, PEERS.md: "
      "63.7 ms/step)"
    )
    del params
    rollout.release_caches()
  return 0


def main(argv) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--preset", choices=("tiny", "peers"), default="tiny")
  parser.add_argument("--iters", type=int, default=3)
  parser.add_argument("--gpu", action="store_true")
  args = parser.parse_args(argv[1:])
  if args.gpu:
    if jax.default_backend() != "gpu":
      print("--gpu needs a GPU; JAX's backend is", jax.default_backend())
      return 2
    return gpu(args.iters)
  return cpu(args.preset, args.iters)
