r"""What each Pallas GPU kernel costs the chip, compiled without a GPU.

  JAX_PLATFORMS=cpu python launch/benchmark.py kernel_build [--arch=9.0]

Lowers every emojax Pallas kernel at the issue's shapes for CUDA, runs
Triton's compiler (the one inside JAX's CUDA plugin) to PTX for the given
compute capability, then `ptxas -v` to machine code, and prints per
kernel: warps, pipeline stages, shared memory (H100/H200: 227 KiB a
block), registers a thread (255 at most; 65536 a multiprocessor), and
spilled bytes. Spills or shared memory over the limit mean the block sizes
in `emojax/kernels/*.py` need changing; occupancy follows from registers
and shared memory. No speed: that needs the device (`benchmark.py
kernels`).

Needs, on any Linux x86-64 machine (no GPU, no driver):
  pip install jax-cuda12-plugin==JAX_VERSION   # jax's own version
  pip install nvidia-cuda-nvcc-cu12   # ptxas; or set PTXAS=/path/to/ptxas
and JAX_PLATFORMS=cpu, which stops the plugin looking for a GPU (it still
registers its Triton compiler).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp

from benchmarks import _common
from emojax import kernels
from emojax.kernels import backend

SDS = jax.ShapeDtypeStruct
BF16 = jnp.bfloat16


def _flash(B, T, H, K, E):
  def loss(q, k, v):
    o = kernels.flash_attention(q, k, v, causal=True)
    return jnp.sum(o.astype(jnp.float32))

  q, kv = SDS((B, T, H, E), BF16), SDS((B, T, K, E), BF16)
  return jax.grad(loss, argnums=(0, 1, 2)), (q, kv, kv)


def _decode(B, S, H, K, E):
  specs = (
    SDS((B, H, E), BF16),
    SDS((B, K, E, S), BF16),
    SDS((B, K, S, E), BF16),
    SDS((B,), jnp.int32),
  )
  return (lambda *a: kernels.decode_attention(*a)), specs


def _logprobs(N, D, V):
  def loss(h, w, t):
    logp, ent = kernels.fused_logprobs(h, w, t)
    return jnp.sum(logp) + 0.01 * jnp.sum(ent)

  specs = (SDS((1, N, D), BF16), SDS((D, V), BF16), SDS((1, N), jnp.int32))
  return jax.grad(loss, argnums=(0, 1)), specs


def _advantages(P, G, R):
  fn = functools.partial(kernels.group_advantages, mode="grpo")
  return fn, (SDS((P, G, R), jnp.float32), SDS((R,), jnp.float32))


CASES = {
  "flash B4 T4096 H32 K32 E128": functools.partial(
    _flash, 4, 4096, 32, 32, 128
  ),
  "flash B4 T4096 H32 K8 E128": functools.partial(_flash, 4, 4096, 32, 8, 128),
  "flash B4 T4096 H32 K8 E64": functools.partial(_flash, 4, 4096, 32, 8, 64),
  "flash B1 T2048 H28 K4 E128": functools.partial(_flash, 1, 2048, 28, 4, 128),
  "decode B256 S8192 H28 K4 E128": functools.partial(
    _decode, 256, 8192, 28, 4, 128
  ),
  "logprobs N8192 D3584 V152064": functools.partial(
    _logprobs, 8192, 3584, 152064
  ),
  "advantages P16 G8 R3": functools.partial(_advantages, 16, 8, 3),
}


@contextlib.contextmanager
def _capture_triton_compiles(triton, into: list):
  """jaxlib > 0.10.2 compiles Triton while lowering: record each call."""
  compile_fn = triton.compile

  def spy(platform, module, arch_name, **kw):
    into.append((module, kw["num_warps"], kw["num_stages"], ""))
    return compile_fn(platform, module, arch_name, **kw)

  triton.compile = spy
  try:
    yield
  finally:
    triton.compile = compile_fn


def _triton_custom_calls(lowered) -> list[tuple[bytes, int, int, str]]:
  """jaxlib <= 0.10.2 leaves the Triton module in the custom call."""
  from jax._src.lib.mlir import ir

  def ops(op):
    for region in op.regions:
      for block in region.blocks:
        for child in block.operations:
          yield child
          yield from ops(child.operation)

  found = []
  for op in ops(lowered.compiler_ir("stablehlo").operation):
    if op.operation.name != "stablehlo.custom_call":
      continue
    if ir.StringAttr(op.attributes["call_target_name"]).value != (
      "__gpu$xla.gpu.triton"
    ):
      continue
    cfg = ir.DictAttr(op.attributes["mhlo.backend_config"])
    found.append(
      (
        ir.StringAttr(cfg["ir"]).value_bytes,
        ir.IntegerAttr(cfg["num_warps"]).value,
        ir.IntegerAttr(cfg["num_stages"]).value,
        ir.StringAttr(cfg["name"]).value,
      )
    )
  return found


def _modules(fn, specs, triton):
  """(Triton module bytecode, warps, stages, name) of each kernel in fn."""
  captured = []
  with backend.target("gpu"), _capture_triton_compiles(triton, captured):
    lowered = (
      jax.jit(lambda *a: fn(*a))
      .trace(*specs)
      .lower(lowering_platforms=("cuda",))
    )
  return captured or _triton_custom_calls(lowered)


def _ptxas() -> str | None:
  if os.environ.get("PTXAS"):
    return os.environ["PTXAS"]
  try:
    from nvidia import cuda_nvcc

    path = os.path.join(list(cuda_nvcc.__path__)[0], "bin", "ptxas")
    if os.path.exists(path):
      return path
  except ImportError:
    pass
  return shutil.which("ptxas")


def _ptxas_stats(ptxas, ptx: str, arch: str) -> dict:
  sm = "sm_" + arch.replace(".", "") + ("a" if arch == "9.0" else "")
  with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "kernel.ptx")
    with open(src, "w") as f:
      f.write(ptx)
    out = subprocess.run(
      [ptxas, f"-arch={sm}", "-v", src, "-o", os.path.join(tmp, "k.cubin")],
      capture_output=True,
      text=True,
    )
  if out.returncode:
    return {"error": out.stderr.strip()[-300:]}
  log = out.stderr
  regs = re.search(r"Used (\d+) registers", log)
  spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
  return {
    "regs": int(regs.group(1)) if regs else None,
    "spill": (int(spill.group(1)) + int(spill.group(2))) if spill else None,
  }


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="benchmark.py kernel_build")
  parser.add_argument("--arch", default="9.0", help="compute capability")
  args = parser.parse_args(argv[1:])
  jax.devices()  # initialises the CUDA plugin, which registers Triton
  from jax._src.lib import triton

  if not triton.has_compilation_handler("CUDA"):
    print(
      "No Triton compiler: install jax-cuda12-plugin (or -cuda13) matching "
      f"jax {jax.__version__} and, without a GPU, set JAX_PLATFORMS=cpu. "
      "See this file's docstring."
    )
    return 2
  ptxas = _ptxas()
  print(f"machine: {_common.describe()}")
  print(f"target: compute capability {args.arch}; ptxas: {ptxas or 'none'}")
  print(
    f"{'case':32s} {'kernel':26s} {'warps':>5s} {'stages':>6s} "
    f"{'smem KiB':>8s} {'regs':>5s} {'spill B':>7s}"
  )
  for case, build in CASES.items():
    fn, specs = build()
    for i, (module, warps, stages, name) in enumerate(
      _modules(fn, specs, triton)
    ):
      result = triton.compile(
        "CUDA",
        module,
        args.arch,
        num_warps=warps,
        num_ctas=1,
        num_stages=stages,
      )
      stats = _ptxas_stats(ptxas, result.asm, args.arch) if ptxas else {}
      if "error" in stats:
        print(f"{case:32s} {name or i}: ptxas failed: {stats['error']}")
        continue
      print(
        f"{case:32s} {name or f'#{i}':26s} {warps:5d} {stages:6d} "
        f"{result.smem_bytes / 1024:8.1f} {stats.get('regs') or '-':>5} "
        f"{stats.get('spill') if stats.get('spill') is not None else '-':>7}"
      )
  return 0
