"""Per-token log-probabilities of given tokens under the model.

The unembedding and softmax are chunked over tokens and vocabulary
(`emojax.kernels.chunked_logprobs`), so a 150k-vocabulary model never holds
`[B, T, V]` logits; `ModelConfig.logprobs='fused'` uses the Pallas kernel
instead (`kernels.fused_logprobs`: same values and gradients). Either is
placed on the mesh by `sharded_logprobs`.
Only the completion slice of the sequence is unembedded.

Batches come in two layouts: concatenated rows (`input_ids` = prompt +
completion, the completion from column `start`), or shared prompts
(`prompt`: the P prompts' batch, `completion_ids`/`completion_mask`: the
B = P*G completions), which computes each prompt once (`model.prefix`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax import kernels
from emojax.model import model as model_lib
from emojax.model import params as params_lib
from emojax.model import prefix
from emojax.model.config import ModelConfig
from emojax.rl import sharded_logprobs


def unembedding_DV(params, cfg: ModelConfig) -> jax.Array:
  if cfg.tie_embeddings:
    return params["embed"]["embedding_VD"].T
  return params["lm_head_DV"]


def completion_logprobs(
  params,
  cfg: ModelConfig,
  batch,
  start: int | None,
  *,
  temperature: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """(logp_BC, entropy_BC) of the completion tokens.

  `start` (static) is where the completion begins in concatenated rows
  (None for the shared-prompt layout); token t is predicted from the hidden
  state at t - 1.
  """
  params = params_lib.cast(params, jnp.dtype(cfg.dtype))
  if "prompt" in batch:
    h_BCD, targets_BC = _shared_prompt_inputs(params, cfg, batch)
  else:
    h_BTD = model_lib.forward_hidden(params, cfg, batch)
    h_BCD = h_BTD[:, start - 1 : -1]
    targets_BC = batch["input_ids"][:, start:]
  w_DV = unembedding_DV(params, cfg).astype(h_BCD.dtype)
  fused = cfg.logprobs == "fused"
  fn = kernels.fused_logprobs if fused else kernels.chunked_logprobs
  return sharded_logprobs.logprobs(
    h_BCD, w_DV, targets_BC, temperature=temperature, fn=fn
  )


def _shared_prompt_inputs(params, cfg, batch):
  """Hidden states that predict each completion token, and the tokens."""
  ids_BC = batch["completion_ids"]
  h_PTD, h_BCD = prefix.hidden_states(
    params, cfg, batch["prompt"], ids_BC, batch["completion_mask"]
  )
  G = ids_BC.shape[0] // h_PTD.shape[0]
  # The first token is predicted by the prompt's last (real) token.
  last_B1D = jnp.repeat(h_PTD[:, -1:], G, axis=0)
  return jnp.concatenate([last_B1D, h_BCD[:, :-1]], axis=1), ids_BC
