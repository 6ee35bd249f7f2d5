"""GRPO presets: each validates, and the recipe-defining fields hold."""

import pytest

from configs import common
from emojax import rewards


@pytest.mark.parametrize("name", common.PRESETS)
def test_presets_validate_and_build_their_rewards(name):
  c = common.grpo_preset(name)
  table = rewards.configured(c)
  assert all(n in table for n in c.reward_names)


def test_recipe_fields():
  f = common.grpo_preset("facial_r1")
  assert (f.group_size, f.beta, f.epsilon, f.loss_type) == (
    8,
    0.04,
    0.2,
    "grpo",
  )
  assert f.token_masks == ["all", "all", "think"] and f.reward_clip == 10.0
  h = common.grpo_preset("human_omni_v2")
  assert (h.advantage, h.loss_type, h.beta_schedule) == (
    "dr_grpo", "bnpo", "human_omni_v2"
  )  # fmt: skip
  e = common.grpo_preset("emocaliber")
  assert (e.advantage, e.beta, e.kl_estimator) == (
    "dr_grpo", 0.01, "low_var_kl"
  )  # fmt: skip
  d = common.grpo_preset("dapo")
  assert (d.epsilon_high, d.beta, d.dynamic_sampling) == (0.28, 0.0, True)
  overlong = rewards.configured(d)["overlong"]
  got = overlong(["x"], {"completion_lengths": [20480 - 2048]})
  assert got[0] == pytest.approx(-0.5)
  # Unset, the penalty ends at the generation limit over its last quarter.
  overlong = rewards.configured(f)["overlong"]
  lengths = {"completion_lengths": [1536, 1792, 2048]}
  assert overlong(["x"] * 3, lengths).tolist() == [0.0, -0.5, -1.0]


def test_bad_fields_are_named():
  with pytest.raises(ValueError, match="unknown GRPO preset"):
    common.grpo_preset("ppo")
  c = common.grpo_preset("facial_r1")
  c.reward_weights = [1.0]
  with pytest.raises(ValueError, match="rl.reward_weights"):
    common.validate(c)
  c = common.grpo_preset("facial_r1")
  c.loss_type = "sum"
  with pytest.raises(ValueError, match="rl.loss_type"):
    common.validate(c)
