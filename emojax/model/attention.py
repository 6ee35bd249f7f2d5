"""Attention with implementation dispatch: `xla`, `cudnn`, `pallas`.

Masking is described, not materialised by the caller: segment ids (0 means
padding or an empty cache slot; tokens attend within equal segments) and
slot indices (causal means key slot <= query slot). This one description
serves training (T == S), prefill and cached decode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from emojax import kernels, sharding


def make_mask(
  q_segment_BT: jax.Array,
  kv_segment_BS: jax.Array,
  q_index_BT: jax.Array,
  kv_index_BS: jax.Array,
  causal: bool,
) -> jax.Array:
  """Boolean mask [B, T, S]: True where the query may attend the key."""
  same = q_segment_BT[:, :, None] == kv_segment_BS[:, None, :]
  mask_BTS = same & (kv_segment_BS != 0)[:, None, :]
  if causal:
    mask_BTS &= kv_index_BS[:, None, :] <= q_index_BT[:, :, None]
  return mask_BTS


def xla_attention(q_BTHE, k_BSKE, v_BSKE, mask_BTS) -> jax.Array:
  """Plain einsum attention, GQA by grouping query heads (no K/V repeat)."""
  B, T, H, E = q_BTHE.shape
  K = k_BSKE.shape[2]
  q_BTKGE = q_BTHE.reshape(B, T, K, H // K, E)
  scale = E**-0.5
  logits_BKGTS = jnp.einsum(
    "btkge,bske->bkgts",
    q_BTKGE * jnp.asarray(scale, q_BTHE.dtype),
    k_BSKE,
    preferred_element_type=jnp.float32,
  )
  big_neg = jnp.finfo(jnp.float32).min
  logits_BKGTS = jnp.where(mask_BTS[:, None, None], logits_BKGTS, big_neg)
  probs_BKGTS = jax.nn.softmax(logits_BKGTS, axis=-1).astype(v_BSKE.dtype)
  o_BTKGE = jnp.einsum("bkgts,bske->btkge", probs_BKGTS, v_BSKE)
  return o_BTKGE.reshape(B, T, H, E)


def cudnn_attention(q_BTHE, k_BSKE, v_BSKE, mask_BTS) -> jax.Array:
  if jax.default_backend() != "gpu":
    raise ValueError(
      "model.attention='cudnn' needs an NVIDIA GPU, but JAX's backend is "
      f"{jax.default_backend()!r}. Use model.attention='xla' (any backend) "
      "or 'pallas'."
    )
  return jax.nn.dot_product_attention(
    q_BTHE,
    k_BSKE,
    v_BSKE,
    mask=mask_BTS[:, None],
    implementation="cudnn",
  )


def attend(
  q_BTHE: jax.Array,
  k_BSKE: jax.Array,
  v_BSKE: jax.Array,
  *,
  q_segment_BT: jax.Array,
  kv_segment_BS: jax.Array,
  q_index_BT: jax.Array,
  kv_index_BS: jax.Array,
  causal: bool = True,
  impl: str = "xla",
) -> jax.Array:
  """Softmax attention with scale 1/sqrt(E); returns `o_BTHE`."""
  mask_BTS = make_mask(
    q_segment_BT, kv_segment_BS, q_index_BT, kv_index_BS, causal
  )
  if impl == "xla":
    out = xla_attention(q_BTHE, k_BSKE, v_BSKE, mask_BTS)
  elif impl == "cudnn":
    out = cudnn_attention(q_BTHE, k_BSKE, v_BSKE, mask_BTS)
  elif impl == "pallas":
    out = pallas_attention(
      q_BTHE, k_BSKE, v_BSKE, q_segment_BT, kv_segment_BS, q_index_BT, causal
    )
    if out is None:
      out = xla_attention(q_BTHE, k_BSKE, v_BSKE, mask_BTS)
  else:
    raise ValueError(
      f"model.attention={impl!r}; choose 'xla', 'cudnn' or 'pallas'."
    )
  return sharding.constrain(out, ("batch", "act_seq", "heads", None))


def pallas_attention(
  q_BTHE, k_BSKE, v_BSKE, q_segment_BT, kv_segment_BS, q_index_BT, causal
) -> jax.Array | None:
  """emojax's Pallas kernels, or None where they do not apply.

  T == S (a forward without cache, or a prefill filling a cache from slot
  0) runs `flash_attention`: slots then equal array positions. T == 1 (one
  decode step) runs `decode_attention` over the query's segment, which the
  rollout cache keeps contiguous (left-padded prompts, slots written in
  order). Other prefills return None (the caller uses XLA). On CPU the
  kernels run in Pallas interpret mode; under `sharding.use_rules` they run
  in `shard_map` over the batch and heads mesh axes.
  """
  T, S = q_BTHE.shape[1], k_BSKE.shape[1]
  if T == S:
    fn = lambda q, k, v, seg_q, seg_kv, idx: kernels.flash_attention(
      q, k, v, causal=causal, segment_ids=seg_q
    )
  elif T == 1:
    fn = _decode
  else:
    return None
  args = (q_BTHE, k_BSKE, v_BSKE, q_segment_BT, kv_segment_BS, q_index_BT)
  active = sharding.active()
  if active is None:
    return fn(*args)
  mesh, rules = active
  row = sharding.logical_to_spec(("batch",), rules, mesh)[0]
  heads = sharding.logical_to_spec(("heads",), rules, mesh)[0]
  if not (
    sharding.fits(q_BTHE.shape, P(row, None, heads), mesh)
    and sharding.fits(k_BSKE.shape, P(row, None, heads), mesh)
  ):
    heads = None
  if not sharding.fits(q_BTHE.shape, P(row), mesh):
    row = None
  qkv = P(row, None, heads, None)
  in_specs = (qkv, qkv, qkv, P(row, None), P(row, None), P(row, None))
  return jax.shard_map(
    fn, mesh=mesh, in_specs=in_specs, out_specs=qkv, check_vma=False
  )(*args)


def _decode(q_B1HE, k_BSKE, v_BSKE, q_segment_B1, kv_segment_BS, q_index_B1):
  """One decode step: keys in the query's segment at slots <= its own."""
  same_BS = kv_segment_BS == q_segment_B1
  starts_B = jnp.argmax(same_BS, axis=1).astype(jnp.int32)
  ends_B = jnp.where(q_segment_B1[:, 0] != 0, q_index_B1[:, 0] + 1, 0)
  o_BHE = kernels.decode_attention(
    q_B1HE[:, 0], k_BSKE, v_BSKE, ends_B, starts_B=starts_B
  )
  return o_BHE[:, None]
