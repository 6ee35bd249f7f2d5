"""`python launch/train.py --config=configs/facial_r1.py:smoke` as a user
runs it: every stage, then checkpoints, logs and reports on disk."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.slow
def test_smoke_run_leaves_checkpoints_logs_and_reports(tmp_path):
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS="",
    EMOJAX_CACHE=str(tmp_path / "cache"),
  )
  for name in (  # as a user has it
    "JAX_COMPILATION_CACHE_DIR",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
  ):
    env.pop(name, None)
  workdir = tmp_path / "run"
  r = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "launch", "train.py"),
      "--config=configs/facial_r1.py:smoke",
      f"--workdir={workdir}",
      f"--config.data.tfds_dir={tmp_path / 'tfds'}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )
  assert r.returncode == 0, r.stderr[-3000:]
  assert "emotion acc" in r.stdout  # the one-screen summary
  names = ["base", "0-sft", "1-grpo", "3-sft", "4-grpo"]
  for name in names:
    with open(workdir / "eval" / name / "metrics.json") as f:
      metrics = json.load(f)
    assert {"emotion/accuracy", "au/macro_f1", "format/valid_rate"} <= set(
      metrics
    )
    assert (workdir / "eval" / name / "completions.html").exists()
  assert (workdir / "report" / "compare.md").read_text().count("|") > 10
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert list((workdir / "completions").glob("1-grpo-*.html"))
  assert (workdir / "synthesized" / "stage2.jsonl").exists()
  assert os.listdir(workdir / "checkpoints")
  # Programs over JAX's 1 s are kept for the next run (the cache's default).
  assert os.listdir(tmp_path / "cache" / "xla")


def test_bad_config_fails_at_start_with_the_field(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  r = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "launch", "train.py"),
      "--config=configs/facial_r1.py:smoke",
      f"--workdir={tmp_path}",
      "--config.rl.group_size=1",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )
  assert r.returncode != 0
  assert "config.rl.group_size=1" in r.stderr
