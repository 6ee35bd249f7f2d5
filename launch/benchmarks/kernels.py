r"""emojax's kernels beside their references, in the same run.

  python launch/benchmark.py kernels [--quick]

Fused logprobs: peak memory from XLA's compiled memory analysis (any
backend, compile only, at the issue's shape V=152064, D=3584, 8192 tokens)
and time of value+grad (at that shape on GPU and TPU, where the fused
Pallas kernel joins; scaled down on CPU). On GPU
also attention (emojax's Triton and Hopper kernels vs cuDNN vs XLA, TFLOP/s
and error against cuDNN) and decode attention
(achieved bandwidth vs a measured copy). Interpret-mode Pallas is not timed:
its speed means nothing.
"""

from __future__ import annotations

import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp

from benchmarks import _common
from emojax import kernels
from emojax.kernels import backend


def _time(fn, *args, reps=10) -> float:
  """Median seconds of a jitted call, after a warm-up."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _peak_bytes(fn, *args) -> tuple[int, bool]:
  """Temp + output bytes, and whether XLA made an fp32 copy of w [D, V].

  XLA:CPU has no bf16 dynamic-slice (nor bf16 dot gradients): its float
  normalisation copies the whole bf16 w to fp32, 2 GiB at the issue's
  shape, in every variant. GPUs and TPUs slice bf16 natively, so the
  figure without that copy is the one that carries over.
  """
  compiled = jax.jit(fn).lower(*args).compile()
  stats = compiled.memory_analysis()
  D, V = args[1].shape
  copy = f"f32[{D},{V}]" in compiled.as_text()
  return stats.temp_size_in_bytes + stats.output_size_in_bytes, copy


def _logprob_loss(impl, **kw):
  def loss(h, w, t):
    logp, ent = impl(h, w, t, **kw)
    return jnp.sum(logp) + 0.01 * jnp.sum(ent)

  return jax.value_and_grad(loss, argnums=(0, 1))


def logprobs(on_device: bool, quick: bool) -> None:
  impls = [
    ("materialised (ref)", kernels.fused_logprobs_ref, {}),
    ("chunked XLA", kernels.chunked_logprobs, {}),
  ]
  if on_device:
    impls.append(("fused Pallas", kernels.fused_logprobs, {}))
  N, D, V = 8192, 3584, 152064
  dtype = jnp.bfloat16
  print(f"\nlogprobs value+grad, N={N} D={D} V={V} {dtype.__name__}")
  print("  peak = XLA temp + output bytes of the compiled value+grad")
  spec = (
    jax.ShapeDtypeStruct((1, N, D), dtype),
    jax.ShapeDtypeStruct((D, V), dtype),
    jax.ShapeDtypeStruct((1, N), jnp.int32),
  )
  peaks, lean = {}, {}
  w_f32 = D * V * 4
  for name, fn, kw in impls:
    peaks[name], copy = _peak_bytes(_logprob_loss(fn, **kw), *spec)
    lean[name] = peaks[name] - (w_f32 if copy else 0)
    base = impls[0][0]
    line = (
      f"  {name:20s} peak {peaks[name] / 2**30:7.2f} GiB  "
      f"x{peaks[name] / peaks[base]:.3f}"
    )
    if copy:
      line += (
        f"   without XLA:CPU's fp32 copy of w {lean[name] / 2**30:6.2f} GiB"
        f"  x{lean[name] / lean[base]:.3f}"
      )
    print(line)
  if not on_device:
    N, D, V = (256, 256, 8192) if quick else (2048, 512, 32768)
    dtype = jnp.float32
  ks = jax.random.split(jax.random.key(0), 3)
  h = jax.random.normal(ks[0], (1, N, D), dtype)
  w = (jax.random.normal(ks[1], (D, V)) * D**-0.5).astype(dtype)
  t = jax.random.randint(ks[2], (1, N), 0, V)
  print(f"  time at N={N} D={D} V={V} {jnp.dtype(dtype).name}:")
  base = None
  for name, fn, kw in impls:
    try:
      sec = _time(jax.jit(_logprob_loss(fn, **kw)), h, w, t, reps=3)
    except Exception as e:  # noqa: BLE001 - report and keep measuring.
      print(f"  {name:20s} failed: {type(e).__name__}: {str(e)[:200]}")
      continue
    base = base or sec
    print(f"  {name:20s} {sec * 1e3:9.1f} ms  x{sec / base:.2f}")


def _attention_impls():
  """name -> (fn(q, k, v), kernel-family flag for backend.target or None).

  The emojax kernels are traced under `backend.target` so each family
  runs whatever this GPU is; the untried Hopper kernels go last, so a
  failure there costs none of the other figures.
  """
  flash = functools.partial(kernels.flash_attention, causal=True)
  dpa = functools.partial(jax.nn.dot_product_attention, is_causal=True)
  impls = {
    "cudnn": (functools.partial(dpa, implementation="cudnn"), None),
    "xla": (functools.partial(dpa, implementation="xla"), None),
    "emojax triton": (flash, False),
    "emojax mosaic": (flash, True),
  }
  if os.environ.get(backend.GPU_KERNELS_ENV) == "triton":
    print(f"  (${backend.GPU_KERNELS_ENV}=triton: Hopper kernels not run)")
    del impls["emojax mosaic"]
  return impls


def _jitted(fn, hopper):
  """jit(fn) and jit(grad of sum(fn)), traced for the kernel family."""
  loss = lambda q, k, v: jnp.sum(fn(q, k, v).astype(jnp.float32))
  fwd = jax.jit(lambda q, k, v: fn(q, k, v))
  fwd_bwd = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
  if hopper is None:
    return fwd, fwd_bwd

  def traced(f):
    def run(*args):
      with backend.target("gpu", hopper=hopper):
        return f(*args)

    return run

  return traced(fwd), traced(fwd_bwd)


def _max_rel_err(got, want) -> float:
  """Largest |got - want| over the largest |want|, across a tree (fp32)."""
  errs = [
    float(jnp.max(jnp.abs(g.astype(jnp.float32) - w.astype(jnp.float32))))
    / max(float(jnp.max(jnp.abs(w.astype(jnp.float32)))), 1e-30)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
  ]
  return max(errs)


def attention(quick: bool) -> None:
  B, T, H, E = (4, 4096, 32, 128) if not quick else (2, 1024, 8, 128)
  for K in (H, H // 4):
    ks = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(ks[0], (B, T, H, E), jnp.bfloat16)
    k = jax.random.normal(ks[1], (B, T, K, E), jnp.bfloat16)
    v = jax.random.normal(ks[2], (B, T, K, E), jnp.bfloat16)
    flops = 4 * B * H * T * T * E / 2
    print(
      f"\nattention causal B={B} T={T} H={H} K={K} E={E} bf16 (TFLOP/s; "
      "fwd+bwd counts 3.5x the fwd FLOPs; err: max |x - cuDNN| / max |cuDNN| "
      "of o and of dq, dk, dv)",
      flush=True,
    )
    want = None
    for name, (fn, hopper) in _attention_impls().items():
      fwd, fwd_bwd = _jitted(fn, hopper)
      try:
        t_f = _time(fwd, q, k, v)
        t_fb = _time(fwd_bwd, q, k, v)
        got = (fwd(q, k, v), fwd_bwd(q, k, v))
      except Exception as e:  # noqa: BLE001 - report and keep measuring.
        print(f"  {name:14s} failed: {type(e).__name__}: {str(e)[:300]}")
        continue
      want = got if name == "cudnn" else want
      err = ""
      if want is not None and name != "cudnn":
        err = (
          f"  err o {_max_rel_err(got[0], want[0]):.1e}"
          f" grads {_max_rel_err(got[1], want[1]):.1e}"
        )
      print(
        f"  {name:14s} fwd {flops / t_f / 1e12:6.1f}  "
        f"fwd+bwd {3.5 * flops / t_fb / 1e12:6.1f}{err}",
        flush=True,
      )


def _copy_bandwidth() -> float:
  x = jnp.ones((2**28,), jnp.float32)
  sec = _time(jax.jit(lambda x: x * 2.0), x)
  return 2 * x.nbytes / sec


def decode(quick: bool) -> None:
  bw = _copy_bandwidth()
  print(
    f"\ndecode attention, H=28 K=4 E=128 bf16; copy bandwidth "
    f"{bw / 1e12:.2f} TB/s"
  )
  H, K, E = 28, 4, 128
  for B in (64, 256) if not quick else (64,):
    for S in (1024, 8192) if not quick else (1024,):
      ks = jax.random.split(jax.random.key(0), 3)
      q = jax.random.normal(ks[0], (B, H, E), jnp.bfloat16)
      k = jax.random.normal(ks[1], (B, K, E, S), jnp.bfloat16)
      v = jax.random.normal(ks[2], (B, K, S, E), jnp.bfloat16)
      lengths = jnp.full((B,), S, jnp.int32)
      read = k.nbytes + v.nbytes
      for name, fn in (
        ("pallas", kernels.decode_attention),
        ("xla ref", kernels.decode_attention_ref),
      ):
        try:
          sec = _time(jax.jit(fn), q, k, v, lengths)
        except Exception as e:  # noqa: BLE001 - report and keep measuring.
          print(f"  B={B:3d} S={S:5d} {name:8s} failed: {str(e)[:200]}")
          continue
        print(
          f"  B={B:3d} S={S:5d} {name:8s} {sec * 1e6:8.1f} us  "
          f"{read / sec / 1e12:5.2f} TB/s = {read / sec / bw:.2f} of copy"
        )


def main(argv: list[str]) -> int:
  quick = "--quick" in argv
  on_gpu = jax.default_backend() == "gpu"
  print("machine:", _common.describe())
  logprobs(jax.default_backend() != "cpu", quick)
  if on_gpu:
    attention(quick)
    decode(quick)
  else:
    print("\nattention and decode: GPU only (interpret mode is not timed)")
  return 0
