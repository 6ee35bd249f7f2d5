"""Test set-up: 8 fake CPU devices, strict rank promotion, fp32 matmuls.

The environment must be set before JAX initialises its backends, so this
runs at import time of the test session.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_FLAGS = " --xla_force_host_platform_device_count=8"
if os.environ["JAX_PLATFORMS"] == "cpu":
  # The 8 fake devices are threads on (in CI) 2 shared cores: under load a
  # collective's last thread can arrive after XLA's default 40 s, which
  # aborts the process ("Termination timeout ... exceeded").
  _FLAGS += " --xla_cpu_collective_call_terminate_timeout_seconds=600"
  # XLA:CPU's concurrency-optimised scheduler lets independent collectives
  # run in different orders on the fake devices: in the EmoCaliber GRPO
  # smoke step, devices 0-3 waited in one all-gather, pairs in another and
  # one in an all-to-all, forever (3 of 3 runs; XLA's "may be stuck" log).
  # The default scheduler keeps them in one order (3 of 3 runs passed).
  _FLAGS += " --xla_cpu_enable_concurrency_optimized_scheduler=false"
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + _FLAGS
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent compilation cache for the session, inherited by the xdist
# workers and the launch/ subprocesses: the tests rerun the same tiny
# programs (resume == unbroken run, 8 devices == 1, the base model built
# three times), which then compile once. A fresh folder each session, so no
# entry outlives it; min compile time 0 because most programs here compile
# in under JAX's default 1 s.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _xla_cache = tempfile.mkdtemp(prefix="emojax-test-xla-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _xla_cache
  atexit.register(shutil.rmtree, _xla_cache, True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")

import sys  # noqa: E402

# Shared test helpers (tests/tiny_hf.py, ...) import as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))


import devices  # noqa: E402


def pytest_runtest_setup(item):
  """`gpu`-marked tests need a GPU backend (`pytest -m gpu` on one, with
  JAX_PLATFORMS=cuda as launch/gpu_check.sh sets); elsewhere they skip,
  or fail where the environment promised a GPU (`devices`)."""
  if item.get_closest_marker("gpu"):
    devices.require(
      jax.default_backend() == "gpu",
      "gpu",
      "needs a GPU: run `bash launch/gpu_check.sh` on one",
    )
