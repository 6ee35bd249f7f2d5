#!/usr/bin/env bash
# On-device check of emojax's Pallas kernels, in one go, on a GPU machine:
# correctness first (pytest -m gpu tests/kernels), then the benchmark.
# Needs jax with CUDA, pytest and (for two test modules) ml_collections;
# wheels in ./.whl, if any, are installed into /tmp/site first (no
# network: the workplace's GPU machine lacks ml_collections, so carry
# `.whl` with ml_collections-1.1.0-py3-none-any.whl in it).
# Logs go to $OUT (default ./gpu_check_out).
#
#   OUT=/tmp/out bash launch/gpu_check.sh [--quick]
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

# -p no:cacheprovider: the tree may be read-only; -o addopts= drops the
# default "-m 'not gpu'" so -m gpu selects the on-device tests.
timeout 240 "$PY" -m pytest -p no:cacheprovider -o addopts= -m gpu \
  tests/kernels -q -rs > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest -m gpu exit $?" | tee -a "$OUT/pytest_gpu.txt"
tail -5 "$OUT/pytest_gpu.txt"

timeout 300 "$PY" launch/benchmark.py kernels "$@" > "$OUT/bench.txt" 2>&1
echo "benchmark exit $?" | tee -a "$OUT/bench.txt"
cat "$OUT/bench.txt"
