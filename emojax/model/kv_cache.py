"""The key/value cache the rollout engine decodes against.

All rows write the same slot range at each step (prompts are left-padded),
so one scalar `index` tracks the next free slot; `segment_BS` marks which
slots hold real tokens (0 = padding or not yet written).

Layout, and why: one array per layer, heads before slots, keys
transposed (k [B, K, E, S], v [B, K, S, E]). A decode step then updates
each layer's arrays in place and both attention matmuls read them as plain
batched matrix products (q k^T with k already transposed: 4x faster on
CPU than contracting two minor axes). A cache stacked over layers made
every step copy each layer's slice out and back (scanned layers) or
restack all layers (unrolled), and a [B, S, K, E] cache was transposed for
the matmuls at every step: together three quarters of a CPU decode step at
the PEERS shape.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from emojax import sharding
from emojax.model.config import ModelConfig

K_AXES = ("batch", "kv_heads", "head_dim", "cache_seq")
V_AXES = ("batch", "kv_heads", "cache_seq", "head_dim")
SEGMENT_AXES = ("batch", "cache_seq")


class KVCache(NamedTuple):
  k_BKES: tuple[jax.Array, ...]  # One [B, K, E, S] array per layer.
  v_BKSE: tuple[jax.Array, ...]  # One [B, K, S, E] array per layer.
  segment_BS: jax.Array
  index: jax.Array  # int32 scalar: the next slot to write.

  @property
  def max_len(self) -> int:
    return self.v_BKSE[0].shape[2]


def map_with_axes(fn, cache: KVCache) -> KVCache:
  """`fn(leaf, logical_axes)` over every array of the cache."""
  k = tuple(fn(x, K_AXES) for x in cache.k_BKES)
  v = tuple(fn(x, V_AXES) for x in cache.v_BKSE)
  return KVCache(k, v, fn(cache.segment_BS, SEGMENT_AXES), fn(cache.index, ()))


def constrain(cache: KVCache) -> KVCache:
  """Sharding constraints on every leaf (no-op outside `use_rules`)."""
  return map_with_axes(sharding.constrain, cache)


def init(
  cfg: ModelConfig, batch_size: int, max_len: int, dtype=None
) -> KVCache:
  """An empty cache; `dtype` defaults to the compute dtype (bf16 option)."""
  dtype = jnp.dtype(dtype or cfg.dtype)
  B, K, S, E = batch_size, cfg.num_kv_heads, max_len, cfg.head_dim
  L = cfg.num_layers
  return KVCache(
    k_BKES=tuple(jnp.zeros((B, K, E, S), dtype) for _ in range(L)),
    v_BKSE=tuple(jnp.zeros((B, K, S, E), dtype) for _ in range(L)),
    segment_BS=jnp.zeros((batch_size, max_len), jnp.int32),
    index=jnp.zeros((), jnp.int32),
  )


def nbytes(cfg: ModelConfig, batch_size: int, max_len: int, dtype=None) -> int:
  """Bytes the cache of this shape takes, without allocating it."""
  dtype = jnp.dtype(dtype or cfg.dtype)
  per = cfg.num_layers * batch_size * max_len * cfg.num_kv_heads * cfg.head_dim
  return 2 * per * dtype.itemsize + batch_size * max_len * 4
