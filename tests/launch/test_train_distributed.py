"""launch/train.py's --distributed switch: when it joins a multi-process run."""

import sys

import launch_scripts
import pytest


@pytest.mark.parametrize(
  "flag, env, want",
  [
    ("auto", {}, False),
    ("auto", {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
    ("auto", {"SLURM_NTASKS": "1"}, False),
    ("auto", {"SLURM_NTASKS": "4"}, True),
    ("yes", {}, True),  # Cloud TPU VM slice: nothing in the environment
    ("no", {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, False),
  ],
)
def test_distributed_switch(monkeypatch, flag, env, want):
  train = launch_scripts.load("train")
  for key in (
    "JAX_COORDINATOR_ADDRESS",
    "TPU_WORKER_HOSTNAMES",
    "SLURM_NTASKS",
  ):
    monkeypatch.delenv(key, raising=False)
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  argv = ["train.py", "--config=configs/facial_r1.py", f"--distributed={flag}"]
  monkeypatch.setattr(sys, "argv", argv)
  monkeypatch.chdir(launch_scripts.LAUNCH.parent)
  try:
    train.FLAGS(argv)
    assert train._multiprocess() is want
  finally:
    train.FLAGS.unparse_flags()


def test_a_coordinator_flag_joins_and_no_still_wins(monkeypatch):
  train = launch_scripts.load("train")
  for key in (
    "JAX_COORDINATOR_ADDRESS",
    "TPU_WORKER_HOSTNAMES",
    "SLURM_NTASKS",
  ):
    monkeypatch.delenv(key, raising=False)
  monkeypatch.chdir(launch_scripts.LAUNCH.parent)
  base = ["train.py", "--config=configs/facial_r1.py"]
  for extra, want in (
    (
      ["--coordinator_address=h:1", "--num_processes=2", "--process_id=1"],
      True,
    ),
    (["--coordinator_address=h:1", "--distributed=no"], False),
  ):
    monkeypatch.setattr(sys, "argv", base + extra)
    try:
      train.FLAGS(base + extra)
      assert train._multiprocess() is want
    finally:
      train.FLAGS.unparse_flags()
