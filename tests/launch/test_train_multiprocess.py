"""Two JAX processes (one CPU device each) run launch/train.py as a
2-host cluster would, and end with the parameters one process with two
devices ends with."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
FLAGS = (
  "--config=configs/facial_r1.py:smoke",
  "--config.stages=('sft', 'grpo', 'synthesize')",
  "--config.model.base=",
  "--config.sft.steps=2",
  "--config.rl.steps=2",
  "--config.eval.num_examples=2",
)


def _launch(tmp_path, name, devices, extra=(), flags=FLAGS):
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    EMOJAX_CACHE=str(tmp_path / "cache"),
  )
  cmd = [
    sys.executable,
    os.path.join(ROOT, "launch", "train.py"),
    *flags,
    f"--workdir={tmp_path / name}",
    # One folder per run, shared by its processes as on NFS (tfds cannot
    # prepare one folder for two runs at once).
    f"--config.data.tfds_dir={tmp_path / name / 'tfds'}",
    *extra,
  ]
  return subprocess.Popen(
    cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    text=True,
  )  # fmt: skip


def _params(workdir):
  """The last checkpoint's params, read onto this process's first device
  (the runs wrote them from other device layouts)."""
  root = os.path.join(workdir, "checkpoints")
  step = max(int(s) for s in os.listdir(root) if s.isdigit())
  path = os.path.join(root, str(step), "state")
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with ocp.StandardCheckpointer() as ckptr:
    meta = ckptr.metadata(path)
    meta = getattr(meta, "item_metadata", meta)
    target = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta
    )
    return ckptr.restore(path, target)["params"]


def _cluster(tmp_path, name, flags=FLAGS):
  """Two processes of one device each on a free local port."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  return [
    _launch(
      tmp_path,
      name,
      1,
      (
        f"--coordinator_address=localhost:{port}",
        "--num_processes=2",
        f"--process_id={i}",
      ),
      flags,
    )
    for i in range(2)
  ]


@pytest.mark.slow
def test_two_processes_train_as_one_with_two_devices(tmp_path):
  # The reference runs beside the cluster: 3 processes on 2 cores take
  # less wall time than two runs one after the other.
  runs = [*_cluster(tmp_path, "two"), _launch(tmp_path, "one", 2)]
  logs = [p.communicate(timeout=900)[0] for p in runs]
  for p, log in zip(runs, logs, strict=True):
    assert p.returncode == 0, log[-3000:]
  want, got = _params(tmp_path / "one"), _params(tmp_path / "two")
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
  assert (tmp_path / "two" / "synthesized" / "stage2.jsonl").exists()
  assert (tmp_path / "two" / "eval" / "1-grpo" / "metrics.json").exists()


def test_a_bad_row_process_0_finds_stops_both_processes(tmp_path):
  """Process 0 prepares the data alone; when a row fails there, process 1
  raises too instead of waiting for it forever."""
  data = tmp_path / "dair"
  data.mkdir()
  for split in ("train", "test"):
    (data / f"{split}.csv").write_text("text,label\nglad,1\nodd,9\n")
  flags = (
    "--config=configs/text_classifier.py:smoke",
    f"--config.data.manual_dir={data}",
  )
  cluster = _cluster(tmp_path, "bad", flags)
  logs = [p.communicate(timeout=300)[0] for p in cluster]
  assert [p.returncode for p in cluster] == [1, 1], logs[1][-2000:]
  assert "unknown label 9" in logs[0]
  assert "process 0 failed" in logs[1]
