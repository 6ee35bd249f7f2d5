#!/usr/bin/env bash
# On-device check of emojax's Pallas kernels, in one go, on a GPU machine:
# correctness first, then the benchmark, each step under its own timeout
# so one broken kernel costs only its own figures.
#
#   OUT=/tmp/out bash launch/gpu_check.sh [--quick]
#
# 1. The Hopper (Mosaic GPU) flash attention alone, against its twin: it
#    has never run on a device. If it fails or hangs, the rest of the run
#    uses the Triton kernels ($EMOJAX_PALLAS_GPU=triton) and says so.
# 2. Every other gpu-marked kernel test.
# 3. `launch/benchmark.py kernels`.
# At most 570 s in all (the device tool's calls stop at 600 s); logs are
# written as each step ends, so a cut-off run still returns what it did.
# Needs jax with CUDA and pytest; wheels in ./.whl (ml_collections, which
# two test modules import, and pytest-timeout) are installed into
# /tmp/site first: the workplace's GPU machine lacks them and has no
# network, so carry `.whl` (launch/BENCHMARKS.md says how to fill it).
# Logs go to $OUT (default ./gpu_check_out).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export JAX_PLATFORMS="${JAX_PLATFORMS:-cuda}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# Promise the device to the tests (tests/devices.py): where a test would
# skip for want of it, it fails, so a run that tested nothing is red.
EMOJAX_EXPECT_DEVICE=$("$PY" -c "
import jax
cc = str(getattr(jax.devices()[0], 'compute_capability', ''))
print('hopper' if cc.split('.')[0] == '9' else 'gpu')")
export EMOJAX_EXPECT_DEVICE="${EMOJAX_EXPECT_DEVICE:-gpu}"
echo "EMOJAX_EXPECT_DEVICE=$EMOJAX_EXPECT_DEVICE" | tee -a "$OUT/env.txt"

# -p no:cacheprovider: the tree may be read-only; -o addopts= drops the
# default "-m 'not gpu'" so -m gpu selects the on-device tests.
PYTEST=("$PY" -m pytest -p no:cacheprovider -o addopts= -m gpu -q -rs)
if "$PY" -c "import pytest_timeout" 2> /dev/null; then
  PYTEST+=(--timeout=120 --timeout-method=thread)
fi

timeout 150 "${PYTEST[@]}" tests/kernels/test_flash_attention_mgpu.py \
  > "$OUT/pytest_hopper.txt" 2>&1
rc=$?
echo "pytest -m gpu (Hopper flash attention) exit $rc" \
  | tee -a "$OUT/pytest_hopper.txt"
tail -15 "$OUT/pytest_hopper.txt"
if [ "$rc" -ne 0 ]; then  # (on a pre-Hopper card they skip: rc 0)
  export EMOJAX_PALLAS_GPU=triton
  echo "Hopper kernels failed: the rest runs EMOJAX_PALLAS_GPU=triton"
fi

timeout 150 "${PYTEST[@]}" tests/kernels \
  --ignore=tests/kernels/test_flash_attention_mgpu.py \
  > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest -m gpu (the other kernels) exit $?" | tee -a "$OUT/pytest_gpu.txt"
tail -8 "$OUT/pytest_gpu.txt"

timeout 270 "$PY" launch/benchmark.py kernels "$@" > "$OUT/bench.txt" 2>&1
echo "benchmark exit $?" | tee -a "$OUT/bench.txt"
cat "$OUT/bench.txt"
