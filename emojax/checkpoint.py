"""emojax checkpoints on disk (orbax), starting with a params checkpoint.

A params checkpoint is a folder:
  model_config.json   the `ModelConfig` (emojax.model.config_io)
  params/             orbax `StandardCheckpointer` pytree
  tokenizer/          optional tokenizer/processor files, carried to HF export

Restoring places every leaf straight onto the sharding the caller asks for
(or the single default device), without a host copy of the whole tree.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence

import jax
import orbax.checkpoint as ocp

from emojax import multihost
from emojax.model import config_io
from emojax.model import params as params_lib
from emojax.model import specs as model_specs
from emojax.model.config import ModelConfig

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"
TOKENIZER_DIR = "tokenizer"


def save_params(
  folder: str, cfg: ModelConfig, params, tokenizer_files: Sequence[str] = ()
) -> str:
  """Writes a params checkpoint; an existing folder is replaced at the end.

  `tokenizer_files` are copied into `tokenizer/` and travel to HF export.
  """
  folder = os.path.abspath(folder)
  tmp = folder + ".tmp"

  def fresh():
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

  def finish():
    with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
      json.dump(config_io.to_dict(cfg), f, indent=2)
    if tokenizer_files:
      os.makedirs(os.path.join(tmp, TOKENIZER_DIR))
      for path in tokenizer_files:
        shutil.copy2(path, os.path.join(tmp, TOKENIZER_DIR))
    if os.path.exists(folder):
      shutil.rmtree(folder)
    os.rename(tmp, folder)

  multihost.leader_only("emojax_params_tmp", fresh)
  with ocp.StandardCheckpointer() as ckptr:  # Every process writes its part.
    ckptr.save(os.path.join(tmp, PARAMS_DIR), params)
    ckptr.wait_until_finished()
  multihost.leader_only("emojax_params_saved", finish)
  return folder


def load_config(folder: str) -> ModelConfig:
  path = os.path.join(folder, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"{folder}: no {CONFIG_FILE}; this is not an emojax params checkpoint "
      "(for a Hugging Face folder use emojax.hf.load or --from_hf)."
    )
  with open(path) as f:
    return config_io.from_dict(json.load(f))


def load_params(folder: str, mesh=None, rules=None):
  """Returns `(model_config, params)`, leaves on their shardings."""
  cfg = load_config(folder)
  specs = model_specs(cfg)
  with ocp.StandardCheckpointer() as ckptr:
    params = ckptr.restore(
      os.path.abspath(os.path.join(folder, PARAMS_DIR)),
      _targets(specs, mesh, rules),
    )
  params_lib.check_tree(specs, params, where=folder)
  return cfg, params


def _targets(specs, mesh, rules):
  """ShapeDtypeStructs of the params on their shardings (the mesh's, or
  the single default device)."""
  abstract = params_lib.abstract(specs)
  if mesh is None:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
      abstract,
    )
  return jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
    abstract,
    params_lib.shardings(specs, mesh, rules),
  )


def restore_run_params(
  folder: str, cfg: ModelConfig, step: int | None = None, mesh=None, rules=None
):
  """`(step, params)` of a run checkpoint (`RunCheckpoints`' folder; the
  newest step by default): a stage boundary's params, or the params of a
  mid-stage train state, read alone (no optimiser state, no reference
  model), onto their shardings."""
  folder = os.path.abspath(folder)
  steps = ocp.utils.checkpoint_steps(folder) if os.path.isdir(folder) else []
  if not steps or (step is not None and step not in steps):
    raise FileNotFoundError(
      f"{folder}: no finished run checkpoint"
      + (f" at step {step}" if step is not None else "")
      + f" (steps there: {sorted(steps) or 'none'}); point at a training "
      "workdir or one of its checkpoints/STEP folders."
    )
  step = max(steps) if step is None else step
  path = os.path.join(folder, str(step), "state")
  with ocp.PyTreeCheckpointer() as ckptr:
    saved = ckptr.metadata(path).item_metadata
    prefix = ("params",) if "params" in saved else ("train", "params")
    specs = model_specs(cfg)
    item = _targets(specs, mesh, rules)
    for key in reversed(prefix):
      item = {key: item}
    restore_args = jax.tree.map(
      lambda t: ocp.ArrayRestoreArgs(sharding=t.sharding), item
    )
    out = ckptr.restore(
      path,
      args=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True
      ),
    )
  for key in prefix:
    out = out[key]
  params_lib.check_tree(specs, out, where=f"{path} ({'/'.join(prefix)})")
  return step, out


def tokenizer_dir(folder: str) -> str | None:
  path = os.path.join(folder, TOKENIZER_DIR)
  return path if os.path.isdir(path) else None


class RunCheckpoints:
  """A training run's checkpoints: train state + progress (JSON), keep-N.

  `progress` carries the stage index, step within the stage, the data
  iterator's state and anything else a stage needs to resume exactly.
  Saves are asynchronous; `wait()` before reading what was written.
  """

  def __init__(self, folder: str, keep: int = 2, async_save: bool = True):
    self.folder = os.path.abspath(folder)
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, enable_async_checkpointing=async_save, create=True
    )
    self.manager = ocp.CheckpointManager(
      self.folder, options=options, item_names=("state", "progress")
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, progress: dict, force: bool = False):
    self.manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        progress=ocp.args.JsonSave(progress),
      ),
      force=force,
    )

  def progress(self, step: int) -> dict:
    out = self.manager.restore(
      step, args=ocp.args.Composite(progress=ocp.args.JsonRestore())
    )
    return out["progress"]

  def restore_state(self, step: int, target=None):
    """`target`: a tree of arrays or ShapeDtypeStructs with shardings to
    restore into; None restores the saved tree as it was written."""
    if target is not None:
      target = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    out = self.manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
    )
    return out["state"]

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
