r"""Trains a recipe: `config.stages` in order, resumable, with evaluations.

  python launch/train.py --config=configs/facial_r1.py
  python launch/train.py --config=configs/facial_r1.py:smoke --workdir=/tmp/w
  python launch/train.py --config=configs/facial_r1.py --config.rl.steps=80

Run the same command again to resume after a crash or preemption. On a
multi-process cluster (TPU pod, multi-node GPUs) every process runs this
command; `jax.distributed.initialize()` finds its peers from the
environment, or from --coordinator_address, --num_processes and
--process_id.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from emojax import tcmalloc  # noqa: E402

if __name__ == "__main__":
  tcmalloc.restart_with_tcmalloc(sys.argv)  # CPU speed; see its docstring.

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from emojax.train import setup, stages  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config: configs/<recipe>.py[:variant].",
  lock_config=True,
)
flags.DEFINE_string(
  "workdir", None, "Checkpoints, logs and reports (default: ./runs/<name>)."
)
flags.DEFINE_bool(
  "base_only", False, "Only build (and cache) the base model, then exit."
)
flags.DEFINE_enum(
  "distributed",
  "auto",
  ["auto", "yes", "no"],
  "Call jax.distributed.initialize() first: 'auto' when a coordinator, "
  "GKE TPU or multi-task Slurm environment is visible; 'yes' on every "
  "worker of a Cloud TPU VM slice (it finds its peers from the VM "
  "metadata, which no environment variable announces).",
)
flags.DEFINE_string(
  "coordinator_address",
  None,
  "host:port of process 0, where JAX's environment detection (Cloud TPU, "
  "GKE, Slurm, Open MPI) does not apply: with --num_processes and "
  "--process_id, on every process.",
)
flags.DEFINE_integer("num_processes", None, "Processes in the run.")
flags.DEFINE_integer("process_id", None, "This process, 0 .. n - 1.")
flags.mark_flags_as_required(["config"])


def _multiprocess() -> bool:
  if FLAGS.coordinator_address and FLAGS.distributed != "no":
    return True
  if FLAGS.distributed != "auto":
    return FLAGS.distributed == "yes"
  keys = ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS")
  return (
    any(os.environ.get(k) for k in keys)
    and os.environ.get("SLURM_NTASKS", "2") != "1"
  )


def _default_workdir() -> str:
  spec = sys.argv[[a.startswith("--config=") for a in sys.argv].index(True)]
  name = os.path.basename(spec.split("=", 1)[1]).replace(".py", "")
  return os.path.join(os.getcwd(), "runs", name.replace(":", "-"))


def main(argv):
  del argv
  if _multiprocess():  # before any computation touches the devices
    try:
      jax.distributed.initialize(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
      )
    except ValueError as e:  # e.g. only JAX_COORDINATOR_ADDRESS is set
      raise SystemExit(
        f"jax.distributed.initialize: {str(e).rstrip('.')}; outside Cloud "
        "TPU, GKE, Slurm and Open MPI pass --coordinator_address=HOST:PORT "
        "--num_processes=N --process_id=I on every process."
      ) from None
  logging.info("compilation cache: %s", setup.compilation_cache())
  if FLAGS.base_only:
    print("base model:", stages.ensure_base(FLAGS.config))
    return
  workdir = FLAGS.workdir or _default_workdir()
  logging.info("workdir: %s", workdir)
  history = stages.train(FLAGS.config, workdir)
  _print_summary(history, workdir)


def _print_summary(history: dict, workdir: str) -> None:
  evals = history.get("evals", {})
  keys = (
    ("emotion/accuracy", "emotion acc"),
    ("emotion/uar", "UAR"),
    ("au/macro_f1", "AU macro-F1"),
    ("format/valid_rate", "format ok"),
    ("facs/consistency", "FACS consistency"),
  )
  print(f"\nworkdir: {workdir}")
  print("stage".ljust(16) + "".join(label.rjust(18) for _, label in keys))
  for name, scalars in evals.items():
    cells = "".join(
      (f"{scalars[k]:.3f}" if k in scalars else "-").rjust(18) for k, _ in keys
    )
    print(name.ljust(16) + cells)
  print(f"report: {os.path.join(workdir, 'report', 'compare.md')}")


if __name__ == "__main__":
  app.run(main)
