"""The public forward pass over a batch in Hugging Face's names.

  logits_BTV = forward(params, cfg, {"input_ids": ..., "attention_mask": ...})

`input_embeddings` and `position_ids` are the two hooks the multimodal
models extend (image and audio features scattered into the embeddings;
3-D rotary positions for images).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from emojax.model import audio_lm, decoder, vlm
from emojax.model import params as params_lib
from emojax.model.config import ModelConfig


def segment_ids(batch: Mapping[str, jax.Array]) -> jax.Array:
  """Packed `segment_ids` if given, else the attention mask (0 = padding)."""
  if "segment_ids" in batch:
    return jnp.asarray(batch["segment_ids"], jnp.int32)
  ids_BT = batch["input_ids"]
  mask_BT = batch.get("attention_mask")
  if mask_BT is None:
    return jnp.ones(ids_BT.shape, jnp.int32)
  return jnp.asarray(mask_BT, jnp.int32)


def default_positions(mask_BT: jax.Array) -> jax.Array:
  """Positions counting real tokens only (as HF `generate` derives them).

  Left padding then gives the first real token position 0, the same as the
  unpadded sequence; padding slots get 0 and are masked anyway.
  """
  mask_BT = mask_BT.astype(jnp.int32)
  return jnp.maximum(jnp.cumsum(mask_BT, axis=-1) - 1, 0) * (mask_BT > 0)


def position_ids(cfg: ModelConfig, batch: Mapping[str, jax.Array]):
  """`position_ids` from the batch, else derived from the padding mask.

  With images, Qwen2.5-VL's 3-D positions (`vlm.get_rope_index`).
  """
  if cfg.vision is not None:
    positions = vlm.position_ids(cfg, batch)
    if positions is not None:
      return positions
  if "position_ids" in batch:
    return jnp.asarray(batch["position_ids"], jnp.int32)
  return default_positions(segment_ids(batch) > 0)


def input_embeddings(params, cfg: ModelConfig, batch) -> jax.Array:
  """Token embeddings; images' and clips' features in their placeholders."""
  if cfg.vision is not None:
    x_BTD = vlm.input_embeddings(params, cfg, batch)
  else:
    x_BTD = decoder.embed_tokens(params, cfg, batch["input_ids"])
  if cfg.audio is not None:
    x_BTD = audio_lm.merge(params, cfg, batch, x_BTD)
  return x_BTD


def _hidden(params, cfg: ModelConfig, batch) -> jax.Array:
  if cfg.vision is not None:  # once, for the embeddings and the positions
    batch = vlm.one_stream(cfg, batch)
  x_BTD = input_embeddings(params, cfg, batch)
  positions = position_ids(cfg, batch)
  h_BTD, _ = decoder.run_layers(
    params, cfg, x_BTD, positions, segment_ids(batch)
  )
  return h_BTD


def forward_hidden(params, cfg: ModelConfig, batch) -> jax.Array:
  """Final-norm hidden states `h_BTD` (for chunked/fused logprobs)."""
  return _hidden(params_lib.cast(params, jnp.dtype(cfg.dtype)), cfg, batch)


def forward(params, cfg: ModelConfig, batch) -> jax.Array:
  """Logits `[B, T, V]` in fp32; params are cast to `cfg.dtype` first."""
  params = params_lib.cast(params, jnp.dtype(cfg.dtype))
  return decoder.unembed(params, cfg, _hidden(params, cfg, batch))
