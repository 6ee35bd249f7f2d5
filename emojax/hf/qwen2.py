"""Qwen2 / Qwen2.5 and Llama-3 text decoders: config and tensor tables.

Both families share transformers' tensor names; they differ in q/k/v bias,
rope scaling and head_dim, which the config carries.
"""

from __future__ import annotations

from typing import Any

from emojax.hf import table
from emojax.hf.errors import CheckpointError
from emojax.model.config import ModelConfig, RopeScaling

ARCHITECTURES = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama"}
# Buffers some checkpoints carry that are recomputed, not loaded.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
# Modules of a checkpoint that are not the model emojax converts.
IGNORED_PREFIXES: tuple[str, ...] = ()


def _rope(hf: dict[str, Any], where: str) -> tuple[float, RopeScaling | None]:
  """rope_theta and llama3 scaling from either config layout.

  transformers 5 writes `rope_parameters`; 4.x writes `rope_theta` and
  `rope_scaling` at the top level. Both are read.
  """
  params = dict(hf.get("rope_scaling") or {})
  params |= hf.get("rope_parameters") or {}
  theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
  kind = params.get("rope_type", params.get("type", "default"))
  if kind == "default":
    return theta, None
  if kind == "llama3":
    return theta, RopeScaling(
      factor=float(params["factor"]),
      low_freq_factor=float(params["low_freq_factor"]),
      high_freq_factor=float(params["high_freq_factor"]),
      original_max_position_embeddings=int(
        params["original_max_position_embeddings"]
      ),
    )
  raise CheckpointError(
    f"{where}: rope type {kind!r} is not supported; emojax supports "
    "'default' and 'llama3'."
  )


def _require(hf, key, allowed, where):
  value = hf.get(key, allowed[0])
  if value not in allowed:
    raise CheckpointError(
      f"{where}: {key}={value!r} is not supported; emojax supports {allowed}."
    )


def canonical_name(name: str) -> str:
  """Qwen2/Llama checkpoints have one tensor-name layout."""
  return name


def config_from_hf(hf: dict[str, Any], where: str) -> ModelConfig:
  """A `ModelConfig` from config.json, refusing what we do not implement."""
  arch = hf["architectures"][0]
  family = ARCHITECTURES[arch]
  _require(hf, "hidden_act", ("silu",), where)
  _require(hf, "use_sliding_window", (False,), where)
  _require(hf, "attention_bias", (False,), where)
  _require(hf, "mlp_bias", (False,), where)
  heads = int(hf["num_attention_heads"])
  head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
  theta, scaling = _rope(hf, where)
  eos = hf.get("eos_token_id")
  eos = tuple(eos) if isinstance(eos, list) else (eos,) if eos else ()
  return ModelConfig(
    family=family,
    vocab_size=int(hf["vocab_size"]),
    hidden_size=int(hf["hidden_size"]),
    intermediate_size=int(hf["intermediate_size"]),
    num_layers=int(hf["num_hidden_layers"]),
    num_heads=heads,
    num_kv_heads=int(hf.get("num_key_value_heads") or heads),
    head_dim=int(head_dim),
    rope_theta=theta,
    rope_scaling=scaling,
    rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
    qkv_bias=family == "qwen2",
    tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
    max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
    eos_token_ids=eos,
    pad_token_id=int(hf.get("pad_token_id") or 0),
  )


def config_to_hf(cfg: ModelConfig, dtype: str) -> dict[str, Any]:
  arch = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}
  rope: dict[str, Any] = {"rope_type": "default", "rope_theta": cfg.rope_theta}
  if cfg.rope_scaling is not None:
    s = cfg.rope_scaling
    rope |= {
      "rope_type": "llama3",
      "factor": s.factor,
      "low_freq_factor": s.low_freq_factor,
      "high_freq_factor": s.high_freq_factor,
      "original_max_position_embeddings": s.original_max_position_embeddings,
    }
  out = {
    "architectures": [arch[cfg.family]],
    "model_type": cfg.family,
    "vocab_size": cfg.vocab_size,
    "hidden_size": cfg.hidden_size,
    "intermediate_size": cfg.intermediate_size,
    "num_hidden_layers": cfg.num_layers,
    "num_attention_heads": cfg.num_heads,
    "num_key_value_heads": cfg.num_kv_heads,
    "head_dim": cfg.head_dim,
    "hidden_act": "silu",
    "max_position_embeddings": cfg.max_position_embeddings,
    "rms_norm_eps": cfg.rms_norm_eps,
    "rope_theta": cfg.rope_theta,
    "rope_parameters": rope,
    "tie_word_embeddings": cfg.tie_embeddings,
    "eos_token_id": list(cfg.eos_token_ids),
    "pad_token_id": cfg.pad_token_id,
    "dtype": dtype,
    "torch_dtype": dtype,
    "use_cache": True,
  }
  if cfg.family == "qwen2":
    out |= {"use_sliding_window": False, "sliding_window": None}
  else:
    out |= {"attention_bias": False, "mlp_bias": False}
  return out


def text_entries(cfg: ModelConfig, prefix: str = "model.") -> list:
  """The decoder's table; `prefix` is where the text model sits in HF."""
  D, F = cfg.hidden_size, cfg.intermediate_size
  H, K, E, V = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.vocab_size
  lp = prefix + "layers.{i}."

  def entry(path, hf, transforms, hf_shape):
    return table.Entry(tuple(path.split("/")), hf, *transforms, hf_shape)

  same = (table.identity, table.identity)
  out = [
    entry("embed/embedding_VD", prefix + "embed_tokens.weight", same, (V, D)),
    entry("final_norm_D", prefix + "norm.weight", same, (D,)),
    entry("layers/attn_norm_LD", lp + "input_layernorm.weight", same, (D,)),
    entry(
      "layers/mlp_norm_LD", lp + "post_attention_layernorm.weight", same, (D,)
    ),
    entry(
      "layers/w_q_LDHE",
      lp + "self_attn.q_proj.weight",
      table.linear(D, H, E),
      (H * E, D),
    ),
    entry(
      "layers/w_k_LDKE",
      lp + "self_attn.k_proj.weight",
      table.linear(D, K, E),
      (K * E, D),
    ),
    entry(
      "layers/w_v_LDKE",
      lp + "self_attn.v_proj.weight",
      table.linear(D, K, E),
      (K * E, D),
    ),
    entry(
      "layers/w_o_LHED",
      lp + "self_attn.o_proj.weight",
      table.linear_in(D, H, E),
      (D, H * E),
    ),
    entry(
      "layers/w_gate_LDF",
      lp + "mlp.gate_proj.weight",
      table.linear(D, F),
      (F, D),
    ),
    entry(
      "layers/w_up_LDF", lp + "mlp.up_proj.weight", table.linear(D, F), (F, D)
    ),
    entry(
      "layers/w_down_LFD",
      lp + "mlp.down_proj.weight",
      table.linear(F, D),
      (D, F),
    ),
  ]
  if cfg.qkv_bias:
    out += [
      entry(
        "layers/b_q_LHE",
        lp + "self_attn.q_proj.bias",
        table.reshape(H, E),
        (H * E,),
      ),
      entry(
        "layers/b_k_LKE",
        lp + "self_attn.k_proj.bias",
        table.reshape(K, E),
        (K * E,),
      ),
      entry(
        "layers/b_v_LKE",
        lp + "self_attn.v_proj.bias",
        table.reshape(K, E),
        (K * E,),
      ),
    ]
  if not cfg.tie_embeddings:
    out.append(
      entry("lm_head_DV", "lm_head.weight", table.linear(D, V), (V, D))
    )
  return out


def entries(cfg: ModelConfig) -> list:
  return text_entries(cfg)
