"""Rotary position embeddings: 1-D (Qwen2, Llama-3) and Qwen2.5-VL's 3-D.

Layout follows transformers' `rotate_half` convention: the head dim is two
halves, and frequency j rotates the pair (x[j], x[j + E/2]).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from emojax.model.config import ModelConfig, RopeScaling


def inv_freq(cfg: ModelConfig) -> np.ndarray:
  """Inverse frequencies [E/2] in float32, with Llama-3 scaling if set."""
  half = cfg.head_dim // 2
  exponents = np.arange(0, cfg.head_dim, 2, dtype=np.int64)[:half]
  freq = 1.0 / (cfg.rope_theta ** (exponents.astype(np.float32) / cfg.head_dim))
  freq = freq.astype(np.float32)
  if cfg.rope_scaling is not None:
    freq = _llama3_scale(freq, cfg.rope_scaling)
  return freq


def _llama3_scale(freq: np.ndarray, s: RopeScaling) -> np.ndarray:
  # Long wavelengths are divided by `factor`, short ones kept, and the band
  # between is interpolated (Llama 3.1 report, and transformers'
  # `_compute_llama3_parameters`).
  old = s.original_max_position_embeddings
  low_wavelen = old / s.low_freq_factor
  high_wavelen = old / s.high_freq_factor
  wavelen = 2 * math.pi / freq
  scaled = np.where(wavelen > low_wavelen, freq / s.factor, freq)
  smooth = (old / wavelen - s.low_freq_factor) / (
    s.high_freq_factor - s.low_freq_factor
  )
  smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
  medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
  return np.where(medium, smoothed, scaled).astype(np.float32)


def _section_of_freq(sections: tuple[int, ...]) -> np.ndarray:
  """For each frequency j < E/2, which position component (t, h, w) it uses."""
  return np.concatenate(
    [np.full(n, i % 3, np.int32) for i, n in enumerate(sections)]
  )


def cos_sin(
  cfg: ModelConfig, positions: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """cos/sin [B, T, E] for `positions_BT` or Qwen2.5-VL's `positions_3BT`."""
  freq_F = jnp.asarray(inv_freq(cfg))
  pos = positions.astype(jnp.float32)
  if pos.ndim == 2:
    angles_BTF = pos[..., None] * freq_F[None, None, :]
  elif pos.ndim == 3:
    if cfg.mrope_section is None:
      raise ValueError(
        "3-D position ids need ModelConfig.mrope_section (Qwen2.5-VL); this "
        "model uses 1-D RoPE."
      )
    comp_F = jnp.asarray(_section_of_freq(cfg.mrope_section))
    angles_3BTF = pos[..., None] * freq_F[None, None, None, :]
    angles_BTF = jnp.take_along_axis(
      angles_3BTF, comp_F[None, None, None, :], axis=0
    )[0]
  else:
    raise ValueError(f"positions must be [B, T] or [3, B, T], got {pos.shape}")
  angles_BTE = jnp.concatenate([angles_BTF, angles_BTF], axis=-1)
  return jnp.cos(angles_BTE), jnp.sin(angles_BTE)


def apply(x_BTHE: jax.Array, cos_BTE: jax.Array, sin_BTE: jax.Array):
  """Rotates queries or keys; math in fp32, result in x's dtype."""
  x = x_BTHE.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  cos = cos_BTE[:, :, None, :]
  sin = sin_BTE[:, :, None, :]
  return (x * cos + rotated * sin).astype(x_BTHE.dtype)
