r"""Launches launch/train.py on Google Cloud with XManager (Vertex AI).

  python launch/xm_launch.py --config=configs/facial_r1.py:qwen2_5_vl_7b \
      --workdir=gs://BUCKET/runs/facial-r1 --accelerator=a100=8 \
      --override=model.hf_dir=gs://BUCKET/Qwen2.5-VL-7B-Instruct \
      --override=data.manual_dir=gs://BUCKET/FEA-20K
  python launch/xm_launch.py ... --dry_run   # print the job; needs no xmanager

Needs `pip install xmanager` (0.8.x), gcloud credentials and a staging
bucket (`GOOGLE_CLOUD_BUCKET_NAME`), as XManager's Vertex AI path does. The
checkout is packaged with `xm.python_container`: the image installs it with
`pip install -e .[tpu]` or `.[cuda12]` to match `--accelerator`, and every
host runs `python launch/train.py` with the same arguments (multi-controller
JAX). emojax reads and writes plain files, so gs:// paths reach train.py as
their Cloud Storage FUSE mount on Vertex AI (`gs://b/p` -> `/gcs/b/p`).

What xmanager 0.8.x's Vertex executor can place: A100s on one a2 machine
(1, 2, 4, 8 or 16) and the one-host TPU v2-8 / v3-8. It has no Vertex
machine type for H100s, TPU v4/v5e/v5p/v6e or multi-host slices; for those
the launcher stops before building anything, and `--dry_run` prints the
per-host command to run on every worker of a TPU VM slice yourself
(`gcloud compute tpus tpu-vm ssh NAME --worker=all --command=...`).
"""

import dataclasses
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A FlagValues of its own: train.py defines --config/--workdir in absl's
# global FLAGS, and xmanager reads its own --xm_* flags from there.
FLAGS = flags.FlagValues()
flags.DEFINE_string(
  "config",
  None,
  "Config spec passed to train.py: configs/<recipe>.py[:variant].",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "workdir",
  None,
  "gs://BUCKET/PATH for checkpoints and reports.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "accelerator",
  None,
  "Cloud TPU type (v3-8, v4-32, v5e-16, v5p-32, or GEN:TOPOLOGY such as "
  "v5e:4x4) or GPUs per host (a100=8, h100=8).",
  flag_values=FLAGS,
)
flags.DEFINE_integer(
  "num_hosts", None, "GPU hosts (TPU: implied by the type).", flag_values=FLAGS
)
flags.DEFINE_string(
  "name", None, "Experiment name (default: from --config).", flag_values=FLAGS
)
flags.DEFINE_multi_string(
  "override",
  [],
  "KEY=VALUE, passed to train.py as --config.KEY=VALUE (repeatable).",
  flag_values=FLAGS,
)
flags.DEFINE_bool(
  "dry_run",
  False,
  "Print the job and exit; imports no xmanager.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "base_image", "python:3.11", "Docker base image.", flag_values=FLAGS
)

# Cloud TPU generation -> (xmanager resource, most chips one host carries,
# TensorCores per chip as counted by the `vN-COUNT` type name).
_TPUS = {
  "v2": ("tpu_v2", 4, 2),
  "v3": ("tpu_v3", 4, 2),
  "v4": ("tpu_v4", 4, 2),
  "v5p": ("tpu_v5p", 4, 2),
  "v5e": ("tpu_v5e", 8, 1),
  "v6e": ("tpu_v6e", 8, 1),
}
_TPU_ALIASES = {"v5litepod": "v5e"}
_CHIPS_PER_TPU_HOST = 4  # Every multi-host slice above.
_GPUS = ("a100", "h100")
_A2_GPUS = (1, 2, 4, 8, 16)  # A100s on the a2-highgpu/megagpu machines.
_UNITS = {"tpu": "TPU chips", "gpu": "GPUs"}
_ACCEPTED = (
  "use a Cloud TPU type (v2-8, v3-8, v4-32, v5e-16 or v5litepod-16, v5p-32, "
  "v6e-8), GEN:TOPOLOGY (v4:2x2x4, v5e:4x4) or GPU=COUNT per host "
  "(a100=8, h100=8)"
)


@dataclasses.dataclass(frozen=True)
class Accelerator:
  """What every host of the job gets, and how many hosts."""

  kind: str  # "tpu" | "gpu".
  name: str  # TPU generation (v4) or GPU model (a100).
  chips: int  # Over all hosts.
  hosts: int
  topology: str = ""  # TPU chip grid when given ("2x2x4").

  @property
  def pip_extra(self) -> str:
    """setup.py extra with the matching jax build."""
    return "tpu" if self.kind == "tpu" else "cuda12"

  @property
  def cloud_name(self) -> str:
    if self.kind == "gpu":
      return f"{self.name}={self.chips // self.hosts}"
    cores = self.chips * _TPUS[self.name][2]
    return f"{self.name}-{cores}" + (
      f" ({self.topology})" if self.topology else ""
    )

  def xm_resources(self) -> dict[str, int | str]:
    """Keyword arguments of `xm.JobRequirements` for one host's job."""
    if self.kind == "gpu":
      return {self.name: self.chips // self.hosts}
    resource, _, cores_per_chip = _TPUS[self.name]
    # Vertex counts TPU v2/v3 in TensorCores (8 for a v3-8 host).
    if self.name in ("v2", "v3"):
      return {resource: self.chips * cores_per_chip}
    return {resource: self.topology or self.chips}


def parse_accelerator(text: str, num_hosts: int | None = None) -> Accelerator:
  """`--accelerator` (and `--num_hosts`) -> Accelerator.

  Raises ValueError naming the flag and the accepted forms.
  """
  spec = (text or "").strip().lower()
  if m := re.fullmatch(r"([a-z0-9]+)=(\d+)", spec):
    model, count = m.group(1), int(m.group(2))
    if model not in _GPUS or count < 1:
      raise ValueError(f"--accelerator={text!r}: {_ACCEPTED}.")
    hosts = num_hosts or 1
    if hosts < 1:
      raise ValueError(f"--num_hosts={num_hosts}: give 1 or more GPU hosts.")
    return Accelerator("gpu", model, count * hosts, hosts)
  if m := re.fullmatch(r"([a-z0-9]+)(?:-(\d+)|:(\d+(?:x\d+){1,2}))", spec):
    gen = _TPU_ALIASES.get(m.group(1), m.group(1))
    if gen not in _TPUS:
      raise ValueError(f"--accelerator={text!r}: {_ACCEPTED}.")
    _, one_host, cores_per_chip = _TPUS[gen]
    if m.group(2):
      cores, topology = int(m.group(2)), ""
      if cores < 1 or cores % cores_per_chip:
        raise ValueError(
          f"--accelerator={text!r}: {gen}-N counts TensorCores, "
          f"{cores_per_chip} per chip; {_ACCEPTED}."
        )
      chips = cores // cores_per_chip
    else:
      topology = m.group(3)
      chips = math.prod(int(d) for d in topology.split("x"))
    hosts = 1 if chips <= one_host else -(-chips // _CHIPS_PER_TPU_HOST)
    if num_hosts is not None and num_hosts != hosts:
      raise ValueError(
        f"--num_hosts={num_hosts} contradicts --accelerator={text!r} "
        f"({hosts} hosts); leave --num_hosts out for TPUs."
      )
    return Accelerator("tpu", gen, chips, hosts, topology)
  raise ValueError(f"--accelerator={text!r}: {_ACCEPTED}.")


def mounted(path: str) -> str:
  """gs://BUCKET/PATH as Vertex AI mounts it (Cloud Storage FUSE, /gcs)."""
  return "/gcs/" + path[len("gs://") :] if path.startswith("gs://") else path


def train_argv(
  config: str, workdir: str, overrides: Sequence[str] = ()
) -> list[str]:
  """launch/train.py's arguments, run from the repository root."""
  if not config:
    raise ValueError("--config is required: configs/<recipe>.py[:variant].")
  path, sep, variant = config.partition(":")
  if os.path.isabs(path):
    path = os.path.relpath(path, ROOT)
  if path.startswith("..") or not os.path.isfile(os.path.join(ROOT, path)):
    raise ValueError(
      f"--config={config}: {path} is not a file of this checkout; the job "
      "ships the checkout, so give configs/<recipe>.py[:variant]."
    )
  if not (workdir or "").startswith("gs://"):
    raise ValueError(
      f"--workdir={workdir}: cloud hosts keep nothing; give gs://BUCKET/PATH."
    )
  argv = [f"--config={path}{sep}{variant}", f"--workdir={mounted(workdir)}"]
  for item in overrides:
    key, eq, value = item.partition("=")
    key = key.strip().removeprefix("config.")
    if not eq or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", key):
      raise ValueError(
        f"--override={item}: write KEY=VALUE with a config field, e.g. "
        "--override=rl.group_size=16."
      )
    argv.append(f"--config.{key}={mounted(value)}")
  return argv


@dataclasses.dataclass(frozen=True)
class JobSpec:
  """One job: the same train.py command on every host."""

  name: str
  accelerator: Accelerator
  argv: tuple[str, ...]  # launch/train.py's arguments.
  env: tuple[tuple[str, str], ...] = (("PYTHONUNBUFFERED", "1"),)
  base_image: str = "python:3.11"

  @property
  def command(self) -> list[str]:
    return ["python", "launch/train.py", *self.argv]

  def docker_instructions(self, directory: str) -> list[str]:
    """Image steps after FROM; `directory` is the checkout's folder name."""
    return [
      "ENV LANG=C.UTF-8",
      "RUN python -m pip install --upgrade pip",
      f"COPY --chown=1000:root {directory}/ /emojax",
      "WORKDIR /emojax",
      f"RUN python -m pip install -e .[{self.accelerator.pip_extra}]",
    ]


def job_spec(
  config: str,
  workdir: str,
  accelerator: str,
  overrides: Sequence[str] = (),
  name: str | None = None,
  num_hosts: int | None = None,
  base_image: str = "python:3.11",
) -> JobSpec:
  """The launch flags -> JobSpec; ValueError names the bad flag."""
  argv = train_argv(config, workdir, overrides)
  acc = parse_accelerator(accelerator, num_hosts)
  if acc.kind == "tpu" and acc.hosts > 1:
    # A TPU VM slice's workers find each other through the VM metadata,
    # which no environment variable announces to train.py's auto check.
    argv.append("--distributed=yes")
  if not name:
    stem = os.path.basename(config).replace(".py", "")
    name = "emojax-" + re.sub(r"[^a-z0-9-]+", "-", stem.lower())
  return JobSpec(name, acc, tuple(argv), base_image=base_image)


def vertex_problem(acc: Accelerator) -> str | None:
  """Why xmanager 0.8's Vertex executor cannot place `acc` (None: it can)."""
  if acc.kind == "gpu" and acc.hosts > 1:
    return (
      "multi-host GPUs: Vertex AI tells each host its rank only in "
      "CLUSTER_SPEC, which jax.distributed.initialize() does not read; use "
      "one host (a100=8 or a100=16)"
    )
  if acc.kind == "gpu" and acc.name != "a100":
    return (
      f"{acc.name}: xmanager 0.8 asks Vertex AI for an n1-standard machine "
      "with these GPUs, which Vertex refuses; use a100=N"
    )
  if acc.kind == "gpu" and acc.chips not in _A2_GPUS:
    return f"a100={acc.chips}: a2 machines carry {_A2_GPUS} A100s"
  if acc.kind == "tpu" and (acc.name not in ("v2", "v3") or acc.chips != 4):
    return (
      f"TPU {acc.cloud_name}: xmanager 0.8 maps only TPU v2-8 and v3-8 to a "
      "Vertex AI machine; for a TPU VM slice run the printed command on "
      "every worker (gcloud compute tpus tpu-vm ssh NAME --worker=all "
      "--command=...), with the bucket mounted at /gcs/BUCKET (gcsfuse)"
    )
  return None


def describe(spec: JobSpec) -> str:
  """The job as text: what --dry_run prints."""
  acc = spec.accelerator
  problem = vertex_problem(acc)
  lines = [
    f"name:        {spec.name}",
    f"accelerator: {acc.cloud_name}, {acc.chips} {_UNITS[acc.kind]} "
    f"on {acc.hosts} host(s)",
    f"xmanager:    xm.JobRequirements({_kwargs(acc.xm_resources())})",
    f"install:     pip install -e .[{acc.pip_extra}] on {spec.base_image}",
    "env:         " + " ".join(f"{k}={v}" for k, v in spec.env),
    f"vertex ai:   {'cannot place it: ' + problem if problem else 'yes'}",
    "every host runs, from the checkout's root:",
    "  " + shlex.join(spec.command),
  ]
  return "\n".join(lines)


def _kwargs(d: dict) -> str:
  return ", ".join(f"{k}={v!r}" for k, v in d.items())


def launch(spec: JobSpec, xm_argv: Sequence[str] = ()) -> None:
  """Packages the checkout and submits `spec` to Vertex AI."""
  problem = vertex_problem(spec.accelerator)
  if problem:
    raise ValueError(f"--accelerator: cannot launch {problem}.")
  try:
    from xmanager import xm, xm_local
  except ImportError as e:
    raise ImportError(
      "launch/xm_launch.py needs XManager: pip install xmanager "
      "(or use --dry_run to print the job without it)."
    ) from e
  # xmanager reads its --xm_* flags from absl's global FLAGS.
  flags.FLAGS(["xm_launch", *xm_argv])
  executor = xm_local.Vertex(
    requirements=xm.JobRequirements(**spec.accelerator.xm_resources())
  )
  # Single-host jobs only (vertex_problem): JAX finds the host's local
  # devices by itself. Multi-host TPU VM slices would rely on
  # jax.distributed.initialize() reading the GCE metadata server
  # (agent-worker-number, worker-network-endpoints).
  with xm_local.create_experiment(experiment_title=spec.name) as experiment:
    [executable] = experiment.package(
      [
        xm.python_container(
          executor_spec=xm_local.Vertex.Spec(),
          path=ROOT,
          base_image=spec.base_image,
          docker_instructions=spec.docker_instructions(os.path.basename(ROOT)),
          entrypoint=xm.CommandList(["python launch/train.py"]),
          env_vars=dict(spec.env),
        )
      ]
    )
    experiment.add(
      xm.Job(executable=executable, executor=executor, args=list(spec.argv))
    )


def main(argv: Sequence[str]) -> int:
  """Parses launcher flags; unknown --xm_* flags go on to xmanager."""
  FLAGS.unparse_flags()  # main() may run twice in one process (tests).
  rest = FLAGS(list(argv), known_only=True)
  try:
    spec = job_spec(
      FLAGS.config,
      FLAGS.workdir,
      FLAGS.accelerator,
      FLAGS.override,
      FLAGS.name,
      FLAGS.num_hosts,
      FLAGS.base_image,
    )
  except ValueError as e:
    print(f"launch/xm_launch.py: {e}", file=sys.stderr)
    return 2
  print(describe(spec))
  if FLAGS.dry_run:
    if rest[1:]:
      print(f"launch/xm_launch.py: unknown flags {rest[1:]}", file=sys.stderr)
      return 2
    return 0
  try:
    launch(spec, rest[1:])
  except (ValueError, ImportError) as e:
    print(f"launch/xm_launch.py: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
