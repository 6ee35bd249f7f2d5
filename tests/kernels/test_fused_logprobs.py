"""fused_logprobs (Pallas, interpret) and chunked_logprobs (XLA) vs twin.

The twin (materialised logits) is checked against torch's log_softmax;
the GRPO loss through the fused path equals the loss through the twin.
"""

import jax
import jax.extend.core
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

from emojax.kernels import (
  chunked_logprobs,
  fused_logprobs,
  fused_logprobs_ref,
  xla_logprobs,
)
from emojax.rl import loss as rl_loss

# Odd sizes: V = 75 is no multiple of the vocab tile, B*T = 26 of the token
# tile.
B, T, D, V = 2, 13, 24, 75


def _inputs(dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.key(seed), 4)
  h = jax.random.normal(ks[0], (B, T, D), dtype)
  w = (jax.random.normal(ks[1], (D, V)) * 0.5).astype(dtype)
  t = jax.random.randint(ks[2], (B, T), 0, V)
  g = jax.random.normal(ks[3], (3, B, T))
  return h, w, t, g


def _value_and_grads(fn, h, w, t, g, **kw):
  """Outputs and (dh, dw) for cotangents g (one per output)."""

  @jax.jit
  def run(h, w, g):
    out, vjp = jax.vjp(lambda h, w: fn(h, w, t, temperature=0.7, **kw), h, w)
    return out, vjp(tuple(g[: len(out)]))

  return run(h, w, g)


IMPLS = [
  ("pallas", fused_logprobs, dict(interpret=True)),
  ("chunked", chunked_logprobs, dict(block_t=8, block_v=32)),
]


# with_lse: the logsumexp is an output too, and its cotangent enters the
# backward (`rl.sharded_logprobs` combines vocab shards with it).
@pytest.mark.parametrize("with_lse", [False, True])
@pytest.mark.parametrize("name,fn,kw", IMPLS, ids=[i[0] for i in IMPLS])
@pytest.mark.parametrize(
  "dtype,atol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)]
)
def test_matches_twin_values_and_grads(name, fn, kw, dtype, atol, with_lse):
  h, w, t, g = _inputs(dtype)
  outs, grads = _value_and_grads(fn, h, w, t, g, with_lse=with_lse, **kw)
  outs_r, grads_r = _value_and_grads(
    fused_logprobs_ref, h, w, t, g, with_lse=with_lse
  )
  assert len(outs) == len(outs_r) == (3 if with_lse else 2)
  for x, x_r in zip(outs, outs_r, strict=True):
    assert x.shape == (B, T) and x.dtype == jnp.float32
    np.testing.assert_allclose(x, x_r, atol=atol, rtol=atol)
  for x, x_r in zip(grads, grads_r, strict=True):
    assert x.dtype == dtype
    scale = max(float(jnp.abs(x_r.astype(jnp.float32)).max()), 1.0)
    err = float(jnp.abs(x.astype(jnp.float32) - x_r.astype(jnp.float32)).max())
    assert err <= 2 * atol * scale, (name, err)


def test_twin_matches_torch():
  h, w, t, _ = _inputs()
  logp, ent, lse = fused_logprobs_ref(h, w, t, temperature=0.7, with_lse=True)
  z = torch.tensor(np.asarray(jnp.einsum("btd,dv->btv", h, w))) / 0.7
  lp = torch.log_softmax(z.double(), -1)
  want_logp = lp.gather(-1, torch.tensor(np.asarray(t))[..., None])[..., 0]
  want_ent = -(lp.exp() * lp).sum(-1)
  np.testing.assert_allclose(logp, want_logp.numpy(), atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(ent, want_ent.numpy(), atol=1e-5, rtol=1e-5)
  want_lse = torch.logsumexp(z.double(), -1).numpy()
  np.testing.assert_allclose(lse, want_lse, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,fn,kw", IMPLS, ids=[i[0] for i in IMPLS])
def test_grpo_loss_with_fused_logprobs_equals_materialised(name, fn, kw):
  h, w, t, _ = _inputs()
  rng = np.random.default_rng(0)
  adv = jnp.asarray(rng.normal(size=B), jnp.float32)
  mask = jnp.asarray(rng.random((B, T)) > 0.2, jnp.float32)
  old = jnp.asarray(rng.normal(size=(B, T)) * 0.1 - 4.0, jnp.float32)
  cfg = ml_collections.ConfigDict(
    dict(loss_type="dapo", beta=0.0, epsilon=0.2, entropy_coef=0.01)
  )

  def loss(fn, **kw):
    def f(h, w):
      logp, ent = fn(h, w, t, temperature=0.7, **kw)
      return rl_loss.grpo_loss(logp, old, None, adv, mask, cfg, entropy_BT=ent)[
        0
      ]

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

  got, got_g = loss(fn, **kw)(h, w)
  want, want_g = loss(fused_logprobs_ref)(h, w)
  np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-5)
  for x, y in zip(got_g, want_g, strict=True):
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-5)


def _xla_scans(jaxpr):
  """Every lax.scan in jaxpr, nested ones included, but not the Pallas
  kernel's own loops (in interpret mode scans too)."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "scan":
      yield eqn
    if eqn.primitive.name != "pallas_call":
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from _xla_scans(sub)


def test_fused_backward_runs_in_xla_sized_tiles():
  # The Pallas kernel's tiles (16 x 32 here, 64 x 128 on a GPU) are far too
  # small for XLA's loops: the backward must not inherit them.
  N, D, V = 4096, 8, 16384
  spec = (
    jax.ShapeDtypeStruct((1, N, D), jnp.float32),
    jax.ShapeDtypeStruct((D, V), jnp.float32),
    jax.ShapeDtypeStruct((1, N), jnp.int32),
  )
  loss = lambda h, w, t: fused_logprobs(h, w, t, interpret=True)[0].sum()
  jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(*spec).jaxpr
  want = {N // xla_logprobs.BLOCK_T, V // xla_logprobs.BLOCK_V}
  got = {e.params["length"] for e in _xla_scans(jaxpr)}
  assert got == want


def test_fused_backward_pads_rows_to_its_tile(monkeypatch):
  # 26 rows (32 in the kernel's tiles of 16) in backward tiles of 12 and 32
  # columns: rows padded to 36 with zero cotangents, V = 75 in slid tiles.
  monkeypatch.setattr(xla_logprobs, "BLOCK_T", 12)
  monkeypatch.setattr(xla_logprobs, "BLOCK_V", 32)
  h, w, t, g = _inputs()
  kw = dict(with_lse=True)
  _, grads = _value_and_grads(fused_logprobs, h, w, t, g, interpret=True, **kw)
  _, grads_r = _value_and_grads(fused_logprobs_ref, h, w, t, g, **kw)
  for x, x_r in zip(grads, grads_r, strict=True):
    np.testing.assert_allclose(x, x_r, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize(
  "dtype,atol", [(jnp.float32, 2e-5), (jnp.bfloat16, 2e-2)], ids=["f32", "bf16"]
)
@pytest.mark.parametrize(
  "V,loop", [(75, "_vocab_outer"), (11, "_rows_outer")], ids=["V>N", "V<N"]
)
def test_chunked_backward_accumulates_the_smaller_in_fp32(
  V, loop, dtype, atol, monkeypatch
):
  # dh [N, D] in fp32 when the vocab outnumbers the 26 rows, dw [D, V] when
  # the rows do (a device's vocab shard); 4-column tiles slide at V = 11.
  ran = []
  impl = getattr(xla_logprobs, loop)
  monkeypatch.setattr(
    xla_logprobs, loop, lambda *a: ran.append(loop) or impl(*a)
  )
  ks = jax.random.split(jax.random.key(3), 4)
  h = jax.random.normal(ks[0], (B, T, D), dtype)
  w = (jax.random.normal(ks[1], (D, V)) * 0.5).astype(dtype)
  t = jax.random.randint(ks[2], (B, T), 0, V)
  g = jax.random.normal(ks[3], (3, B, T))
  kw = dict(block_t=8, block_v=4)
  _, grads = _value_and_grads(chunked_logprobs, h, w, t, g, with_lse=True, **kw)
  _, grads_r = _value_and_grads(fused_logprobs_ref, h, w, t, g, with_lse=True)
  assert ran == [loop]
  for x, x_r in zip(grads, grads_r, strict=True):
    assert x.dtype == dtype
    x, x_r = x.astype(jnp.float32), x_r.astype(jnp.float32)
    scale = max(float(jnp.abs(x_r).max()), 1.0)
    assert float(jnp.abs(x - x_r).max()) <= 2 * atol * scale


def test_bad_shapes_are_named():
  h, w, t, _ = _inputs()
  with pytest.raises(ValueError, match="transposed"):
    chunked_logprobs(h, w.T, t)
  with pytest.raises(ValueError, match="targets must be"):
    fused_logprobs(h, w, t[:, :3], interpret=True)


@pytest.mark.gpu
def test_on_gpu_matches_twin():
  ks = jax.random.split(jax.random.key(1), 4)
  h = jax.random.normal(ks[0], (3, 333, 512), jnp.bfloat16)
  w = (jax.random.normal(ks[1], (512, 50000)) * 0.05).astype(jnp.bfloat16)
  t = jax.random.randint(ks[2], (3, 333), 0, 50000)
  g = jax.random.normal(ks[3], (3, 3, 333))

  def run(fn):
    @jax.jit
    def f(h, w, g):
      out, vjp = jax.vjp(lambda h, w: fn(h, w, t, with_lse=True), h, w)
      return out, vjp(tuple(g))

    return f(h, w, g)

  (logp, ent, lse), grads = run(fused_logprobs)
  (logp_r, ent_r, lse_r), grads_r = run(fused_logprobs_ref)
  np.testing.assert_allclose(lse, lse_r, atol=5e-2, rtol=2e-2)
  np.testing.assert_allclose(logp, logp_r, atol=5e-2, rtol=2e-2)
  np.testing.assert_allclose(ent, ent_r, atol=5e-2, rtol=2e-2)
  for x, y in zip(grads, grads_r, strict=True):
    x, y = x.astype(jnp.float32), y.astype(jnp.float32)
    assert float(jnp.abs(x - y).max()) <= 3e-2 * float(jnp.abs(y).max())
