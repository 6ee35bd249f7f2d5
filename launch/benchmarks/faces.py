"""Synthetic face renderer speed: images/s per core against the 300/s target.

  python launch/benchmark.py faces [--n=600] [--size=64]

Measures, in one run: `faces.render` on pre-drawn identities (the renderer
alone), `synth.make_example` (sampling + rendering + texts), and the same
with reasoning text; CPU seconds per process (so a busy shared machine does
not skew it) and wall-clock seconds for 1 and 2 worker processes.
"""

import argparse
import multiprocessing
import time

import numpy as np

from benchmarks import _common
from emojax.data import faces, synth

TARGET = 300.0  # images/s per core at 64x64 (issue #4)


def _render_all(n: int, size: int) -> float:
  rng = np.random.default_rng(0)
  ids = [faces.sample_identity(rng) for _ in range(n)]
  aus = {1: 0.7, 2: 0.7, 5: 0.55, 26: 0.85}
  start = time.process_time()
  for i, ident in enumerate(ids):
    faces.render(aus, ident, size=size, seed=i)
  return time.process_time() - start


def _examples(args: tuple[int, int, int, bool]) -> float:
  first, n, size, reasoning = args
  start = time.process_time()
  for i in range(first, first + n):
    synth.make_example(0, i, size=size, reasoning=reasoning)
  return time.process_time() - start


def _wall(workers: int, n: int, size: int) -> float:
  start = time.perf_counter()
  chunk = n // workers
  jobs = [(k * chunk, chunk, size, False) for k in range(workers)]
  # Spawned, as `launch/make_data.py` spawns its workers.
  with multiprocessing.get_context("spawn").Pool(workers) as pool:
    pool.map(_examples, jobs)
  return time.perf_counter() - start


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="benchmark.py faces")
  parser.add_argument("--n", type=int, default=600)
  parser.add_argument("--size", type=int, default=64)
  args = parser.parse_args(argv[1:])
  n, size = args.n, args.size
  print(f"machine: {_common.describe()}")
  rows = [
    ("faces.render", _render_all(n, size)),
    ("synth.make_example", _examples((0, n, size, False))),
    ("make_example(reasoning)", _examples((0, n, size, True))),
  ]
  print(f"{n} images at {size}x{size}, CPU time of one process:")
  for name, seconds in rows:
    rate = n / seconds
    print(
      f"  {name:26s} {rate:8.0f} images/s per core  "
      f"({rate / TARGET:.2f}x the {TARGET:.0f}/s target)"
    )
  base = None
  for workers in (1, 2):
    rate = n / _wall(workers, n, size)
    base = base or rate
    print(
      f"  make_example, {workers} worker(s): {rate:8.0f} images/s wall "
      f"({rate / base:.2f}x one worker)"
    )
  return 0
