"""Rollout metrics and AU-rarity weights against plain numpy."""

import jax.numpy as jnp
import numpy as np
import pytest

from emojax.rl import metrics, weights


def test_reward_metrics():
  rng = np.random.default_rng(0)
  r = rng.random((3, 4, 2)).astype(np.float32)
  r[1] = 0.25  # A zero-variance group.
  got = metrics.reward_metrics(jnp.asarray(r), ["emotion", "format"])
  flat = r.reshape(-1, 2)
  np.testing.assert_allclose(got["rewards/format/mean"], flat[:, 1].mean())
  np.testing.assert_allclose(
    got["rewards/emotion/std"], flat[:, 0].std(ddof=1), rtol=1e-5
  )
  np.testing.assert_allclose(got["frac_reward_zero_std"], 1 / 3)
  with pytest.raises(ValueError, match="names"):
    metrics.reward_metrics(jnp.asarray(r), ["emotion"])


def test_completion_metrics():
  lengths = np.array([5, 10, 64, 64])
  truncated = np.array([False, False, True, True])
  got = metrics.completion_metrics(jnp.asarray(lengths), jnp.asarray(truncated))
  assert got["completions/clipped_ratio"] == 0.5
  assert got["completions/mean_length"] == lengths.mean()
  assert got["completions/mean_terminated_length"] == 7.5
  assert got["completions/max_terminated_length"] == 10
  none = metrics.completion_metrics(jnp.asarray(lengths), jnp.ones(4, bool))
  assert none["completions/min_terminated_length"] == 0.0


def test_au_rarity_weights_transcribe_facial_r1():
  aus = [["AU6", "AU12"], ["AU06", "AU12"], ["AU4"], [], ["AU4", "AU12"]]
  # freq over all AU occurrences: AU6 2/7, AU12 3/7, AU4 2/7.
  inv = {a: 1 / (f / 7 + 1e-6) for a, f in [("6", 2), ("12", 3), ("4", 2)]}
  w = {a: v / sum(inv.values()) for a, v in inv.items()}
  s = np.array([w["6"] + w["12"], w["6"] + w["12"], w["4"], w["4"] + w["12"]])
  scaled = 10 * (s - s.min()) / (s.max() - s.min())
  want = np.array([scaled[0], scaled[1], scaled[2], 1.0, scaled[3]])
  np.testing.assert_allclose(weights.au_rarity_weights(aus), want, rtol=1e-6)
  np.testing.assert_array_equal(weights.au_rarity_weights([["AU1"]] * 2), 10)
