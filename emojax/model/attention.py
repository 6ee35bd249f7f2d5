"""Attention with implementation dispatch: `xla`, `cudnn`, `pallas`.

Masking is described, not materialised by the caller: segment ids (0 means
padding or an empty cache slot; tokens attend within equal segments) and
slot indices (causal means key slot <= query slot). This one description
serves training (T == S), prefill and cached decode.

`attend` takes keys as the layers compute them ([B, S, K, E]); the rollout
cache keeps them heads-major with keys transposed (k [B, K, E, S], v
[B, K, S, E], see `kv_cache`) and `attend_cached` reads that layout as is.
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
  logits_BKGTS = jnp.einsum(
    "btkge,bske->bkgts",
    q_BTKGE * jnp.asarray(E**-0.5, q_BTHE.dtype),
    k_BSKE,
    preferred_element_type=jnp.float32,
  )
  return _softmax_values(logits_BKGTS, mask_BTS, v_BSKE, "bkgts,bske->btkge")


def _xla_cached(q_BTHE, k_BKES, v_BKSE, mask_BTS) -> jax.Array:
  """`xla_attention` over the cache's layout (keys transposed).

  Queries are laid out [B, K, G*T, E] so both products are plain batched
  matmuls; with T = 1 (decode) every reshape is free. (With a separate unit
  T axis XLA:CPU swapped the operands into a transposed-operand matmul 3x
  slower.)
  """
  B, T, H, E = q_BTHE.shape
  K = k_BKES.shape[1]
  G, S = H // K, k_BKES.shape[3]
  q_BKGTE = jnp.transpose(q_BTHE.reshape(B, T, K, G, E), (0, 2, 3, 1, 4))
  q_BKME = q_BKGTE.reshape(B, K, G * T, E) * jnp.asarray(E**-0.5, q_BTHE.dtype)
  logits_BKMS = jnp.einsum(
    "bkme,bkes->bkms", q_BKME, k_BKES, preferred_element_type=jnp.float32
  )
  probs_BKGTS = _masked_softmax(logits_BKMS.reshape(B, K, G, T, S), mask_BTS)
  probs_BKMS = probs_BKGTS.reshape(B, K, G * T, S)
  o_BKME = jnp.einsum(
    "bkms,bkse->bkme", probs_BKMS.astype(v_BKSE.dtype), v_BKSE
  )
  o_BTKGE = jnp.transpose(o_BKME.reshape(B, K, G, T, E), (0, 3, 1, 2, 4))
  return o_BTKGE.reshape(B, T, H, E)


def _masked_softmax(logits_BKGTS, mask_BTS) -> jax.Array:
  big_neg = jnp.finfo(jnp.float32).min
  logits_BKGTS = jnp.where(mask_BTS[:, None, None], logits_BKGTS, big_neg)
  return jax.nn.softmax(logits_BKGTS, axis=-1)


def _softmax_values(logits_BKGTS, mask_BTS, v, spec: str) -> jax.Array:
  probs_BKGTS = _masked_softmax(logits_BKGTS, mask_BTS).astype(v.dtype)
  o_BTKGE = jnp.einsum(spec, probs_BKGTS, v)
  B, T, K, G, E = o_BTKGE.shape
  return o_BTKGE.reshape(B, T, K * G, E)


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
  _check_impl(impl)
  mask_BTS = make_mask(
    q_segment_BT, kv_segment_BS, q_index_BT, kv_index_BS, causal
  )
  if impl == "cudnn":
    out = cudnn_attention(q_BTHE, k_BSKE, v_BSKE, mask_BTS)
  elif impl == "pallas":
    # The kernel's causal mask puts the queries at the last T of the S
    # key positions: self-attention (T == S) and completions after their
    # shared prompt (`prefix`), which is how the model calls it.
    flash = lambda q, k, v, q_seg, kv_seg: kernels.flash_attention(
      q, k, v, causal=causal, segment_ids=q_seg, kv_segment_ids=kv_seg
    )
    args = (q_BTHE, k_BSKE, v_BSKE, q_segment_BT, kv_segment_BS)
    out = _sharded(flash, args, 2)
  else:
    out = xla_attention(q_BTHE, k_BSKE, v_BSKE, mask_BTS)
  return sharding.constrain(out, ("batch", "act_seq", "heads", None))


def attend_cached(
  q_BTHE: jax.Array,
  k_BKES: jax.Array,
  v_BKSE: jax.Array,
  *,
  q_segment_BT: jax.Array,
  kv_segment_BS: jax.Array,
  q_index_BT: jax.Array,
  kv_index_BS: jax.Array,
  impl: str = "xla",
) -> jax.Array:
  """Causal attention of T new tokens over the cache's layout.

  One decode step (T == 1) with impl 'pallas' runs `decode_attention`,
  which streams only the query's segment: the rollout cache keeps it
  contiguous (left-padded prompts, slots written in order). Everything
  else (prefills; 'cudnn', whose fused kernel wants [B, S, K, E]) runs XLA.
  """
  _check_impl(impl)
  if impl == "pallas" and q_BTHE.shape[1] == 1:
    args = (q_BTHE, k_BKES, v_BKSE, q_segment_BT, kv_segment_BS, q_index_BT)
    out = _sharded(_decode, args, 1)
  else:
    mask_BTS = make_mask(
      q_segment_BT, kv_segment_BS, q_index_BT, kv_index_BS, causal=True
    )
    out = _xla_cached(q_BTHE, k_BKES, v_BKSE, mask_BTS)
  return sharding.constrain(out, ("batch", "act_seq", "heads", None))


def _check_impl(impl: str) -> None:
  if impl not in ("xla", "cudnn", "pallas"):
    raise ValueError(
      f"model.attention={impl!r}; choose 'xla', 'cudnn' or 'pallas'."
    )


def _sharded(fn, args, kv_heads_axis: int) -> jax.Array:
  """`fn(q, k, v, *rows)` in `shard_map` over the batch and heads axes.

  On CPU the kernels run in Pallas interpret mode; outside
  `sharding.use_rules` `fn` runs as is. `kv_heads_axis` is K's axis in k
  and v (2 for [B, S, K, E], 1 for the cache's layouts).
  """
  active = sharding.active()
  if active is None:
    return fn(*args)
  mesh, rules = active
  q_BTHE, k = args[0], args[1]
  row = sharding.logical_to_spec(("batch",), rules, mesh)[0]
  heads = sharding.logical_to_spec(("heads",), rules, mesh)[0]

  def kv_spec(heads):
    spec = [row, None, None, None]
    spec[kv_heads_axis] = heads
    return P(*spec)

  if not (
    sharding.fits(q_BTHE.shape, P(row, None, heads), mesh)
    and sharding.fits(k.shape, kv_spec(heads), mesh)
  ):
    heads = None
  if not sharding.fits(q_BTHE.shape, P(row), mesh):
    row = None
  q_spec = P(row, None, heads, None)
  rows = (P(row, None),) * (len(args) - 3)
  in_specs = (q_spec, kv_spec(heads), kv_spec(heads), *rows)
  return jax.shard_map(
    fn, mesh=mesh, in_specs=in_specs, out_specs=q_spec, check_vma=False
  )(*args)


def _decode(q_B1HE, k_BKES, v_BKSE, q_segment_B1, kv_segment_BS, q_index_B1):
  """One decode step: keys in the query's segment at slots <= its own."""
  same_BS = kv_segment_BS == q_segment_B1
  starts_B = jnp.argmax(same_BS, axis=1).astype(jnp.int32)
  ends_B = jnp.where(q_segment_B1[:, 0] != 0, q_index_B1[:, 0] + 1, 0)
  o_BHE = kernels.decode_attention(
    q_B1HE[:, 0], k_BKES, v_BKSE, ends_B, starts_B=starts_B
  )
  return o_BHE[:, None]
