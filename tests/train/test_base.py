"""The embedded default's base model: `ground` trains the vision tower (and
merger) only, `pretrain` the merger and language model with the tower
frozen; building is cached and resumes bitwise after a crash."""

import os
import sys

import jax
import numpy as np
import pytest

from emojax import checkpoint
from emojax.train import base, setup, stages
from emojax.train import run as run_mod


def _recipe(config):
  config.model.base = "test_base"
  config.ground.steps, config.ground.batch_size = 4, 4
  config.ground.num_faces, config.ground.num_held_out = 24, 8
  config.pretrain.steps, config.pretrain.batch_size = 3, 4
  config.pretrain.num_train = 16
  config.pretrain.num_eval = 4
  config.checkpoint_every = 1
  config.keep_checkpoints = 100
  return config


def _params_at(workdir, stage, with_history=False):
  """Params handed from stage `stage - 1` to `stage` (boundary save)."""
  ckpt = checkpoint.RunCheckpoints(os.path.join(workdir, "checkpoints"))
  for step in ckpt.manager.all_steps():
    p = ckpt.progress(step)
    if p["stage"] == stage and p["stage_step"] == 0:
      params = ckpt.restore_state(step)["params"]
      ckpt.close()
      return (params, p["history"]) if with_history else params
  raise AssertionError(f"no boundary checkpoint before stage {stage}")


def _changed(a, b) -> dict[str, bool]:
  """Leaf path -> whether any element changed from `a` to `b`."""
  return {
    jax.tree_util.keystr(p): bool(np.any(np.asarray(x) != np.asarray(y)))
    for (p, x), (_, y) in zip(
      jax.tree_util.tree_leaves_with_path(a),
      jax.tree_util.tree_leaves_with_path(b),
      strict=True,
    )
  }


def _split(changed):
  tower = {k: v for k, v in changed.items() if k.startswith("['vision']")}
  merger = {k: v for k, v in tower.items() if "['merger']" in k}
  lm = {k: v for k, v in changed.items() if k not in tower}
  return {k: v for k, v in tower.items() if k not in merger}, merger, lm


def test_base_model_stages_train_their_parts_resume_and_cache(
  smoke_config, tmp_path, monkeypatch
):
  recipe = _recipe(smoke_config)
  out = stages.ensure_base(recipe)
  assert os.path.exists(os.path.join(out, checkpoint.CONFIG_FILE))
  c = base.base_config(recipe)
  work = os.path.join(base.folder(recipe), "work")

  mc = setup.model_config(c, setup.tokenizer(c))
  mesh, rules = setup.mesh_and_rules(c, None)
  init = setup.initial_params(c, mc, mesh, rules, None)
  grounded = _params_at(work, 1)
  tower, merger, lm = _split(_changed(init, grounded))
  assert all(tower.values()) and all(merger.values())
  assert not any(lm.values())
  final, history = _params_at(work, 2, with_history=True)
  assert 0 <= history["ground"]["token_au_macro_f1"] <= 1
  assert set(history["base_captions"]) == {
    "region_accuracy",
    "exact",
    "distinct",
  }
  tower, merger, lm = _split(_changed(grounded, final))
  assert not any(tower.values())
  assert all(merger.values()) and all(lm.values())

  calls = {"n": 0}
  real = run_mod.check_finite

  def crash_in_ground(metrics, where):
    calls["n"] += 1
    if calls["n"] == 3:  # after ground's third step, before its save
      raise RuntimeError("simulated crash")
    real(metrics, where)

  broken = str(tmp_path / "broken")
  monkeypatch.setattr(run_mod, "check_finite", crash_in_ground)
  with pytest.raises(RuntimeError, match="simulated crash"):
    stages.train(c, broken)
  monkeypatch.setattr(run_mod, "check_finite", real)
  stages.train(c, broken)
  jax.tree.map(np.testing.assert_array_equal, final, _params_at(broken, 2))

  monkeypatch.setattr(stages, "make_run", lambda *a, **k: 1 / 0)
  assert stages.ensure_base(recipe) == out  # cached: nothing rebuilt


def test_base_only_refuses_a_config_without_a_base_model():
  """The 7B variants start from model.hf_dir: there is nothing to build
  (it would have run ground+pretrain on a random 7B)."""
  sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
  )
  from configs import facial_r1

  c = facial_r1.get_config("qwen2_5_vl_7b")
  with pytest.raises(ValueError, match="config.model.base is empty"):
    stages.ensure_base(c)
