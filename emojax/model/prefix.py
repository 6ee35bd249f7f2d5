"""G completions per prompt, with the shared prompt computed once.

  h_PTD, h_BCD = prefix.hidden_states(params, cfg, prompts, ids_BC, mask_BC)

GRPO scores G completions of each prompt. A forward over the B = P*G
concatenated rows computes every prompt (and its image) G times; here the
P prompts run once and each completion attends to its prompt's keys and
values, repeated per row (K heads only). It is the same function, and the
gradient through the repeat sums the G rows' shares. It saves (G-1)/G of
the prompts' share of the work: 30% of a GRPO update at the PEERS shape,
more with long prompts or images.

Layout, as the rollout engine returns it: rows are prompt-major (row b
continues prompt b // G), prompts left-padded (the last column is every
prompt's last real token), completions right-padded with `mask_BC`.
`params` are already in the compute dtype (as for `decoder.run_layers`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from emojax import sharding
from emojax.model import attention, decoder, rope
from emojax.model import model as model_lib
from emojax.model.config import ModelConfig

_ACT = ("batch", "act_seq", "act_embed")


def completion_positions(prompt_positions, mask_BC, G: int) -> jax.Array:
  """Rotary positions of the completions, numbered as a full-row forward.

  Each prompt's largest position plus 1, 2, ... (Qwen2.5-VL's rope_deltas;
  for text, the count of real prompt tokens), as the rollout engine does.
  """
  axes = (0, 2) if prompt_positions.ndim == 3 else (1,)
  start_B = jnp.repeat(jnp.max(prompt_positions, axis=axes) + 1, G)
  steps_BC = jnp.maximum(jnp.cumsum(mask_BC, axis=1) - 1, 0)
  positions_BC = (start_B[:, None] + steps_BC).astype(jnp.int32)
  if prompt_positions.ndim == 3:  # text tokens: three equal components
    return jnp.broadcast_to(positions_BC[None], (3, *positions_BC.shape))
  return positions_BC


def _masks(seg_PT, seg_BC, G: int) -> tuple[dict, dict]:
  """Prompt self-attention; completions over [their prompt | themselves]."""
  P, Tp = seg_PT.shape
  B, C = seg_BC.shape
  index_PT = jnp.broadcast_to(jnp.arange(Tp, dtype=jnp.int32), (P, Tp))
  prompt = dict(
    q_segment_BT=seg_PT,
    kv_segment_BS=seg_PT,
    q_index_BT=index_PT,
    kv_index_BS=index_PT,
  )
  S = Tp + C
  completion = dict(
    q_segment_BT=seg_BC,
    kv_segment_BS=jnp.concatenate([jnp.repeat(seg_PT, G, axis=0), seg_BC], 1),
    q_index_BT=jnp.broadcast_to(jnp.arange(Tp, S, dtype=jnp.int32), (B, C)),
    kv_index_BS=jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (B, S)),
  )
  return prompt, completion


def _layer(p, xs, *, cfg: ModelConfig, ropes, masks, G: int):
  """One block over both streams; the completions see the prompt's K/V."""
  x_PTD, x_BCD = xs
  eps = cfg.rms_norm_eps
  with jax.named_scope("attention"):
    h_PTD = decoder.rms_norm(x_PTD, p["attn_norm_LD"], eps)
    h_BCD = decoder.rms_norm(x_BCD, p["attn_norm_LD"], eps)
    q_PTHE, k_PTKE, v_PTKE = decoder.qkv(p, cfg, h_PTD, ropes[0])
    q_BCHE, k_BCKE, v_BCKE = decoder.qkv(p, cfg, h_BCD, ropes[1])
    o_PTHE = attention.attend(
      q_PTHE, k_PTKE, v_PTKE, **masks[0], causal=True, impl=cfg.attention
    )
    k_BSKE = jnp.concatenate([jnp.repeat(k_PTKE, G, axis=0), k_BCKE], 1)
    v_BSKE = jnp.concatenate([jnp.repeat(v_PTKE, G, axis=0), v_BCKE], 1)
    o_BCHE = attention.attend(
      q_BCHE, k_BSKE, v_BSKE, **masks[1], causal=True, impl=cfg.attention
    )
    x_PTD = x_PTD + decoder.attention_out(p, o_PTHE)
    x_BCD = x_BCD + decoder.attention_out(p, o_BCHE)
  with jax.named_scope("mlp"):
    x_PTD = x_PTD + decoder.mlp_block(
      p, decoder.rms_norm(x_PTD, p["mlp_norm_LD"], eps)
    )
    x_BCD = x_BCD + decoder.mlp_block(
      p, decoder.rms_norm(x_BCD, p["mlp_norm_LD"], eps)
    )
  return sharding.constrain(x_PTD, _ACT), sharding.constrain(x_BCD, _ACT)


def hidden_states(
  params,
  cfg: ModelConfig,
  prompts: Mapping,
  completion_ids_BC: jax.Array,
  completion_mask_BC: jax.Array,
) -> tuple[jax.Array, jax.Array]:
  """Final-norm hidden states of the prompts and of the completions."""
  seg_PT = model_lib.segment_ids(prompts)
  P, B = seg_PT.shape[0], completion_ids_BC.shape[0]
  if B % P:
    raise ValueError(
      f"{B} completion rows for {P} prompts: want G completions per prompt "
      "(prompt-major rows)."
    )
  G = B // P
  positions_p = model_lib.position_ids(cfg, prompts)
  mask_BC = jnp.asarray(completion_mask_BC, jnp.int32)
  positions_c = completion_positions(positions_p, mask_BC, G)
  step = functools.partial(
    _layer,
    cfg=cfg,
    ropes=(rope.cos_sin(cfg, positions_p), rope.cos_sin(cfg, positions_c)),
    masks=_masks(seg_PT, mask_BC, G),
    G=G,
  )
  if cfg.remat:
    step = jax.checkpoint(step)
  xs = (
    model_lib.input_embeddings(params, cfg, prompts),
    decoder.embed_tokens(params, cfg, completion_ids_BC),
  )
  layers = params["layers"]
  if cfg.scan_layers:
    xs = jax.lax.scan(lambda x, p: (step(p, x), None), xs, layers)[0]
  else:
    for i in range(cfg.num_layers):
      xs = step(decoder.layer_params(layers, i), xs)
  return tuple(
    decoder.rms_norm(x, params["final_norm_D"], cfg.rms_norm_eps) for x in xs
  )
