"""The key/value cache the rollout engine decodes against.

All rows write the same slot range at each step (prompts are left-padded),
so one scalar `index` tracks the next free slot; `segment_BS` marks which
slots hold real tokens (0 = padding or not yet written).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from emojax.model.config import ModelConfig


class KVCache(NamedTuple):
  k_LBSKE: jax.Array
  v_LBSKE: jax.Array
  segment_BS: jax.Array
  index: jax.Array  # int32 scalar: the next slot to write.

  @property
  def max_len(self) -> int:
    return self.k_LBSKE.shape[2]


CACHE_AXES = KVCache(
  k_LBSKE=("layers", "batch", "cache_seq", "kv_heads", "head_dim"),
  v_LBSKE=("layers", "batch", "cache_seq", "kv_heads", "head_dim"),
  segment_BS=("batch", "cache_seq"),
  index=(),
)


def init(
  cfg: ModelConfig, batch_size: int, max_len: int, dtype=None
) -> KVCache:
  """An empty cache; `dtype` defaults to the compute dtype (bf16 option)."""
  dtype = jnp.dtype(dtype or cfg.dtype)
  shape = (cfg.num_layers, batch_size, max_len, cfg.num_kv_heads, cfg.head_dim)
  return KVCache(
    k_LBSKE=jnp.zeros(shape, dtype),
    v_LBSKE=jnp.zeros(shape, dtype),
    segment_BS=jnp.zeros((batch_size, max_len), jnp.int32),
    index=jnp.zeros((), jnp.int32),
  )


def nbytes(cfg: ModelConfig, batch_size: int, max_len: int, dtype=None) -> int:
  """Bytes the cache of this shape takes, without allocating it."""
  dtype = jnp.dtype(dtype or cfg.dtype)
  per = cfg.num_layers * batch_size * max_len * cfg.num_kv_heads * cfg.head_dim
  return 2 * per * dtype.itemsize + batch_size * max_len * 4
