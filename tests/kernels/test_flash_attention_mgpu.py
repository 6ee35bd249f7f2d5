"""The Hopper (Mosaic GPU) flash attention, checked on a CPU machine.

- Lowering: value and gradient lower through Pallas's Mosaic GPU lowering
  for CUDA, which checks wgmma layouts and the 227 KiB shared-memory
  budget of an H100/H200 (not ptxas, not speed: only a device can).
- Simulation: the kernels run in Pallas's Mosaic GPU interpreter (three
  warpgroups a CTA as threads, mbarriers, TMA copies, shared memory; it
  fails on a barrier phase a waiting thread skipped) and equal the jnp
  twin, values and gradients.
- Dispatch: which inputs and settings pick these kernels over Triton.
"""

import devices
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax import kernels
from emojax.kernels import backend, flash_attention_mgpu

SDS = jax.ShapeDtypeStruct
BF16 = jnp.bfloat16


def _loss(causal, use_seg):
  def loss(q, k, v, seg):
    o = kernels.flash_attention(
      q, k, v, causal=causal, segment_ids=seg if use_seg else None
    )
    return jnp.sum(o.astype(jnp.float32))

  return loss


def test_prefix_value_and_gradient_lower_for_hopper():
  """GRPO's completions (512 queries) after their shared prompt (1024)."""

  def loss(q, k, v, q_seg, kv_seg):
    o = kernels.flash_attention(
      q, k, v, segment_ids=q_seg, kv_segment_ids=kv_seg
    )
    return jnp.sum(o.astype(jnp.float32))

  B, T, S, H, K, E = 16, 512, 1536, 28, 4, 128
  specs = (
    SDS((B, T, H, E), BF16),
    SDS((B, S, K, E), BF16),
    SDS((B, S, K, E), BF16),
    SDS((B, T), jnp.int32),
    SDS((B, S), jnp.int32),
  )
  text = _lowered(jax.grad(loss, argnums=(0, 1, 2)), *specs)
  assert text.count("@mosaic_gpu_v2(") == 3


def _lowered(fn, *specs, hopper=True):
  with backend.target("gpu", hopper=hopper):
    traced = jax.jit(lambda *a: fn(*a)).trace(*specs)
    return traced.lower(lowering_platforms=("cuda",)).as_text()


@pytest.mark.parametrize(
  "B,T,H,K,E,causal,use_seg",
  [
    (4, 4096, 32, 32, 128, True, False),  # the shape
    (4, 4096, 32, 8, 128, True, True),  # GQA 4, packed
    (2, 1000, 28, 4, 128, True, True),  # Qwen2.5-7B heads, ragged length
    (2, 512, 8, 2, 64, False, True),
    (1, 384, 4, 4, 64, False, False),
  ],
)
def test_value_and_gradient_lower_for_hopper(B, T, H, K, E, causal, use_seg):
  specs = (
    SDS((B, T, H, E), BF16),
    SDS((B, T, K, E), BF16),
    SDS((B, T, K, E), BF16),
    SDS((B, T), jnp.int32),
  )
  grad = jax.grad(_loss(causal, use_seg), argnums=(0, 1, 2))
  text = _lowered(grad, *specs)
  # Forward, dq and dk/dv kernels; no Triton kernel.
  assert text.count("@mosaic_gpu_v2(") == 3
  assert "xla.gpu.triton" not in text


def test_triton_runs_where_hopper_kernels_do_not_apply():
  # fp32 (wgmma takes 16-bit operands here) and E = 256 (over the shared
  # memory budget) fall back to the Triton kernels.
  for dtype, E in ((jnp.float32, 128), (BF16, 256)):
    specs = (
      SDS((1, 256, 4, E), dtype),
      SDS((1, 256, 2, E), dtype),
      SDS((1, 256, 2, E), dtype),
      SDS((1, 256), jnp.int32),
    )
    text = _lowered(_loss(True, False), *specs)
    assert "@mosaic_gpu_v2(" not in text and "xla.gpu.triton" in text
  assert not flash_attention_mgpu.supports(BF16, 256)
  assert flash_attention_mgpu.supports(jnp.float16, 64)


def test_gpu_kernel_choice_from_the_environment(monkeypatch):
  monkeypatch.setenv(backend.GPU_KERNELS_ENV, "triton")
  assert not backend.hopper()
  monkeypatch.setenv(backend.GPU_KERNELS_ENV, "mosaic")
  assert backend.hopper()
  monkeypatch.setenv(backend.GPU_KERNELS_ENV, "cutlass")
  with pytest.raises(ValueError, match="'auto', 'mosaic' or 'triton'"):
    backend.hopper()
  monkeypatch.delenv(backend.GPU_KERNELS_ENV)
  assert not backend.hopper()  # auto on this CPU: no compute capability


def _segments(T):
  """Left padding, two packed sequences, right padding. The second starts
  past the first 128 keys, so its rows see a wholly masked kv block before
  any key they attend to (what left-padded prompts do)."""
  a, b, c = T // 12, T * 9 // 16, T * 9 // 10
  seg = np.r_[np.zeros(a), np.ones(b - a), np.full(c - b, 2), np.zeros(T - c)]
  return jnp.asarray(seg[None], jnp.int32)


@pytest.mark.slow  # ~30-60 s each: the interpreter runs every thread
@pytest.mark.timeout(900)  # a barrier deadlock must fail, not hang CI
@pytest.mark.parametrize(
  "T,S,H,K,E,causal,use_seg",
  [
    # GQA 2, causal, packed: masked, unmasked, drained and skipped blocks,
    # segments on every path, two query tiles and four kv blocks.
    # (One kv head: the interpreter's time goes with the heads.)
    (256, 256, 2, 1, 64, True, True),
    # E = 128 with one head on each side, full attention on a ragged length
    # (padded keys masked).
    (200, 200, 1, 1, 128, False, False),
    # Completions after their shared prompt: 128 queries at the end of
    # 384 keys (query 0 at key 256), ids the keys' last 128.
    (128, 384, 2, 1, 64, True, True),
  ],
)
def test_simulated_kernels_match_twin(T, S, H, K, E, causal, use_seg):
  ks = jax.random.split(jax.random.key(0), 4)
  q = jax.random.normal(ks[0], (1, T, H, E), BF16)
  k = jax.random.normal(ks[1], (1, S, K, E), BF16)
  v = jax.random.normal(ks[2], (1, S, K, E), BF16)
  do = jax.random.normal(ks[3], (1, T, H, E), BF16)
  kv_seg = _segments(S) if use_seg else None
  seg = kv_seg[:, S - T :] if use_seg else None
  kw = dict(causal=causal, segment_ids=seg)
  if S != T:
    kw["kv_segment_ids"] = kv_seg

  def value_and_grads(fn):
    def run(q, k, v):
      o, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, **kw), q, k, v)
      return o, vjp(do.astype(o.dtype))

    return run

  with backend.target("gpu", simulate=True, hopper=True):
    got = jax.jit(value_and_grads(kernels.flash_attention))(q, k, v)
  # The twin in fp32 on the same bf16 inputs: the kernels' error is their
  # bf16 probabilities and outputs (relative 2^-8 a rounding).
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  want = jax.jit(value_and_grads(kernels.flash_attention_ref))(*f32)
  got, want = jax.tree.leaves(got), jax.tree.leaves(want)
  for name, g, w in zip(("o", "dq", "dk", "dv"), got, want, strict=True):
    assert g.dtype == BF16, name
    g, w = np.asarray(g, np.float32), np.asarray(w)
    err, scale = np.abs(g - w).max(), np.abs(w).max()
    assert err <= 1.5e-2 * scale, (name, err, scale)
  if use_seg:  # padding rows attend to nothing
    np.testing.assert_array_equal(np.asarray(got[0])[0, seg[0] == 0], 0.0)


@pytest.mark.timeout(600)
def test_simulated_forward_drains_blocks_one_warpgroup_skips():
  # kv blocks of 64 under a 128-row tile: the first warpgroup's rows see
  # one block fewer than the second's, so it drains that block's barrier
  # phases and ping-pong turns without computing.
  blocks = flash_attention_mgpu.Blocks(fwd_kv=64)
  ks = jax.random.split(jax.random.key(1), 3)
  q = jax.random.normal(ks[0], (1, 256, 2, 64), BF16)
  k = jax.random.normal(ks[1], (1, 256, 1, 64), BF16)
  v = jax.random.normal(ks[2], (1, 256, 1, 64), BF16)
  o, lse = flash_attention_mgpu.forward(
    q, k, v, None, None, causal=True, sim=True, blocks=blocks
  )
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  want = kernels.flash_attention_ref(*f32, causal=True)
  np.testing.assert_allclose(
    np.asarray(o, np.float32), want, atol=2e-2, rtol=2e-2
  )
  s = jnp.einsum("bthe,bske->bhts", *f32[:2]) / 8.0
  s = jnp.where(jnp.tril(jnp.ones((256, 256), bool)), s, -jnp.inf)
  want_lse = jax.nn.logsumexp(s.repeat(1, axis=1), axis=-1)
  np.testing.assert_allclose(lse, want_lse, atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.timeout(120)
@pytest.mark.parametrize("K,E", [(8, 128), (32, 64)])
def test_on_hopper_matches_twin(K, E):
  # The kernels run under target(hopper=True) whatever the environment
  # says; only a pre-Hopper GPU (no wgmma, no TMA) cannot run them.
  devices.require(
    backend.hopper_device(),
    "hopper",
    "needs a Hopper GPU (H100/H200): wgmma and TMA",
  )
  ks = jax.random.split(jax.random.key(2), 4)
  B, T, H = 2, 1000, 32
  q = jax.random.normal(ks[0], (B, T, H, E), BF16)
  k = jax.random.normal(ks[1], (B, T, K, E), BF16)
  v = jax.random.normal(ks[2], (B, T, K, E), BF16)
  do = jax.random.normal(ks[3], (B, T, H, E), BF16)
  seg = jnp.concatenate([_segments(T), jnp.ones((1, T), jnp.int32)])

  def value_and_grads(fn):
    def run(q, k, v):
      o, vjp = jax.vjp(
        lambda q, k, v: fn(q, k, v, causal=True, segment_ids=seg), q, k, v
      )
      return o, vjp(do.astype(o.dtype))

    return jax.jit(run)

  with backend.target("gpu", hopper=True):
    got = value_and_grads(kernels.flash_attention)(q, k, v)
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  want = value_and_grads(kernels.flash_attention_ref)(*f32)
  for name, g, w in zip(
    ("o", "dq", "dk", "dv"),
    jax.tree.leaves(got),
    jax.tree.leaves(want),
    strict=True,
  ):
    g, w = np.asarray(g, np.float32), np.asarray(w)
    err, scale = np.abs(g - w).max(), max(np.abs(w).max(), 1.0)
    assert err <= 3e-2 * scale, (name, err, scale)
