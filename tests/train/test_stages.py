"""The stage loop: resume after a crash or SIGTERM ends where an unbroken
run ends (bitwise on CPU); config errors name the field."""

import os
import signal

import jax
import numpy as np
import pytest

from emojax import checkpoint
from emojax.train import sft, stages
from emojax.train.run import Preempted
from emojax.train.validate import ConfigError, validate


def _final_params(workdir):
  ckpt = checkpoint.RunCheckpoints(os.path.join(workdir, "checkpoints"))
  step = ckpt.latest_step()
  assert ckpt.progress(step)["stage"] == 2  # both stages done
  tree = ckpt.restore_state(step)
  ckpt.close()
  return tree["params"]


def _short(config):
  config.stages = ("sft", "grpo")
  config.sft.steps, config.rl.steps = 4, 3
  config.checkpoint_every = 1
  config.eval.num_examples = 0
  return config


def test_resume_after_crash_and_sigterm_is_bitwise(
  smoke_config, tmp_path, monkeypatch
):
  config = _short(smoke_config)
  stages.train(config, str(tmp_path / "whole"))
  want = _final_params(str(tmp_path / "whole"))

  calls = {"n": 0}
  real = sft.accumulate

  def crash_at_third(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == 3:
      raise RuntimeError("simulated crash")
    return real(*args, **kwargs)

  broken = str(tmp_path / "broken")
  monkeypatch.setattr(sft, "accumulate", crash_at_third)
  with pytest.raises(RuntimeError, match="simulated crash"):
    stages.train(config, broken)
  monkeypatch.setattr(sft, "accumulate", real)

  from emojax.train import stage_grpo

  real_update = stage_grpo._update

  def sigterm_in_grpo(*args, **kwargs):
    out = real_update(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return out

  monkeypatch.setattr(stage_grpo, "_update", sigterm_in_grpo)
  with pytest.raises(Preempted):
    stages.train(config, broken)
  monkeypatch.setattr(stage_grpo, "_update", real_update)

  stages.train(config, broken)
  got = _final_params(broken)
  jax.tree.map(np.testing.assert_array_equal, got, want)


@pytest.mark.parametrize(
  "edit, message",
  [
    (lambda c: setattr(c.rl, "reward_names", ["emotion", "nope"]), "nope"),
    (lambda c: setattr(c.rl, "group_size", 1), "group_size=1"),
    (lambda c: setattr(c.rl, "micro_batch_size", 3), "micro_batch_size=3"),
    (lambda c: c.mesh.update({"data": 16}), "needs 16 devices"),
    (
      lambda c: c.data.update({"dataset": "facial_r1", "manual_dir": ""}),
      "manual_dir",
    ),
    (lambda c: setattr(c, "stages", ("sft", "dpo")), "dpo"),
    (
      lambda c: setattr(c.rl, "token_masks", ["all", "all", "Think"]),
      "token_masks has unknown",
    ),
    (lambda c: setattr(c.rl, "token_masks", ["all"]), r"token_masks.*1 vs 3"),
    (lambda c: setattr(c.rl, "loss_type", "mean"), "loss_type='mean'"),
    (
      lambda c: setattr(c.sft.optim, "schedule", "step"),
      "sft.optim.schedule='step'",
    ),
    (
      # The penalty would start at 512 - 128 tokens; completions stop at 160.
      lambda c: c.rl.update(
        {
          "reward_names": ["emotion", "overlong"],
          "reward_weights": [1.0, 1.0],
          "token_masks": None,
          "overlong_max": 512,
          "overlong_cache": 128,
        }
      ),
      "overlong_max=512",
    ),
    (
      lambda c: c.update(
        {"stages": ("ground",), "data": {**c.data, "dataset": "facial_r1"}}
      ),
      "renders synthetic faces",
    ),
    (
      lambda c: (
        c.update({"stages": ("ground",)})
        or c.ground.update({"num_held_out": c.ground.num_faces})
      ),
      "num_held_out",
    ),
  ],
)
def test_bad_configs_name_the_field(smoke_config, edit, message):
  edit(smoke_config)
  with pytest.raises(ConfigError, match=message):
    validate(smoke_config)


def test_grpo_step_on_8_devices_equals_1_device(
  smoke_config, tmp_path, monkeypatch
):
  from emojax.train import grpo, setup, stage_grpo

  def varied_rewards(prompts, ro, rl, step, table, label_set):
    # A random model earns the same (zero) reward everywhere; random
    # rewards give every row an advantage, so the gradient is not ~0.
    r_PGR = np.random.RandomState(step).randn(4, 2, len(rl.reward_names))
    r_PG = r_PGR.sum(-1)
    return r_PGR, r_PG - r_PG.mean(1, keepdims=True)

  monkeypatch.setattr(grpo, "score", varied_rewards)
  config = smoke_config
  config.rl.prompts_per_step, config.rl.group_size = 4, 2
  config.rl.max_completion_length = 6
  out = []
  for mesh in ({"data": 1}, {"data": 2, "fsdp": 2, "tensor": 2}):
    config.mesh = mesh
    devices = jax.devices()[: 1 if mesh == {"data": 1} else 8]
    run = stages.make_run(config, str(tmp_path / f"d{len(devices)}"), devices)
    params = setup.initial_params(
      config, run.model_cfg, run.mesh, run.rules, None
    )
    stage = stage_grpo.build(run, 1, params, None)
    metrics = stage.step(0)
    out.append((stage.state()["train"].params, metrics))
    run.stop.restore()
    run.ckpt.close()
  (p1, m1), (p8, m8) = out
  assert m1["grad_norm"] > 1e-3
  np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(m8["grad_norm"], m1["grad_norm"], rtol=1e-4)
  # Adam divides by sqrt(v): where a gradient is ~0, summation-order noise
  # can flip an update's sign, so params agree to a few learning rates.
  lr = config.rl.optim.lr
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, atol=3 * lr, rtol=1e-5),
    p1,
    p8,
  )


def test_num_iterations_updates_each_batch_mu_times_on_one_schedule(
  smoke_config, tmp_path, monkeypatch
):
  """mu = 2: two updates per rollout batch, each against the batch's
  old logprobs, and the learning-rate schedule spans all the updates."""
  from emojax.train import grpo, optim, stage_grpo

  config = smoke_config
  config.stages, config.rl.steps, config.rl.num_iterations = ("grpo",), 2, 2
  config.rl.micro_batch_size = 0  # One gradient pass an update.
  config.eval.num_examples = 0
  spans, calls = [], []
  real_make, real_grads = optim.make, grpo.grads

  def make(cfg, total_steps, trainable=None):
    spans.append(total_steps)
    return real_make(cfg, total_steps, trainable)

  def grads(params, batch, inputs, **kwargs):
    calls.append("old_logp" in inputs)
    return real_grads(params, batch, inputs, **kwargs)

  monkeypatch.setattr(stage_grpo.optim, "make", make)
  monkeypatch.setattr(stage_grpo.grpo, "grads", grads)
  stages.train(config, str(tmp_path / "run"))
  assert spans == [4]
  assert calls == [True] * 4
