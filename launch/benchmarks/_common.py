"""Names the machine a benchmark ran on, for the printed report."""

import os
import platform

from emojax import tcmalloc


def describe() -> str:
  import jax

  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  devices = jax.devices()
  kinds = sorted({d.device_kind for d in devices})
  return (
    f"{cpu}, {os.cpu_count()} cores; jax {jax.__version__} on "
    f"{len(devices)} x {'/'.join(kinds)}; host malloc: "
    f"{'tcmalloc' if tcmalloc.active() else 'glibc'}"
  )


def median_seconds(fn, iters: int) -> float:
  """Median wall time of `iters` calls, after one warm-up (compile) call."""
  import time

  import numpy as np

  fn()
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


# The Qwen2 shape of PEERS.md's "GRPO step on two CPU cores" (ModelConfig
# fields), shared by the CPU benchmarks that compare against its figures.
PEERS_QWEN2 = dict(
  vocab_size=1024,
  hidden_size=256,
  intermediate_size=768,
  num_layers=4,
  num_heads=8,
  num_kv_heads=2,
  head_dim=32,
  rope_theta=10000.0,
  tie_embeddings=False,
)
