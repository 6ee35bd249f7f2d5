"""Attention with implementation dispatch: `xla`, `cudnn`, `pallas`.

Masking is described, not materialised by the caller: segment ids (0 means
padding or an empty cache slot; tokens attend within equal segments) and
slot indices (causal means key slot <= query slot). This one description
serves training (T == S), prefill and cached decode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax import sharding


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
    raise NotImplementedError(
      "model.attention='pallas' is not wired yet; use 'xla' or 'cudnn'."
    )
  else:
    raise ValueError(
      f"model.attention={impl!r}; choose 'xla', 'cudnn' or 'pallas'."
    )
  return sharding.constrain(out, ("batch", "act_seq", "heads", None))
