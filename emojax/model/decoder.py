"""The Qwen2 / Qwen2.5 / Llama-3 text decoder as pure functions.

Parameters are a dict of arrays described by `specs(cfg)`; layer weights
are stacked over a leading L axis so the layers can run under `lax.scan`.
Differences between the families are config fields (q/k/v bias, rope
scaling, tied embeddings), not code paths.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from emojax import sharding
from emojax.model import attention, rope, swiglu
from emojax.model.config import ModelConfig
from emojax.model.kv_cache import KVCache
from emojax.model.params import ParamSpec, normal, ones, zeros

INIT_STD = 0.02  # transformers' initializer_range default.


def specs(cfg: ModelConfig) -> dict:
  """The decoder's parameters, described once."""
  L, D, F = cfg.num_layers, cfg.hidden_size, cfg.intermediate_size
  H, K, E, V = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.vocab_size
  dt = jnp.dtype(cfg.param_dtype)
  w = normal(INIT_STD)

  def spec(shape, axes, init=w):
    return ParamSpec(shape, dt, axes, init)

  layers = {
    "attn_norm_LD": spec((L, D), ("layers", "norm"), ones),
    "w_q_LDHE": spec((L, D, H, E), ("layers", "embed", "heads", "head_dim")),
    "w_k_LDKE": spec((L, D, K, E), ("layers", "embed", "kv_heads", "head_dim")),
    "w_v_LDKE": spec((L, D, K, E), ("layers", "embed", "kv_heads", "head_dim")),
    "w_o_LHED": spec((L, H, E, D), ("layers", "heads", "head_dim", "embed")),
    "mlp_norm_LD": spec((L, D), ("layers", "norm"), ones),
    "w_gate_LDF": spec((L, D, F), ("layers", "embed", "mlp")),
    "w_up_LDF": spec((L, D, F), ("layers", "embed", "mlp")),
    "w_down_LFD": spec((L, F, D), ("layers", "mlp", "embed")),
  }
  if cfg.qkv_bias:
    layers |= {
      "b_q_LHE": spec((L, H, E), ("layers", "heads", "head_dim"), zeros),
      "b_k_LKE": spec((L, K, E), ("layers", "kv_heads", "head_dim"), zeros),
      "b_v_LKE": spec((L, K, E), ("layers", "kv_heads", "head_dim"), zeros),
    }
  out = {
    "embed": {"embedding_VD": spec((V, D), ("vocab", "embed"))},
    "layers": layers,
    "final_norm_D": spec((D,), ("norm",), ones),
  }
  if not cfg.tie_embeddings:
    out["lm_head_DV"] = spec((D, V), ("embed", "vocab"))
  return out


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
  """RMSNorm computed in fp32, scaled in the input dtype (as transformers)."""
  x32 = x.astype(jnp.float32)
  normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + eps)
  scale = scale.reshape((1,) * (x.ndim - 1) + scale.shape)
  return scale.astype(x.dtype) * normed.astype(x.dtype)


def embed_tokens(params, cfg: ModelConfig, input_ids_BT) -> jax.Array:
  table_VD = params["embed"]["embedding_VD"]
  x_BTD = jnp.take(table_VD, input_ids_BT, axis=0).astype(cfg.dtype)
  return sharding.constrain(x_BTD, ("batch", "act_seq", "act_embed"))


def unembed(params, cfg: ModelConfig, h_BTD) -> jax.Array:
  """Logits in fp32 (accumulated in fp32 even for bf16 weights)."""
  if cfg.tie_embeddings:
    w_DV = params["embed"]["embedding_VD"].T
  else:
    w_DV = params["lm_head_DV"]
  logits_BTV = jnp.einsum(
    "btd,dv->btv",
    h_BTD,
    w_DV.astype(h_BTD.dtype),
    preferred_element_type=jnp.float32,
  )
  return sharding.constrain(logits_BTV, ("batch", "act_seq", "vocab"))


def qkv(p, cfg: ModelConfig, h_BTD, cos_sin):
  """One layer's rotated queries, keys and values of normed inputs."""
  dt = h_BTD.dtype
  q_BTHE = jnp.einsum("btd,dhe->bthe", h_BTD, p["w_q_LDHE"].astype(dt))
  k_BTKE = jnp.einsum("btd,dke->btke", h_BTD, p["w_k_LDKE"].astype(dt))
  v_BTKE = jnp.einsum("btd,dke->btke", h_BTD, p["w_v_LDKE"].astype(dt))
  if cfg.qkv_bias:
    q_BTHE += p["b_q_LHE"].astype(dt)[None, None]
    k_BTKE += p["b_k_LKE"].astype(dt)[None, None]
    v_BTKE += p["b_v_LKE"].astype(dt)[None, None]
  q_BTHE = sharding.constrain(q_BTHE, ("batch", "act_seq", "heads", None))
  q_BTHE = rope.apply(q_BTHE, *cos_sin)
  k_BTKE = rope.apply(k_BTKE, *cos_sin)
  return q_BTHE, k_BTKE, v_BTKE


def attention_out(p, o_BTHE) -> jax.Array:
  """The output projection of attention's per-head results."""
  dt = o_BTHE.dtype
  return jnp.einsum("bthe,hed->btd", o_BTHE, p["w_o_LHED"].astype(dt))


def _attention_block(p, cfg, h_BTD, cos_sin, masks, kv):
  """Self-attention of one layer; `kv` is this layer's (k, v) cache or None."""
  dt = h_BTD.dtype
  q_BTHE, k_BTKE, v_BTKE = qkv(p, cfg, h_BTD, cos_sin)
  if kv is None:
    o_BTHE = attention.attend(
      q_BTHE, k_BTKE, v_BTKE, **masks, causal=True, impl=cfg.attention
    )
    return attention_out(p, o_BTHE), None
  k_BKES, v_BKSE, index = kv
  # In place: this layer's cache is a loop-carried buffer of its own.
  k_BKES = jax.lax.dynamic_update_slice(
    k_BKES,
    jnp.transpose(k_BTKE, (0, 2, 3, 1)).astype(k_BKES.dtype),
    (0, 0, 0, index),
  )
  v_BKSE = jax.lax.dynamic_update_slice(
    v_BKSE, jnp.swapaxes(v_BTKE, 1, 2).astype(v_BKSE.dtype), (0, 0, index, 0)
  )
  o_BTHE = attention.attend_cached(
    q_BTHE, k_BKES.astype(dt), v_BKSE.astype(dt), **masks, impl=cfg.attention
  )
  return attention_out(p, o_BTHE), (k_BKES, v_BKSE)


def mlp_block(p, h_BTD):
  dt = h_BTD.dtype
  B, T, D = h_BTD.shape
  out_RD = swiglu.swiglu_mlp(
    h_BTD.reshape(B * T, D),
    p["w_gate_LDF"].astype(dt),
    p["w_up_LDF"].astype(dt),
    p["w_down_LFD"].astype(dt),
    act_axes=("batch", "mlp"),
  )
  return out_RD.reshape(B, T, D)


def layer(p, cfg: ModelConfig, x_BTD, cos_sin, masks, kv=None):
  """One pre-norm transformer block; `p` holds one layer's weights."""
  with jax.named_scope("attention"):
    h_BTD = rms_norm(x_BTD, p["attn_norm_LD"], cfg.rms_norm_eps)
    attn_BTD, new_kv = _attention_block(p, cfg, h_BTD, cos_sin, masks, kv)
    x_BTD = x_BTD + attn_BTD
  with jax.named_scope("mlp"):
    h_BTD = rms_norm(x_BTD, p["mlp_norm_LD"], cfg.rms_norm_eps)
    x_BTD = x_BTD + mlp_block(p, h_BTD)
  x_BTD = sharding.constrain(x_BTD, ("batch", "act_seq", "act_embed"))
  return x_BTD, new_kv


def run_layers(
  params,
  cfg: ModelConfig,
  x_BTD: jax.Array,
  positions: jax.Array,
  segment_ids_BT: jax.Array,
  cache: KVCache | None = None,
) -> tuple[jax.Array, KVCache | None]:
  """All blocks and the final norm.

  Without a cache, tokens attend causally within their segment. With one,
  the T new tokens are written at slots [cache.index, cache.index + T) and
  attend to every earlier filled slot of their row.
  """
  B, T, _ = x_BTD.shape
  cos_sin = rope.cos_sin(cfg, positions)
  q_index_BT = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
  if cache is None:
    masks = dict(
      q_segment_BT=segment_ids_BT,
      kv_segment_BS=segment_ids_BT,
      q_index_BT=q_index_BT,
      kv_index_BS=q_index_BT,
    )
  else:
    segment_BS = jax.lax.dynamic_update_slice(
      cache.segment_BS, segment_ids_BT.astype(jnp.int32), (0, cache.index)
    )
    S = cache.max_len
    masks = dict(
      q_segment_BT=segment_ids_BT,
      kv_segment_BS=segment_BS,
      q_index_BT=q_index_BT + cache.index,
      kv_index_BS=jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (B, S)),
    )
  step = functools.partial(layer, cfg=cfg, cos_sin=cos_sin, masks=masks)
  if cfg.remat:
    step = jax.checkpoint(step)
  if cache is None:
    x_BTD = _over_layers(step, params["layers"], cfg, x_BTD)
  else:
    x_BTD, k_BKES, v_BKSE = _over_cached_layers(
      step, params["layers"], cfg, x_BTD, cache
    )
  h_BTD = rms_norm(x_BTD, params["final_norm_D"], cfg.rms_norm_eps)
  if cache is None:
    return h_BTD, None
  new_cache = KVCache(k_BKES, v_BKSE, segment_BS, cache.index + T)
  return h_BTD, new_cache


def layer_params(layers, i: int):
  return jax.tree.map(lambda a: a[i], layers)


def _over_layers(step, layers, cfg, x_BTD):
  """Runs `step` over the stacked layers, scanned or unrolled."""
  if cfg.scan_layers:

    def body(x, p):
      return step(p, x_BTD=x)[0], None

    return jax.lax.scan(body, x_BTD, layers)[0]
  for i in range(cfg.num_layers):
    x_BTD = step(layer_params(layers, i), x_BTD=x_BTD)[0]
  return x_BTD


def _over_cached_layers(step, layers, cfg, x_BTD, cache):
  """Always unrolled: each layer updates its own cache array in place.

  (Scanning would carry the caches stacked, which costs a copy of every
  layer's cache per step; see `kv_cache`.) Inside the decode loop the
  per-layer weight slices are loop-invariant, so XLA hoists them.
  """
  new_k, new_v = [], []
  for i in range(cfg.num_layers):
    kv = (cache.k_BKES[i], cache.v_BKSE[i], cache.index)
    x_BTD, (k_BKES, v_BKSE) = step(layer_params(layers, i), x_BTD=x_BTD, kv=kv)
    new_k.append(k_BKES)
    new_v.append(v_BKSE)
  return x_BTD, tuple(new_k), tuple(new_v)
