"""decode_attention (Pallas, interpret mode on CPU) against its jnp twin.

The twin is checked against a per-row numpy loop over the valid slots.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.kernels import decode_attention, decode_attention_ref


def _inputs(B, S, H, K, E, dtype, seed=0):
  ks = jax.random.split(jax.random.key(seed), 3)
  q = jax.random.normal(ks[0], (B, H, E), dtype)
  k = jax.random.normal(ks[1], (B, K, E, S), dtype)  # the rollout cache's
  v = jax.random.normal(ks[2], (B, K, S, E), dtype)  # layouts
  return q, k, v


def _numpy_decode(q, k, v, starts, ends):
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  B, H, E = q.shape
  G = H // k.shape[1]
  out = np.zeros((B, H, E))
  for b in range(B):
    for h in range(H):
      kk, vv = (
        k[b, h // G, :, starts[b] : ends[b]].T,
        v[b, h // G, starts[b] : ends[b]],
      )
      if len(kk):
        s = kk @ q[b, h] / np.sqrt(E)
        p = np.exp(s - s.max())
        out[b, h] = p @ vv / p.sum()
  return out


# Ragged rows: left padding, a full row, a one-slot row, an empty row.
STARTS = np.array([3, 0, 40, 9])
ENDS = np.array([70, 70, 41, 9])


@pytest.mark.parametrize(
  "H,K,E,dtype,atol",
  [(6, 2, 64, jnp.float32, 1e-5), (4, 4, 128, jnp.bfloat16, 3e-2)],
)
def test_matches_twin(H, K, E, dtype, atol):
  # S = 70 is not a multiple of the block (32): exercises the slid tail.
  q, k, v = _inputs(4, 70, H, K, E, dtype)
  args = (q, k, v, jnp.asarray(ENDS))
  kw = dict(starts_B=jnp.asarray(STARTS))
  o = jax.jit(lambda *a: decode_attention(*a, **kw))(*args)
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  o_ref = decode_attention_ref(*f32, jnp.asarray(ENDS), **kw)
  assert o.dtype == dtype and o.shape == q.shape
  np.testing.assert_allclose(o.astype(jnp.float32), o_ref, atol=atol, rtol=atol)
  np.testing.assert_array_equal(o[3], 0.0)


def test_default_start_is_zero():
  q, k, v = _inputs(2, 20, 2, 1, 64, jnp.float32)
  lengths = jnp.array([20, 7])
  o = decode_attention(q, k, v, lengths)
  want = _numpy_decode(q, k, v, [0, 0], [20, 7])
  np.testing.assert_allclose(o, want, atol=1e-5, rtol=1e-5)


def test_twin_matches_numpy_loop():
  q, k, v = _inputs(4, 70, 6, 2, 64, jnp.float32)
  got = decode_attention_ref(
    q, k, v, jnp.asarray(ENDS), starts_B=jnp.asarray(STARTS)
  )
  want = _numpy_decode(q, k, v, STARTS, ENDS)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_bad_lengths_shape_is_named():
  q, k, v = _inputs(2, 20, 2, 1, 64, jnp.float32)
  with pytest.raises(ValueError, match="lengths_B must be int"):
    decode_attention(q, k, v, jnp.array([3]))


@pytest.mark.gpu
@pytest.mark.parametrize("H,K", [(28, 4), (32, 32)])
def test_on_gpu_matches_twin(H, K):
  B, S = 64, 1000
  q, k, v = _inputs(B, S, H, K, 128, jnp.bfloat16)
  rng = np.random.default_rng(0)
  starts = jnp.asarray(rng.integers(0, 300, B))
  ends = jnp.asarray(rng.integers(300, S + 1, B))
  o = jax.jit(decode_attention)(q, k, v, ends, starts_B=starts)
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  o_ref = decode_attention_ref(*f32, ends, starts_B=starts)
  np.testing.assert_allclose(o.astype(jnp.float32), o_ref, atol=3e-2, rtol=3e-2)
