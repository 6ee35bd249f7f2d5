"""Advantages against torch transcriptions of TRL's and Tunix's code."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

from emojax.rl import advantages

P, G, R = 4, 5, 3


def _rewards(seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(-2, 3, (P, G, R)).astype(np.float32) * 0.5


def _cfg(mode, weights=(1.0, 0.5, 2.0)):
  return ml_collections.ConfigDict(
    dict(advantage=mode, reward_weights=weights, eps=1e-4, ddof=1)
  )


def _trl(rewards_per_func, w, mode):
  """TRL _generate_and_score_completions, transcribed (PEERS.md 1.1)."""
  rewards_per_func = torch.tensor(rewards_per_func.reshape(P * G, R))
  reward_weights = torch.tensor(w, dtype=torch.float32)
  if mode == "gdpo":
    grouped = rewards_per_func.view(-1, G, R)
    mean_k = grouped.mean(dim=1, keepdim=True)
    std_k = grouped.std(dim=1, keepdim=True)
    z = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, R)
    adv = (z * reward_weights.unsqueeze(0)).nansum(dim=1)
    return ((adv - adv.mean()) / (adv.std() + 1e-4)).numpy()
  rewards = (rewards_per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
  mean_grouped_rewards = rewards.view(-1, G).mean(dim=1)
  mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(G, dim=0)
  adv = rewards - mean_grouped_rewards
  if mode == "grpo":
    std = rewards.view(-1, G).std(dim=1).repeat_interleave(G, dim=0)
    adv = adv / (std + 1e-4)
  elif mode == "batch":
    adv = adv / (rewards.std() + 1e-4)
  elif mode == "rloo":  # Tunix: r_i - (sum - r_i) / (G - 1).
    total = rewards.view(-1, G).sum(1).repeat_interleave(G, dim=0)
    adv = rewards - (total - rewards) / (G - 1)
  return adv.numpy()


@pytest.mark.parametrize("mode", advantages.MODES)
def test_matches_reference(mode):
  r = _rewards()
  w = (1.0, 0.5, 2.0)
  got = advantages.compute(jnp.asarray(r), _cfg(mode, w))
  assert got.shape == (P, G)
  np.testing.assert_allclose(
    got.reshape(-1), _trl(r, w, mode), rtol=1e-5, atol=1e-5
  )


@pytest.mark.parametrize("mode", ["grpo", "dr_grpo", "batch", "rloo"])
def test_zero_mean_per_group(mode):
  adv = advantages.compute(jnp.asarray(_rewards(1)), _cfg(mode))
  np.testing.assert_allclose(adv.mean(1), 0.0, atol=1e-5)


@pytest.mark.parametrize("mode", advantages.MODES)
def test_identical_rewards_give_zero_advantage(mode):
  r = np.broadcast_to(np.arange(R, dtype=np.float32), (P, G, R))
  adv = advantages.compute(jnp.asarray(r), _cfg(mode))
  np.testing.assert_array_equal(adv, 0.0)


def test_defaults_without_config_are_grpo():
  r = _rewards(2)
  np.testing.assert_allclose(
    advantages.compute(jnp.asarray(r)).reshape(-1),
    _trl(r, (1.0, 1.0, 1.0), "grpo"),
    rtol=1e-5,
    atol=1e-5,
  )


def test_nan_rows_are_left_out_of_the_baseline():
  r = _rewards(3)
  r[0, 1] = np.nan  # Every reward returned None for this row.
  r[1, 2, 0] = np.nan  # One reward returned None: nansum.
  adv = np.asarray(advantages.compute(jnp.asarray(r), _cfg("grpo")))
  assert adv[0, 1] == 0.0
  total = np.nansum(r * np.array([1.0, 0.5, 2.0]), -1)
  keep = np.delete(total[0], 1)
  want = (keep - keep.mean()) / (keep.std(ddof=1) + 1e-4)
  np.testing.assert_allclose(np.delete(adv[0], 1), want, rtol=1e-5)
  assert np.isfinite(adv).all()


@pytest.mark.parametrize("mode", ["grpo", "dr_grpo", "batch", "rloo"])
def test_a_lone_scored_row_gets_no_advantage(mode):
  # Its group has no baseline to compare it with (RLOO: no one to leave
  # out); the other groups keep theirs.
  r = _rewards(5)
  r[1, 1:] = np.nan
  r[1, 0] = 2.0
  adv = np.asarray(advantages.compute(jnp.asarray(r), _cfg(mode)))
  np.testing.assert_array_equal(adv[1], 0.0)
  assert np.abs(adv[[0, 2, 3]]).max() > 0.1


def test_zero_variance_groups_and_stats():
  r = _rewards(4)
  r[2] = 1.0
  zero = advantages.zero_variance_groups(jnp.asarray(r), _cfg("grpo"))
  total = (r * np.array([1.0, 0.5, 2.0])).sum(-1)
  np.testing.assert_array_equal(zero, total.std(1) == 0)
  stats = advantages.group_stats(jnp.asarray(r), _cfg("grpo"))
  np.testing.assert_allclose(stats["frac_reward_zero_std"], zero.mean())
  np.testing.assert_allclose(stats["reward"], total.mean(), rtol=1e-6)
  np.testing.assert_allclose(
    stats["reward_std"], total.std(1, ddof=1).mean(), rtol=1e-6
  )


def test_bad_config():
  r = jnp.asarray(_rewards())
  with pytest.raises(ValueError, match="advantage="):
    advantages.compute(r, _cfg("ppo"))
  with pytest.raises(ValueError, match="reward_weights"):
    advantages.compute(r, _cfg("grpo", (1.0, 1.0)))
  with pytest.raises(ValueError, match=r"\[P, G, R\]"):
    advantages.compute(r[0])


def test_reward_clip_caps_the_sum():
  r = np.full((1, 2, 3), 5.0, np.float32)
  r[0, 1] = -5.0
  cfg = _cfg("dr_grpo", (1.0, 1.0, 1.0))
  cfg.reward_clip = 10.0
  total = advantages.total_reward(jnp.asarray(r), cfg)
  np.testing.assert_array_equal(total, [[10.0, -10.0]])
