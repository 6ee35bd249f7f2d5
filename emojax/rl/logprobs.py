"""Per-token log-probabilities of given tokens under the model.

The unembedding and softmax are chunked over tokens and vocabulary
(`emojax.kernels.chunked_logprobs`), so a 150k-vocabulary model never holds
`[B, T, V]` logits; `fused=True` uses the Pallas kernel instead (GPU/TPU).
Only the completion slice of the sequence is unembedded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax import kernels
from emojax.model import model as model_lib
from emojax.model import params as params_lib
from emojax.model.config import ModelConfig


def unembedding_DV(params, cfg: ModelConfig) -> jax.Array:
  if cfg.tie_embeddings:
    return params["embed"]["embedding_VD"].T
  return params["lm_head_DV"]


def completion_logprobs(
  params,
  cfg: ModelConfig,
  batch,
  start: int,
  *,
  temperature: float = 1.0,
  fused: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """(logp_BC, entropy_BC) of tokens `input_ids[:, start:]`.

  `start` (static) is where the completion begins; token t is predicted
  from the hidden state at t - 1.
  """
  params = params_lib.cast(params, jnp.dtype(cfg.dtype))
  h_BTD = model_lib.forward_hidden(params, cfg, batch)
  h_BCD = h_BTD[:, start - 1 : -1]
  targets_BC = batch["input_ids"][:, start:]
  w_DV = unembedding_DV(params, cfg).astype(h_BCD.dtype)
  fn = kernels.fused_logprobs if fused else kernels.chunked_logprobs
  return fn(h_BCD, w_DV, targets_BC, temperature=temperature)
