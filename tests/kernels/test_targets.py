"""The GPU and TPU code paths of every kernel, checked on a CPU machine.

Two checks that need no device:
- Cross-lowering: each kernel's value and gradient lowers through Pallas's
  Triton lowering (`lowering_platforms=('cuda',)`) and Mosaic's
  (`('tpu',)`, for TPU v5e/v5p/v6e chips given by an abstract mesh). That
  is where block-shape rules and unsupported ops fail. It does not run
  Triton's or Mosaic's own compilers (ptxas, the TPU backend): only a
  device can.
- Simulation: the GPU and TPU code paths (their block sizes, layouts and
  padding) run in Pallas's interpreters and equal the jnp twins, values
  and gradients; TPU kernels in the TPU interpreter, which poisons
  uninitialised memory with NaN and checks reads are in bounds.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax import kernels
from emojax.kernels import backend

SDS = jax.ShapeDtypeStruct
BF16 = jnp.bfloat16
TPU_CHIPS = ["TPU v5 lite", "TPU v5p", "TPU v6 lite"]


def _lower(plat, fn, *specs, chip="TPU v5p"):
  """StableHLO text of fn traced for `plat` ('gpu': Triton kernels,
  'hopper': the Mosaic GPU ones where they exist, 'tpu'); kernels are
  custom calls."""
  lowering = {"gpu": "cuda", "hopper": "cuda", "tpu": "tpu"}[plat]
  device = jax.sharding.AbstractDevice(
    device_kind=chip, num_cores=1, platform="tpu"
  )
  mesh = jax.sharding.AbstractMesh((1,), ("x",), abstract_device=device)
  target = backend.target(
    "tpu" if plat == "tpu" else "gpu", hopper=plat == "hopper"
  )
  with target, jax.sharding.use_abstract_mesh(mesh):
    # A fresh function: jit caches traces by function, not by target.
    traced = jax.jit(lambda *a: fn(*a)).trace(*specs)
    return traced.lower(lowering_platforms=(lowering,)).as_text()


def _kernel_calls(plat, text):
  name = {
    "gpu": "@__gpu$xla.gpu.triton",
    "hopper": "@mosaic_gpu_v2(",
    "tpu": "@tpu_custom_call",
  }[plat]
  return text.count(name)


def _flash_loss(q, k, v, seg):
  o = kernels.flash_attention(q, k, v, causal=True, segment_ids=seg)
  return jnp.sum(o.astype(jnp.float32))


FLASH_SHAPES = [
  # (B, T, H, K, E, dtype): MHA on block multiples, GQA 4 on a ragged
  # length with E 64, MQA fp32 on an odd length.
  (2, 256, 4, 4, 128, BF16),
  (2, 200, 8, 2, 64, BF16),
  (1, 333, 4, 1, 128, jnp.float32),
]


@pytest.mark.parametrize("plat", ["gpu", "tpu"])
@pytest.mark.parametrize("B,T,H,K,E,dtype", FLASH_SHAPES)
def test_flash_attention_lowers(plat, B, T, H, K, E, dtype):
  q = SDS((B, T, H, E), dtype)
  kv = SDS((B, T, K, E), dtype)
  seg = SDS((B, T), jnp.int32)
  grad = jax.grad(_flash_loss, argnums=(0, 1, 2))
  # Forward, dq and dk/dv kernels.
  assert _kernel_calls(plat, _lower(plat, grad, q, kv, kv, seg)) == 3
  fwd = lambda q, k, v: kernels.flash_attention(q, k, v, causal=True)
  assert _kernel_calls(plat, _lower(plat, fwd, q, kv, kv)) == 1


@pytest.mark.parametrize("chip", TPU_CHIPS)
def test_flash_attention_lowers_for_each_tpu_chip(chip):
  q, kv = SDS((1, 256, 8, 128), BF16), SDS((1, 256, 2, 128), BF16)
  grad = jax.grad(_flash_loss, argnums=(0, 1, 2))
  text = _lower("tpu", grad, q, kv, kv, SDS((1, 256), jnp.int32), chip=chip)
  assert _kernel_calls("tpu", text) == 3


@pytest.mark.parametrize("plat", ["gpu", "tpu"])
@pytest.mark.parametrize(
  # Qwen2.5-7B's heads at rollout sizes; a short cache of odd length; a
  # long one that is no multiple of the TPU block (512).
  "B,H,K,E,S",
  [(8, 28, 4, 128, 1024), (4, 8, 2, 64, 300), (2, 28, 4, 128, 1300)],
)
def test_decode_attention_lowers(plat, B, H, K, E, S):
  fn = lambda *a: kernels.decode_attention(*a)
  specs = (
    SDS((B, H, E), BF16),
    SDS((B, K, E, S), BF16),
    SDS((B, K, S, E), BF16),
    SDS((B,), jnp.int32),
  )
  assert _kernel_calls(plat, _lower(plat, fn, *specs)) == 1


@pytest.mark.parametrize("plat", ["gpu", "tpu"])
@pytest.mark.parametrize("mode", kernels.ADVANTAGE_MODES)
def test_group_advantages_lower(plat, mode):
  kw = dict(mode=mode, ddof=0, reward_clip=2.5)
  fn = lambda r, w: kernels.group_advantages(r, w, **kw)
  text = _lower(plat, fn, SDS((3, 5, 2), jnp.float32), SDS((2,), jnp.float32))
  assert _kernel_calls(plat, text) == 1


def test_fused_logprobs_lowers_at_the_issue_shape():
  def loss(h, w, t):
    logp, ent = kernels.fused_logprobs(h, w, t)
    return jnp.sum(logp) + 0.01 * jnp.sum(ent)

  specs = (
    SDS((1, 512, 3584), BF16),
    SDS((3584, 152064), BF16),
    SDS((1, 512), jnp.int32),
  )
  grad = jax.value_and_grad(loss, argnums=(0, 1))
  # The Pallas forward; the backward is XLA (chunked recompute).
  assert _kernel_calls("gpu", _lower("gpu", grad, *specs)) == 1
  for chip in TPU_CHIPS:
    assert _kernel_calls("tpu", _lower("tpu", grad, *specs, chip=chip)) == 1


# --- simulated GPU and TPU code paths against the twins --------------------


def _simulated(plat, fn, *args):
  with backend.target(plat, simulate=True):
    return jax.jit(lambda *a: fn(*a))(*args)


def _flash_case(T, S, E, causal, masks):
  """Inputs and keyword arguments of a flash-attention check. masks:
  None; 'packed' (two packed sequences then padding: every mask path);
  'prefix' (T queries at the end of S keys, as completions after their
  shared prompt: left-padded prompt, ragged completion ends)."""
  B, H, K = 1, 4, 2
  ks = jax.random.split(jax.random.key(T + S), 4)
  q = jax.random.normal(ks[0], (B, T, H, E))
  k = jax.random.normal(ks[1], (B, S, K, E))
  v = jax.random.normal(ks[2], (B, S, K, E))
  do = jax.random.normal(ks[3], (B, T, H, E))
  kw = dict(causal=causal)
  if masks == "packed":
    seg = np.r_[np.ones(120), np.full(60, 2), np.zeros(T - 180)][None]
    kw["segment_ids"] = jnp.asarray(seg, jnp.int32)
  if masks == "prefix":
    q_seg = np.r_[np.ones(T - 10), np.zeros(10)][None]
    kv_seg = np.r_[np.zeros(20), np.ones(S - 30), np.zeros(10)][None]
    kw["segment_ids"] = jnp.asarray(q_seg, jnp.int32)
    kw["kv_segment_ids"] = jnp.asarray(kv_seg, jnp.int32)
  return (q, k, v, do), kw


@pytest.mark.parametrize("plat", ["gpu", "tpu"])
@pytest.mark.parametrize(
  "T,S,E,causal,masks",
  [
    # Padded to 2-3 blocks of 128: causal skips, several kv and q blocks.
    (200, 200, 64, True, "packed"),
    (300, 300, 128, False, None),
    # 70 queries at the end of 300 keys: query 0 at key 230.
    (70, 300, 64, True, "prefix"),
  ],
  ids=["causal-packed", "full-ragged", "prefix"],
)
def test_flash_attention_simulated_matches_twin(plat, T, S, E, causal, masks):
  (q, k, v, do), kw = _flash_case(T, S, E, causal, masks)

  def value_and_grads(fn):
    def run(q, k, v):
      o, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, **kw), q, k, v)
      return o, vjp(do)

    return run

  got = _simulated(plat, value_and_grads(kernels.flash_attention), q, k, v)
  want = jax.jit(value_and_grads(kernels.flash_attention_ref))(q, k, v)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize(
  "plat,S", [("gpu", 100), ("tpu", 100), ("tpu", 1300)], ids=str
)
def test_decode_attention_simulated_matches_twin(plat, S):
  # G = 3 query heads per kv head: both paths pad them to a tile of rows.
  # On TPU, S = 1300 is three 512-slot blocks, the last one partial: rows
  # start and end in different blocks, inside one, and hold nothing.
  B, H, K, E = 4, 6, 2, 64
  ks = jax.random.split(jax.random.key(1), 3)
  q = jax.random.normal(ks[0], (B, H, E))
  k = jax.random.normal(ks[1], (B, K, E, S))
  v = jax.random.normal(ks[2], (B, K, S, E))
  ends = jnp.array([S, 7, 0, S - 3])
  starts = jnp.array([5, 0, 0, S - 40])
  fn = lambda q, k, v: kernels.decode_attention(q, k, v, ends, starts_B=starts)
  got = _simulated(plat, fn, q, k, v)
  want = kernels.decode_attention_ref(q, k, v, ends, starts_B=starts)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(got[2], 0.0)


@pytest.mark.parametrize("plat", ["gpu", "tpu"])
@pytest.mark.parametrize("mode", kernels.ADVANTAGE_MODES)
def test_group_advantages_simulated_matches_twin(plat, mode):
  # P = 3, G = 5: not powers of two, so the GPU path pads with NaN, which
  # must count as no score, like the unscored parts and row here.
  r = jax.random.normal(jax.random.key(2), (3, 5, 2))
  r = r.at[0, 1, 0].set(jnp.nan).at[2, 3].set(jnp.nan)
  w = jnp.array([1.0, 0.5])
  kw = dict(mode=mode, reward_clip=1.5)
  fn = lambda r, w: kernels.group_advantages(r, w, **kw)
  got = _simulated(plat, fn, r, w)
  want = kernels.group_advantages_ref(r, w, **kw)
  assert np.isfinite(got).all() and (got[2, 3] == 0.0)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("with_lse", [False, True])
@pytest.mark.parametrize("plat", ["gpu", "tpu"])
def test_fused_logprobs_simulated_matches_twin(plat, with_lse):
  # N = 100 and V = 300 are no multiples of the GPU blocks (64 tokens, 128
  # vocab, 64 of D) or TPU's (104 tokens, 256 vocab: the second tile runs
  # past V, into memory the TPU interpreter fills with NaN).
  B, T, D, V = 2, 50, 128, 300
  ks = jax.random.split(jax.random.key(3), 4)
  h = jax.random.normal(ks[0], (B, T, D))
  w = jax.random.normal(ks[1], (D, V)) * D**-0.5
  t = jax.random.randint(ks[2], (B, T), 0, V)
  g = jax.random.normal(ks[3], (3, B, T))
  kw = dict(temperature=0.7, with_lse=with_lse)

  def value_and_grads(fn):
    def run(h, w):
      out, vjp = jax.vjp(lambda h, w: fn(h, w, t, **kw), h, w)
      return out, vjp(tuple(g[: len(out)]))

    return run

  got = _simulated(plat, value_and_grads(kernels.fused_logprobs), h, w)
  want = jax.jit(value_and_grads(kernels.fused_logprobs_ref))(h, w)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


def test_target_rejects_unknown_platform():
  with pytest.raises(ValueError, match="want 'gpu' or 'tpu'"):
    with backend.target("cuda"):
      pass


@pytest.mark.parametrize("plat", ["gpu", "hopper", "tpu"])
def test_qwen2_5_7b_gradient_with_pallas_attention_lowers(plat):
  """The real model's shapes (28 query heads over 4 kv heads: groups of 7,
  E = 128, a 1000-token row) through the model's own attention dispatch."""
  from emojax.model import config, decoder, model, params

  cfg = config.qwen2_5_7b().replace(
    attention="pallas", num_layers=2, dtype="bfloat16", remat=True
  )
  batch = {
    "input_ids": SDS((1, 1000), jnp.int32),
    "attention_mask": SDS((1, 1000), jnp.int32),
  }

  def loss(p, batch):
    return jnp.mean(model.forward_hidden(p, cfg, batch).astype(jnp.float32))

  abstract = params.abstract(decoder.specs(cfg))
  text = _lower(plat, jax.grad(loss), abstract, batch)
  # One scanned layer body: the forward kernel, again under remat, then
  # the dq and dk/dv kernels.
  assert _kernel_calls(plat, text) == 4
