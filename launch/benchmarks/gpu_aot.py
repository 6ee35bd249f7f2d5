r"""What XLA:GPU compiles for an H100, on a machine without a GPU.

  python launch/benchmark.py gpu_aot [--quick]

JAX's CUDA plugin can compile for a described GPU that is not there
("compile-only" devices from `jax.experimental.topologies`): the whole
XLA:GPU pipeline runs, ptxas included, and only running needs the card.
This benchmark uses that for two figures a CPU machine cannot otherwise
give:

1. The Hopper (Mosaic GPU) flash-attention kernels, compiled to sm_90a:
   ptxas's registers and spills per kernel (Mosaic GPU compiles inside
   the plugin, so `kernel_build`, which drives Triton, cannot see them).
   "regs" is the launch cap (65536 / 384 threads); the compute
   warpgroups raise theirs with setmaxnreg, and spills say whether what
   they hold fits.
2. XLA:GPU's memory plan (temp and output bytes of the compiled
   value+grad) for per-token logprobs at the issue's shape (V = 152064,
   D = 3584, 8192 tokens, bf16): materialised logits against the chunked
   XLA and the fused Pallas paths.
3. The same plan for a GRPO micro-batch gradient of Qwen2.5-7B sharded
   over 8 H100s: what a device holds with each attention and logprob path,
   and the collectives' buffers it passes per step (`_hlo.py`: loops'
   trip counts included; ar all-reduce, ag all-gather, rs reduce-scatter,
   a2a all-to-all).

Needs, on any Linux x86-64 machine (no GPU, no driver):
  pip install jax-cuda12-plugin==JAX_VERSION jax-cuda12-pjrt==JAX_VERSION \
      nvidia-cuda-nvcc-cu12 nvidia-cuda-runtime-cu12
(the plugin's version check wants cuDNN and the rest of CUDA, which a
compile-only device does not use: this script skips that check).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import tempfile

from benchmarks import _hlo

# GPUs as XLA:GPU describes a device (NVIDIA's published figures): the
# H100 SXM (the H200 has the same sm_90a chip, 132 SMs, and more, faster
# memory) and the A100 SXM 80GB (the A800, Facial-R1's card, is an A100
# with slower NVLink).
_COMMON = {
  "threads_per_block_limit": 1024,
  "threads_per_warp": 32,
  "shared_memory_per_block": 49152,
  "threads_per_core_limit": 2048,
  "block_dim_limit_x": 2147483647,
  "block_dim_limit_y": 65535,
  "block_dim_limit_z": 65535,
  "registers_per_core_limit": 65536,
  "registers_per_block_limit": 65536,
}
GPUS = {
  "h100": (
    "NVIDIA H100 80GB HBM3",
    9,
    dict(
      _COMMON,
      shared_memory_per_core=233472,
      shared_memory_per_block_optin=232448,
      core_count=132,
      fpus_per_core=128,
      memory_bandwidth=3352320000000,
      l2_cache_size=52428800,
      clock_rate_ghz=1.98,
      device_memory_size=84978434048,
    ),
  ),
  "a100": (
    "NVIDIA A100-SXM4-80GB",
    8,
    dict(
      _COMMON,
      shared_memory_per_core=167936,
      shared_memory_per_block_optin=166912,
      core_count=108,
      fpus_per_core=64,
      memory_bandwidth=2039000000000,
      l2_cache_size=41943040,
      clock_rate_ghz=1.41,
      device_memory_size=85899345920,
    ),
  ),
}


def _target_config(gpu: str) -> str:
  """The GpuTargetConfigProto text XLA's CUDA plugin takes."""
  name, major, info = GPUS[gpu]
  fields = "\n".join(f"  {k}: {v}" for k, v in info.items())
  return (
    f"gpu_device_info {{\n{fields}\n"
    f"  cuda_compute_capability {{ major: {major} }}\n}}\n"
    'platform_name: "CUDA"\n'
    f'device_description_str: "{name}"\n'
  )


def _devices(gpu: str, n: int) -> list:
  """n compile-only devices of kind `gpu` on one host."""
  from jax.experimental import topologies

  topology = topologies.get_topology_desc(
    gpu, "cuda", target_config=_target_config(gpu), topology=f"1x1x{n}"
  )
  return list(topology.devices)


def _compile_only_sharding():
  """A replicated sharding on one compile-only H100."""
  import jax
  import numpy as np

  mesh = jax.sharding.Mesh(np.array(_devices("h100", 1)), ("x",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _compile(fn, shapes, sharding, **target):
  import jax

  from emojax.kernels import backend

  specs = [jax.ShapeDtypeStruct(s, d, sharding=sharding) for s, d in shapes]
  with backend.target("gpu", **target):
    lowered = jax.jit(lambda *a: fn(*a)).trace(*specs).lower()
  return lowered.compile()


def _ptxas_lines(dump_dir: str, seen: set) -> list[str]:
  """One line per Mosaic GPU kernel compiled since `seen` was filled."""
  lines = []
  for path in sorted(glob.glob(os.path.join(dump_dir, "*.ptxas"))):
    if path in seen:
      continue
    seen.add(path)
    log = open(path).read()
    regs = re.search(r"Used (\d+) registers", log)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    name = re.sub(r"_\d+\.ptxas$", "", os.path.basename(path))
    spilled = int(spill.group(1)) + int(spill.group(2)) if spill else "?"
    lines.append(
      f"    {name:18s} regs {regs.group(1) if regs else '?':>4s}  "
      f"spill stores+loads {spilled} B"
    )
  return lines


def hopper_attention(sharding, dump_dir: str, quick: bool) -> None:
  import jax
  import jax.numpy as jnp

  from emojax import kernels

  cases = [(4, 4096, 32, 8, 128, False), (4, 4096, 32, 8, 128, True)]
  if not quick:
    cases += [
      (4, 4096, 32, 32, 128, False),
      (4, 4096, 32, 8, 64, True),
      (1, 2048, 28, 4, 128, True),  # Qwen2.5-7B's heads
    ]
  print("\nHopper flash attention, causal, bf16, value+grad (ptxas, sm_90a)")
  seen: set = set()
  for B, T, H, K, E, use_seg in cases:

    def loss(q, k, v, seg, use_seg=use_seg):
      seg = seg if use_seg else None
      o = kernels.flash_attention(q, k, v, causal=True, segment_ids=seg)
      return jnp.sum(o.astype(jnp.float32))

    bf16 = jnp.bfloat16
    shapes = [
      ((B, T, H, E), bf16),
      ((B, T, K, E), bf16),
      ((B, T, K, E), bf16),
      ((B, T), jnp.int32),
    ]
    grad = jax.grad(loss, argnums=(0, 1, 2))
    label = f"B{B} T{T} H{H} K{K} E{E}{' segments' if use_seg else ''}"
    try:
      _compile(grad, shapes, sharding, hopper=True)
    except Exception as e:  # noqa: BLE001 - report and keep compiling.
      print(f"  {label}: failed: {type(e).__name__}: {str(e)[:300]}")
      continue
    print(f"  {label}")
    print("\n".join(_ptxas_lines(dump_dir, seen)))


def logprobs_memory(sharding) -> None:
  import jax
  import jax.numpy as jnp

  from emojax import kernels

  N, D, V = 8192, 3584, 152064
  bf16 = jnp.bfloat16
  shapes = [((1, N, D), bf16), ((D, V), bf16), ((1, N), jnp.int32)]
  print(
    f"\nlogprobs value+grad, N={N} D={D} V={V} bf16: XLA:GPU memory plan "
    "(GiB; the outputs include the bf16 dw every variant returns)"
  )
  impls = [
    ("materialised (ref)", kernels.fused_logprobs_ref),
    ("chunked XLA", kernels.chunked_logprobs),
    ("fused Pallas", kernels.fused_logprobs),
  ]
  base = None
  for name, fn in impls:

    def loss(h, w, t, fn=fn):
      logp, ent = fn(h, w, t)
      return jnp.sum(logp) + 0.01 * jnp.sum(ent)

    grad = jax.value_and_grad(loss, argnums=(0, 1))
    try:
      stats = _compile(grad, shapes, sharding).memory_analysis()
    except Exception as e:  # noqa: BLE001 - report and keep compiling.
      print(f"  {name:20s} failed: {type(e).__name__}: {str(e)[:300]}")
      continue
    temp, out = stats.temp_size_in_bytes, stats.output_size_in_bytes
    base = base or (temp, temp + out)
    print(
      f"  {name:20s} temp {temp / 2**30:6.2f}  x{temp / base[0]:.3f}   "
      f"temp+outputs {(temp + out) / 2**30:6.2f}  "
      f"x{(temp + out) / base[1]:.3f}"
    )


@contextlib.contextmanager
def _materialised_logprobs():
  """The training losses' logprobs through the [B, T, V] reference (for
  comparison only: training always runs the chunked or fused path)."""
  from emojax import kernels

  chunked = kernels.chunked_logprobs
  kernels.chunked_logprobs = kernels.fused_logprobs_ref
  try:
    yield
  finally:
    kernels.chunked_logprobs = chunked


def grpo_memory(gpu: str, quick: bool) -> None:
  """The GRPO micro-batch gradient of Qwen2.5-7B (Facial-R1's language
  model) on 8 compile-only GPUs, weights and rows over `fsdp`: XLA:GPU's
  memory plan per device for each attention and logprob path (the Hopper
  kernels on H100, the Triton ones on A100)."""
  import jax
  import jax.numpy as jnp

  from emojax import model as model_lib
  from emojax import sharding
  from emojax.kernels import backend
  from emojax.model import config as config_lib
  from emojax.model import params as params_lib
  from emojax.train import grpo

  mesh = sharding.make_mesh(
    {"data": 1, "fsdp": -1, "tensor": 1}, devices=_devices(gpu, 8)
  )
  P, G, Tp, C = 8, 8, 1024, 512
  B = P * G
  base = config_lib.qwen2_5_7b().replace(dtype="bfloat16", remat=True)
  if quick:
    base = base.replace(num_layers=4)

  def placed(shape, dtype, axes):
    named = sharding.named_sharding(mesh, axes, shape=shape)
    return jax.ShapeDtypeStruct(shape, dtype, sharding=named)

  def rows(shape, dtype):
    return placed(shape, dtype, ("batch",) + (None,) * (len(shape) - 1))

  specs = model_lib.specs(base)
  params = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
    params_lib.abstract(specs),
    params_lib.shardings(specs, mesh, None),
  )
  batch = {
    "prompt": {
      "input_ids": rows((P, Tp), jnp.int32),
      "attention_mask": rows((P, Tp), jnp.int32),
    },
    "completion_ids": rows((B, C), jnp.int32),
    "completion_mask": rows((B, C), jnp.int32),
  }
  inputs = {
    "adv": rows((B,), jnp.float32),
    "mask": rows((B, C), jnp.float32),
    "ref_logp": rows((B, C), jnp.float32),
    "denominator": placed((), jnp.float32, ()),
  }
  rl = dict(
    loss_type="grpo",
    epsilon=0.2,
    epsilon_high=0.2,
    importance_sampling_level="token",
    beta=0.04,
    kl_estimator="k3",
    entropy_coef=0.0,
    temperature=1.0,
  )
  print(
    f"\nGRPO micro-batch gradient, Qwen2.5-7B ({base.num_layers} layers) "
    f"bf16 compute, fp32 weights, remat; {P} prompts x G={G}, prompt {Tp} "
    f"+ completion {C} tokens; 8 x {GPUS[gpu][0]}, fsdp 8 (GiB a device)"
  )
  cases = [
    ("xla", "chunked"),
    ("pallas", "chunked"),
    ("pallas", "fused"),
    ("pallas", "materialised"),
  ]
  for attention, logp in cases:
    cfg = base.replace(
      attention=attention, logprobs="fused" if logp == "fused" else "chunked"
    )
    jax.clear_caches()  # the materialised case traces the same signature
    context = (
      _materialised_logprobs()
      if logp == "materialised"
      else contextlib.nullcontext()
    )
    try:
      with (
        context,
        sharding.use_rules(mesh),
        backend.target("gpu", hopper=gpu == "h100"),
      ):
        traced = grpo.grads.trace(
          params,
          batch,
          inputs,
          cfg=cfg,
          rl_static=grpo.static_rl(rl),
        )
        compiled = traced.lower().compile()
        stats = compiled.memory_analysis()
        hlo = compiled.as_text()
    except Exception as e:  # noqa: BLE001 - report and keep compiling.
      print(f"  {attention:6s} {logp:12s} failed: {str(e)[:300]}")
      continue
    print(
      f"  attention {attention:6s} logprobs {logp:12s} "
      f"weights {stats.argument_size_in_bytes / 2**30:5.2f}  "
      f"temp {stats.temp_size_in_bytes / 2**30:5.2f}  "
      f"gradients {stats.output_size_in_bytes / 2**30:5.2f}"
      + _collectives(hlo)
      + (_logprob_rows(hlo) if logp == "fused" else "")
    )


def _collectives(hlo: str) -> str:
  """GiB of collective buffers a device passes per step, by kind."""
  moved, unknown = _hlo.collective_bytes(hlo)
  short = {"all-reduce": "ar", "all-gather": "ag", "reduce-scatter": "rs"}
  short |= {"all-to-all": "a2a", "collective-permute": "cp"}
  parts = [f"{short[k]} {b / 2**30:.2f}" for k, b in moved.items() if b]
  loops = f", {unknown} loops of unknown trips" if unknown else ""
  return f"  collectives GiB: {' '.join(parts) or 'none'}{loops}"


def _logprob_rows(hlo: str) -> str:
  """The (hidden, unembedding) operands of the compiled fused-logprobs
  kernel: one device's share of rows x columns (8x the work if XLA had
  gathered the global batch and whole vocab for a bare Pallas call)."""
  for line in hlo.splitlines():
    if "custom-call(" in line and "emojax_fused_logprobs" in line:
      shapes = re.search(
        r"operand_layout_constraints=\{(\w+\[[\d,]+\])\{[\d,]*\}, "
        r"(\w+\[[\d,]+\])",
        line,
      )
      return (
        f"  kernel's {shapes.group(1)} x {shapes.group(2)}" if shapes else ""
      )
  return ""


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="benchmark.py gpu_aot")
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args(argv[1:])
  dump_dir = tempfile.mkdtemp(prefix="emojax-mosaic-")
  # Read when the CUDA plugin loads: before jax is imported.
  os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
  os.environ["MOSAIC_GPU_DUMP_PTXAS"] = "1"
  os.environ["MOSAIC_GPU_DUMP_TO"] = dump_dir
  from benchmarks import _common

  try:
    sharding = _compile_only_sharding()
  except Exception as e:  # noqa: BLE001 - say what is missing.
    print(
      f"No compile-only CUDA device ({type(e).__name__}: {str(e)[:200]}). "
      "Install the packages this file's docstring lists."
    )
    return 2
  print(f"machine: {_common.describe()}")
  print("target: compile-only NVIDIA H100 SXM (sm_90a), XLA:GPU + ptxas")
  hopper_attention(sharding, dump_dir, args.quick)
  logprobs_memory(sharding)
  grpo_memory("h100", args.quick)
  grpo_memory("a100", args.quick)
  return 0
