"""launch/train.py's --distributed switch: when it joins a multi-process run."""

import sys

import launch_scripts
import pytest

COORDINATOR = [
  "--coordinator_address=h:1",
  "--num_processes=2",
  "--process_id=1",
]


@pytest.mark.parametrize(
  "args, env, want",
  [
    ([], {}, False),
    ([], {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
    ([], {"SLURM_NTASKS": "1"}, False),
    ([], {"SLURM_NTASKS": "4"}, True),
    (["--distributed=yes"], {}, True),  # Cloud TPU VM slice: no env at all
    (["--distributed=no"], {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, False),
    (COORDINATOR, {}, True),
    (COORDINATOR + ["--distributed=no"], {}, False),
  ],
)
def test_distributed_switch(monkeypatch, args, env, want):
  train = launch_scripts.load("train")
  for key in (
    "JAX_COORDINATOR_ADDRESS",
    "TPU_WORKER_HOSTNAMES",
    "SLURM_NTASKS",
  ):
    monkeypatch.delenv(key, raising=False)
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  argv = ["train.py", "--config=configs/facial_r1.py", *args]
  monkeypatch.setattr(sys, "argv", argv)
  monkeypatch.chdir(launch_scripts.LAUNCH.parent)
  try:
    train.FLAGS(argv)
    assert train._multiprocess() is want
  finally:
    train.FLAGS.unparse_flags()
