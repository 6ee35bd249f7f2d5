"""group_advantages (Pallas, interpret mode on CPU) against its twins.

Twins: the jnp `group_advantages_ref`, the RL core's
`emojax.rl.advantages.compute` (also with unscored parts, clip and ddof),
and a plain-numpy transcription of PEERS.md 1.1 (TRL) and Tunix's RLOO.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emojax.kernels import (
  ADVANTAGE_MODES,
  group_advantages,
  group_advantages_ref,
)
from emojax.rl import advantages as rl_advantages

W = np.array([1.0, 0.5, 2.0], np.float32)


def _rewards(P=5, G=6, R=3, seed=0):
  rng = np.random.default_rng(seed)
  r = rng.integers(-2, 3, (P, G, R)).astype(np.float32) * 0.5
  r[0, :, :] = 1.0  # a zero-variance group
  return r


def _numpy(r, w, mode, eps=1e-4):
  r = r.astype(np.float64)
  if mode == "gdpo":
    z = (r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + eps)
    s = z @ w
    return (s - s.mean()) / (s.std(ddof=1) + eps)
  t = r @ w
  G = t.shape[1]
  mean = t.mean(1, keepdims=True)
  if mode == "grpo":
    return (t - mean) / (t.std(1, ddof=1, keepdims=True) + eps)
  if mode == "dr_grpo":
    return t - mean
  if mode == "batch":
    return (t - mean) / (t.std(ddof=1) + eps)
  return t - (t.sum(1, keepdims=True) - t) / (G - 1)


@pytest.mark.parametrize("mode", ADVANTAGE_MODES)
def test_kernel_matches_twins(mode):
  r = _rewards()
  got = jax.jit(lambda r: group_advantages(r, jnp.asarray(W), mode=mode))(
    jnp.asarray(r)
  )
  assert got.shape == (5, 6) and got.dtype == jnp.float32
  want = _numpy(r, W, mode)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  ref = group_advantages_ref(jnp.asarray(r), jnp.asarray(W), mode=mode)
  np.testing.assert_allclose(ref, want, atol=1e-5, rtol=1e-5)
  cfg = ml_collections.ConfigDict(
    dict(advantage=mode, reward_weights=tuple(W), eps=1e-4, ddof=1)
  )
  core = rl_advantages.compute(jnp.asarray(r), cfg)
  np.testing.assert_allclose(got, core, atol=1e-5, rtol=1e-5)


def _unscored(P=5, G=6, R=3, seed=1):
  """Rewards where some parts have no score (NaN, TRL's None): scattered
  parts, a row with none (group 1), a group with one scored row (2) and
  one with none (3)."""
  r = _rewards(P, G, R, seed) * 3.0
  rng = np.random.default_rng(seed)
  r[rng.random((P, G, R)) < 0.2] = np.nan
  r[1, 0] = np.nan
  r[2, 1:] = np.nan
  r[2, 0, 0] = 2.0
  r[3] = np.nan
  return r


@pytest.mark.parametrize("mode", ADVANTAGE_MODES)
@pytest.mark.parametrize(
  "ddof,clip", [(1, None), (0, 2.5)], ids=["ddof1", "ddof0-clip"]
)
def test_kernel_matches_rl_core_with_unscored_parts(mode, ddof, clip):
  # The RL core's semantics exactly, so the GRPO step may run either.
  r = jnp.asarray(_unscored())
  kw = dict(mode=mode, eps=1e-4, ddof=ddof, reward_clip=clip)
  got = jax.jit(lambda r: group_advantages(r, jnp.asarray(W), **kw))(r)
  cfg = ml_collections.ConfigDict(
    dict(advantage=mode, reward_weights=tuple(W), eps=1e-4, ddof=ddof)
  )
  cfg.reward_clip = clip
  want = rl_advantages.compute(r, cfg)
  assert np.isfinite(got).all()
  np.testing.assert_array_equal(got[1, 0], 0.0)  # unscored rows get 0
  np.testing.assert_array_equal(got[3], 0.0)
  if mode != "gdpo":  # a lone scored row: no baseline, no signal
    np.testing.assert_array_equal(got[2], 0.0)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  ref = group_advantages_ref(r, jnp.asarray(W), **kw)
  np.testing.assert_allclose(ref, want, atol=1e-5, rtol=1e-5)


def test_bad_mode_and_group_size_are_named():
  r = jnp.asarray(_rewards())
  with pytest.raises(ValueError, match="choose from"):
    group_advantages(r, jnp.asarray(W), mode="ppo")
  with pytest.raises(ValueError, match="G >= 2"):
    group_advantages(r[:, :1], jnp.asarray(W))
  with pytest.raises(ValueError, match="one per reward part"):
    group_advantages(r, jnp.ones(2))


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ADVANTAGE_MODES)
def test_on_gpu_matches_numpy(mode):
  r = _rewards(P=37, G=7, R=3)
  got = group_advantages(jnp.asarray(r), jnp.asarray(W), mode=mode)
  np.testing.assert_allclose(got, _numpy(r, W, mode), atol=1e-4, rtol=1e-4)
  r = jnp.asarray(_unscored(P=37, G=7, R=3))
  kw = dict(mode=mode, ddof=0, reward_clip=2.5)
  got = group_advantages(r, jnp.asarray(W), **kw)
  want = group_advantages_ref(r, jnp.asarray(W), **kw)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
