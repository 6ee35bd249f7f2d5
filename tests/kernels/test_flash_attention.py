"""flash_attention (Pallas, interpret mode on CPU) against its jnp twin.

The twin itself is checked against jax.nn.dot_product_attention (XLA).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.kernels import backend, flash_attention, flash_attention_ref


def _inputs(B, T, H, K, E, dtype, seed=0):
  ks = jax.random.split(jax.random.key(seed), 4)
  q = jax.random.normal(ks[0], (B, T, H, E), dtype)
  k = jax.random.normal(ks[1], (B, T, K, E), dtype)
  v = jax.random.normal(ks[2], (B, T, K, E), dtype)
  do = jax.random.normal(ks[3], (B, T, H, E), jnp.float32)
  return q, k, v, do


def _segments(B, T):
  """Two packed sequences then padding in row 0; one full row after."""
  a, b = T // 3, T // 3 + T // 4
  row0 = np.r_[np.ones(a), np.full(b - a, 2), np.zeros(T - b)]
  return jnp.asarray(np.stack([row0] + [np.ones(T)] * (B - 1)), jnp.int32)


def _value_and_grads(fn, q, k, v, do, **kw):
  @jax.jit
  def run(q, k, v, do):
    o, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, **kw), q, k, v)
    return o, vjp(do.astype(o.dtype))

  return run(q, k, v, do)


CASES = [
  # (B, T, H, K, E, dtype, causal, segments, atol)
  (1, 100, 4, 2, 64, jnp.float32, True, True, 2e-5),
  (1, 70, 2, 2, 128, jnp.float32, True, False, 2e-5),
  (2, 90, 2, 1, 64, jnp.bfloat16, False, True, 6e-2),
]


@pytest.mark.parametrize("B,T,H,K,E,dtype,causal,segments,atol", CASES)
def test_matches_twin_values_and_grads(
  B, T, H, K, E, dtype, causal, segments, atol
):
  q, k, v, do = _inputs(B, T, H, K, E, dtype)
  seg = _segments(B, T) if segments else None
  kw = dict(causal=causal, segment_ids=seg)
  o, grads = _value_and_grads(flash_attention, q, k, v, do, **kw)
  # The twin runs in fp32 on the same (rounded) inputs.
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  o_ref, grads_ref = _value_and_grads(flash_attention_ref, *f32, do, **kw)
  assert o.dtype == dtype and o.shape == q.shape
  np.testing.assert_allclose(o.astype(jnp.float32), o_ref, atol=atol, rtol=atol)
  for name, g, g_ref in zip("qkv", grads, grads_ref, strict=True):
    scale = float(jnp.abs(g_ref).max())
    err = float(jnp.abs(g.astype(jnp.float32) - g_ref).max())
    assert g.dtype == dtype
    assert err <= atol * max(scale, 1.0) * 2, (name, err, scale)


def test_fully_masked_rows_are_zero():
  q, k, v, _ = _inputs(2, 40, 2, 1, 64, jnp.float32)
  seg = _segments(2, 40)
  o = flash_attention(q, k, v, causal=True, segment_ids=seg)
  np.testing.assert_array_equal(o[0, seg[0] == 0], 0.0)
  assert float(jnp.abs(o[0, seg[0] != 0]).min()) > 0


@pytest.mark.parametrize("causal", [True, False])
def test_twin_matches_jax_dot_product_attention(causal):
  q, k, v, _ = _inputs(2, 33, 4, 2, 64, jnp.float32)
  seg = jnp.asarray(np.r_[np.ones(20), np.full(13, 2)][None].repeat(2, 0))
  mask = (seg[:, :, None] == seg[:, None, :])[:, None]
  want = jax.nn.dot_product_attention(
    q, k, v, mask=mask, is_causal=causal, implementation="xla"
  )
  got = flash_attention_ref(q, k, v, causal=causal, segment_ids=seg)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def _prefix_inputs(B=2, T=40, S=100, H=4, K=2, E=64, dtype=jnp.float32):
  """Completions (T queries) after a left-padded prompt: keys [B, S] are
  [prompt | completions], the queries the last T positions; ragged
  completion lengths, and row 1 has a gap of padding inside its prompt."""
  q, _, _, do = _inputs(B, T, H, K, E, dtype)
  _, k, v, _ = _inputs(B, S, H, K, E, dtype, seed=1)
  kv_seg = np.ones((B, S), np.int32)
  kv_seg[0, :10] = 0
  kv_seg[1, 50:55] = 0
  q_seg = np.ones((B, T), np.int32)
  q_seg[0, 30:] = 0
  kv_seg[0, S - T + 30 :] = 0
  return q, k, v, do, jnp.asarray(q_seg), jnp.asarray(kv_seg)


def test_prefix_twin_matches_jax_dot_product_attention():
  q, k, v, _, q_seg, kv_seg = _prefix_inputs()
  T, S = q.shape[1], k.shape[1]
  same = q_seg[:, :, None] == kv_seg[:, None, :]
  causal = jnp.arange(S)[None, :] <= (S - T + jnp.arange(T))[:, None]
  mask = same & (kv_seg != 0)[:, None, :] & causal[None]
  want = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None])
  got = flash_attention_ref(
    q, k, v, causal=True, segment_ids=q_seg, kv_segment_ids=kv_seg
  )
  real = np.asarray(q_seg) != 0
  np.testing.assert_allclose(got[real], want[real], atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(got[~real], 0.0)


def test_prefix_matches_twin_values_and_grads():
  # T and S are no block multiples; query 0 sits at key position 60.
  q, k, v, do, q_seg, kv_seg = _prefix_inputs()
  kw = dict(causal=True, segment_ids=q_seg, kv_segment_ids=kv_seg)
  got = _value_and_grads(flash_attention, q, k, v, do, **kw)
  want = _value_and_grads(flash_attention_ref, q, k, v, do, **kw)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=2e-5)


def test_bad_shapes_say_what_to_fix():
  q, k, v, _ = _inputs(1, 16, 3, 2, 64, jnp.float32)
  with pytest.raises(ValueError, match="multiple of K"):
    flash_attention(q, k, v)
  q, k, v, _ = _inputs(1, 16, 2, 2, 64, jnp.float32)
  with pytest.raises(ValueError, match="needs T <= S"):
    flash_attention(q, k[:, :8], v[:, :8])
  seg = jnp.ones((1, 16), jnp.int32)
  k2, v2 = (jnp.concatenate([x, x], 1) for x in (k, v))
  with pytest.raises(ValueError, match="pass the keys' segment ids"):
    flash_attention(q, k2, v2, segment_ids=seg)
  with pytest.raises(ValueError, match=r"kv_segment_ids must be int \[B, S\]"):
    flash_attention(q, k2, v2, segment_ids=seg, kv_segment_ids=seg)


@pytest.mark.gpu
@pytest.mark.parametrize("K", [32, 8])
@pytest.mark.parametrize("E", [64, 128])
def test_on_gpu_matches_twin(K, E):
  """The Triton kernels (test_flash_attention_mgpu.py has the Hopper ones)."""
  q, k, v, do = _inputs(2, 1000, 32, K, E, jnp.bfloat16)
  seg = _segments(2, 1000)
  kw = dict(causal=True, segment_ids=seg)
  with backend.target("gpu", hopper=False):
    o, grads = _value_and_grads(flash_attention, q, k, v, do, **kw)
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  o_ref, grads_ref = _value_and_grads(flash_attention_ref, *f32, do, **kw)
  np.testing.assert_allclose(o.astype(jnp.float32), o_ref, atol=3e-2, rtol=3e-2)
  for g, g_ref in zip(grads, grads_ref, strict=True):
    scale = max(float(jnp.abs(g_ref).max()), 1.0)
    assert float(jnp.abs(g.astype(jnp.float32) - g_ref).max()) <= 3e-2 * scale
