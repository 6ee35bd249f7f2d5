"""Names the machine a benchmark ran on, for the printed report."""

import os
import platform


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
    f"{len(devices)} x {'/'.join(kinds)}"
  )
