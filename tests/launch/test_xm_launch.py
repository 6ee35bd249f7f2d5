"""launch/xm_launch.py without xmanager: the job it would submit."""

import shlex
import sys

import launch_scripts
import pytest

xm_launch = launch_scripts.load("xm_launch")

CONFIG = "configs/facial_r1.py:qwen2_5_vl_7b"
OVERRIDES = [
  "rl.group_size=16",
  "config.model.hf_dir=gs://bkt/ckpt/Qwen2.5-VL-7B-Instruct",
  "data.splits.train=train[:90%]",
]


def test_train_argv_parses_in_train_py_to_the_overridden_config(monkeypatch):
  monkeypatch.chdir(xm_launch.ROOT)  # Where the job runs train.py.
  spec = xm_launch.job_spec(CONFIG, "gs://bkt/runs/r1", "v4-32", OVERRIDES)
  train = launch_scripts.load("train")  # train.py's own absl flags.
  # config_flags reads --config.* overrides from sys.argv, as in a real run.
  monkeypatch.setattr(sys, "argv", ["train.py", *spec.argv])
  try:
    train.FLAGS(sys.argv)
    config, workdir = train.FLAGS.config, train.FLAGS.workdir
  finally:
    train.FLAGS.unparse_flags()
  assert workdir == "/gcs/bkt/runs/r1"
  assert config.rl.group_size == 16
  assert config.model.hf_dir == "/gcs/bkt/ckpt/Qwen2.5-VL-7B-Instruct"
  assert config.data.splits.train == "train[:90%]"
  # The variant survived the round trip: its mesh and data set, not the
  # default's.
  assert config.mesh.fsdp == -1 and config.data.dataset == "facial_r1"


@pytest.mark.parametrize(
  "text, chips, hosts, extra, resources",
  [
    # Cloud TPU type names: v2/v3/v4/v5p count TensorCores (2 per chip),
    # v5e/v6e count chips; multi-host slices have 4 chips per host.
    ("v3-8", 4, 1, "tpu", {"tpu_v3": 8}),
    ("v4-8", 4, 1, "tpu", {"tpu_v4": 4}),
    ("v4-32", 16, 4, "tpu", {"tpu_v4": 16}),
    ("v5p-128", 64, 16, "tpu", {"tpu_v5p": 64}),
    ("v5litepod-8", 8, 1, "tpu", {"tpu_v5e": 8}),
    ("v5e-16", 16, 4, "tpu", {"tpu_v5e": 16}),
    ("v4:2x2x4", 16, 4, "tpu", {"tpu_v4": "2x2x4"}),
    ("A100=8", 8, 1, "cuda12", {"a100": 8}),
  ],
)
def test_accelerator_forms(text, chips, hosts, extra, resources):
  acc = xm_launch.parse_accelerator(text)
  assert (acc.chips, acc.hosts) == (chips, hosts)
  assert acc.pip_extra == extra
  assert acc.xm_resources() == resources


def test_gpu_hosts_multiply_per_host_count():
  acc = xm_launch.parse_accelerator("h100=8", num_hosts=2)
  assert (acc.chips, acc.hosts, acc.xm_resources()) == (16, 2, {"h100": 8})


@pytest.mark.parametrize(
  "text", ["tpu-v9", "v4-31", "v7-8", "h100", "b200=8", "a100=0", "", "v4:2x"]
)
def test_bad_accelerator_names_the_flag_and_the_accepted_forms(text):
  with pytest.raises(ValueError) as e:
    xm_launch.parse_accelerator(text)
  assert f"--accelerator={text!r}" in str(e.value)
  assert "v4-32" in str(e.value) and "a100=8" in str(e.value)


def test_num_hosts_contradicting_a_tpu_type_fails():
  with pytest.raises(ValueError, match="--num_hosts=2 contradicts"):
    xm_launch.parse_accelerator("v4-32", num_hosts=2)


@pytest.mark.parametrize(
  "text, hosts, placeable, reason",
  [
    ("a100=8", 1, True, ""),
    ("v3-8", None, True, ""),
    ("a100=8", 2, False, "CLUSTER_SPEC"),
    ("a100=3", 1, False, "a2 machines"),
    ("h100=8", 1, False, "n1-standard"),
    ("v4-32", None, False, "--worker=all"),
    ("v3-32", None, False, "--worker=all"),
  ],
)
def test_what_xmanagers_vertex_executor_can_place(
  text, hosts, placeable, reason
):
  problem = xm_launch.vertex_problem(xm_launch.parse_accelerator(text, hosts))
  assert (problem is None) == placeable
  assert reason in (problem or "")


def _main(capsys, *args):
  rc = xm_launch.main(["xm_launch.py", f"--config={CONFIG}", *args])
  out, err = capsys.readouterr()
  return rc, out, err


def test_dry_run_prints_the_command_and_never_imports_xmanager(
  capsys, monkeypatch
):
  monkeypatch.setitem(sys.modules, "xmanager", None)  # Import raises.
  args = ["--workdir=gs://bkt/r", "--accelerator=a100=8"]
  args += [f"--override={o}" for o in OVERRIDES]
  rc, out, _ = _main(capsys, *args, "--dry_run")
  assert rc == 0
  spec = xm_launch.job_spec(CONFIG, "gs://bkt/r", "a100=8", OVERRIDES)
  assert "  " + shlex.join(spec.command) in out.splitlines()
  assert "--config.rl.group_size=16" in out
  assert "xm.JobRequirements(a100=8)" in out
  assert "pip install -e .[cuda12]" in out
  # Without --dry_run the launch needs xmanager and says how to get it.
  rc, _, err = _main(capsys, *args)
  assert rc == 2 and "pip install xmanager" in err


@pytest.mark.parametrize(
  "args, flag",
  [
    (["--workdir=/tmp/run", "--accelerator=v3-8"], "--workdir=/tmp/run"),
    (["--workdir=gs://b/r", "--accelerator=v3-9"], "--accelerator="),
    (
      ["--workdir=gs://b/r", "--accelerator=v3-8", "--override=rl.steps"],
      "--override=rl.steps",
    ),
  ],
)
def test_bad_flags_fail_before_launch_with_the_flag(capsys, args, flag):
  rc, _, err = _main(capsys, *args, "--dry_run")
  assert rc == 2 and flag in err


def test_unplaceable_accelerator_stops_before_packaging(capsys):
  rc, out, err = _main(capsys, "--workdir=gs://b/r", "--accelerator=v5e-16")
  assert rc == 2
  assert "gcloud compute tpus tpu-vm ssh" in err
  assert "python launch/train.py" in out  # The command to run by hand.


def test_multi_host_tpu_slices_join_the_distributed_runtime():
  slice_ = xm_launch.job_spec("configs/facial_r1.py", "gs://b/r", "v4-32")
  one = xm_launch.job_spec("configs/facial_r1.py", "gs://b/r", "v3-8")
  assert "--distributed=yes" in slice_.command
  assert not any(a.startswith("--distributed") for a in one.command)
