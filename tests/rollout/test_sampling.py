"""Token choice against transformers' logits warpers and a chi-square test."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import stats
from transformers.generation import logits_process as hf_lp

from emojax.rollout import sampling
from emojax.rollout.sampling import SamplingParams


def _hf_shaped(logits_BV, temperature, top_k, top_p):
  """transformers' warpers in `generate`'s order: temperature, top-k, top-p."""
  scores = torch.tensor(np.array(logits_BV))
  warpers = [hf_lp.TemperatureLogitsWarper(temperature)]
  if top_k:
    warpers.append(hf_lp.TopKLogitsWarper(top_k))
  if top_p < 1:
    warpers.append(hf_lp.TopPLogitsWarper(top_p))
  for w in warpers:
    scores = w(None, scores)
  return scores.numpy()


@pytest.mark.parametrize(
  "temperature, top_k, top_p",
  [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8), (0.9, 12, 0.6), (1.0, 1, 1.0)],
)
def test_shape_logits_matches_transformers(temperature, top_k, top_p):
  logits_BV = 3 * np.random.RandomState(0).randn(6, 40).astype(np.float32)
  sp = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
  got = np.asarray(sampling.shape_logits(jnp.asarray(logits_BV), sp))
  want = _hf_shaped(logits_BV, temperature, top_k, top_p)
  np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
  finite = np.isfinite(want)
  np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6)


def _draws(logits_V, sp, n, seed=0):
  keys_B = jax.random.split(jax.random.key(seed), n)
  logits_BV = jnp.broadcast_to(jnp.asarray(logits_V), (n, len(logits_V)))
  return jax.jit(sampling.sample, static_argnums=2)(keys_B, logits_BV, sp)


def test_temperature_one_matches_softmax_chi_square():
  logits_V = np.random.RandomState(1).randn(8).astype(np.float32)
  n = 20000
  tokens_B, logp_B, shaped_B = _draws(logits_V, SamplingParams(), n)
  counts = np.bincount(np.asarray(tokens_B), minlength=8)
  probs = np.exp(logits_V.astype(np.float64))
  probs /= probs.sum()
  assert stats.chisquare(counts, n * probs).pvalue > 1e-3
  # The test has power: the temperature-1.5 distribution is rejected.
  hot = np.exp(logits_V.astype(np.float64) / 1.5)
  hot /= hot.sum()
  assert stats.chisquare(counts, n * hot).pvalue < 1e-6
  np.testing.assert_allclose(
    np.asarray(logp_B), np.log(probs)[np.asarray(tokens_B)], atol=1e-6
  )
  np.testing.assert_array_equal(np.asarray(shaped_B), np.asarray(logp_B))


def test_shaped_sampling_matches_warped_distribution():
  logits_V = np.random.RandomState(2).randn(10).astype(np.float32)
  sp = SamplingParams(temperature=0.6, top_k=6, top_p=0.9)
  n = 20000
  tokens_B, logp_B, shaped_B = _draws(logits_V, sp, n, seed=3)
  warped = _hf_shaped(logits_V[None], 0.6, 6, 0.9)[0].astype(np.float64)
  probs = np.exp(warped - warped.max())
  probs /= probs.sum()
  counts = np.bincount(np.asarray(tokens_B), minlength=10)
  kept = probs > 0
  assert counts[~kept].sum() == 0  # excluded tokens never emitted
  assert stats.chisquare(counts[kept], n * probs[kept]).pvalue > 1e-3
  tok = np.asarray(tokens_B)
  np.testing.assert_allclose(
    np.asarray(shaped_B), np.log(probs[tok]), atol=1e-5
  )
  raw = logits_V - np.log(np.exp(logits_V).sum())
  np.testing.assert_allclose(np.asarray(logp_B), raw[tok], atol=1e-5)


@pytest.mark.parametrize("top_k, top_p", [(3, 1.0), (0, 0.5), (4, 0.3)])
def test_top_k_top_p_never_emit_excluded_tokens(top_k, top_p):
  rng = np.random.RandomState(4)
  logits_BV = jnp.asarray(2 * rng.randn(512, 50).astype(np.float32))
  sp = SamplingParams(top_k=top_k, top_p=top_p)
  keys_B = jax.random.split(jax.random.key(5), 512)
  tokens_B, _, _ = sampling.sample(keys_B, logits_BV, sp)
  allowed_BV = np.isfinite(_hf_shaped(np.asarray(logits_BV), 1.0, top_k, top_p))
  tok = np.asarray(tokens_B)
  assert allowed_BV[np.arange(512), tok].all()
  # Not trivially a single token: several allowed tokens get drawn per row.
  assert len(np.unique(tok)) > 10


def test_greedy_is_argmax_with_zero_shaped_logprob():
  logits_BV = jnp.asarray(np.random.RandomState(6).randn(5, 30), jnp.float32)
  keys_B = jax.random.split(jax.random.key(0), 5)
  tokens_B, logp_B, shaped_B = sampling.sample(
    keys_B, logits_BV, SamplingParams(greedy=True)
  )
  np.testing.assert_array_equal(tokens_B, np.argmax(logits_BV, axis=-1))
  want = jax.nn.log_softmax(logits_BV)[jnp.arange(5), tokens_B]
  np.testing.assert_allclose(logp_B, want, atol=1e-6)
  np.testing.assert_array_equal(shaped_B, 0)


def test_suppressed_ids_are_never_emitted():
  # The suppressed ids are each row's two most likely tokens; transformers'
  # SuppressTokensLogitsProcessor (-inf on them) is the reference.
  rng = np.random.RandomState(8)
  logits_BV = rng.randn(256, 12).astype(np.float32)
  logits_BV[:, 3] += 6.0
  logits_BV[:, 7] += 5.0
  suppress = (3, 7)
  keys_B = jax.random.split(jax.random.key(2), 256)
  sp = SamplingParams(suppress_ids=suppress)
  tokens_B, logp_B, shaped_B = sampling.sample(
    keys_B, jnp.asarray(logits_BV), sp
  )
  tok = np.asarray(tokens_B)
  assert not np.isin(tok, suppress).any()
  assert len(np.unique(tok)) > 5
  hf = hf_lp.SuppressTokensLogitsProcessor(list(suppress), device="cpu")
  ref_BV = hf(None, torch.tensor(logits_BV)).numpy()
  rows = np.arange(256)
  want_shaped = jax.nn.log_softmax(ref_BV)[rows, tok]
  np.testing.assert_allclose(shaped_B, want_shaped, atol=1e-5)
  # The raw policy logprob stays the model's own (what training re-reads).
  want_raw = jax.nn.log_softmax(logits_BV)[rows, tok]
  np.testing.assert_allclose(logp_B, want_raw, atol=1e-5)
  greedy, _, _ = sampling.sample(
    keys_B,
    jnp.asarray(logits_BV),
    SamplingParams(greedy=True, suppress_ids=suppress),
  )
  np.testing.assert_array_equal(greedy, np.argmax(ref_BV, axis=-1))


def test_first_argmax_is_numpys_argmax_with_ties():
  rng = np.random.RandomState(3)
  # Few distinct values, so most rows tie at their maximum; -inf as the
  # shaping leaves it.
  x_BV = rng.randint(0, 4, (64, 37)).astype(np.float32)
  x_BV[rng.rand(64, 37) < 0.2] = -np.inf
  got = sampling.first_argmax(jnp.asarray(x_BV))
  assert got.dtype == jnp.int32
  np.testing.assert_array_equal(got, np.argmax(x_BV, axis=-1))


def test_draws_are_jax_random_categorical_draws():
  # The faster Gumbel-max must be the same draw as jax's own, key for key.
  logits_BV = jnp.asarray(np.random.RandomState(4).randn(32, 50), jnp.float32)
  keys_B = jax.random.split(jax.random.key(5), 32)
  tokens_B, _, _ = sampling.sample(keys_B, logits_BV, SamplingParams())
  want = jax.vmap(jax.random.categorical)(keys_B, logits_BV)
  np.testing.assert_array_equal(tokens_B, want)


def test_rows_draw_from_their_own_keys():
  logits_BV = jnp.zeros((6, 100), jnp.float32)
  keys_B = jax.random.split(jax.random.key(7), 6)
  tokens_B, _, _ = sampling.sample(keys_B, logits_BV, SamplingParams())
  alone, _, _ = sampling.sample(keys_B[2:3], logits_BV[:1], SamplingParams())
  assert int(alone[0]) == int(tokens_B[2])


@pytest.mark.parametrize(
  "kw, match",
  [
    (dict(temperature=0.0), "greedy=True"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_k=-1), "top_k"),
  ],
)
def test_bad_parameters_fail_with_the_fix(kw, match):
  with pytest.raises(ValueError, match=match):
    SamplingParams(**kw)
