"""Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`): config and tensor table.

The text model is Qwen2's table. Checkpoints name tensors in one of two
layouts: the released one (`model.layers.*`, `visual.*`, which transformers
5 still writes) and transformers' in-memory one (`model.language_model.*`,
`model.visual.*`); `canonical_name` maps the latter onto the former, and
export writes the released layout, which every transformers version loads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from emojax.hf import qwen2, table
from emojax.hf.errors import CheckpointError
from emojax.model import vision
from emojax.model.config import ModelConfig, VisionConfig

ARCHITECTURES = {"Qwen2_5_VLForConditionalGeneration": "qwen2_5_vl"}
IGNORED_SUFFIXES = qwen2.IGNORED_SUFFIXES
IGNORED_PREFIXES = qwen2.IGNORED_PREFIXES
VISION_PREFIX = "visual."
_RENAMES = (
  (re.compile(r"^model\.visual\."), "visual."),
  (re.compile(r"^model\.language_model\."), "model."),
)


def canonical_name(name: str) -> str:
  """A tensor name in the released layout, whichever layout it came in."""
  for pattern, repl in _RENAMES:
    name = pattern.sub(repl, name)
  return name


def _text_part(hf: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, ...]]:
  """Text fields (top level or `text_config`) and the mrope sections."""
  text = {k: v for k, v in hf.items() if k not in ("text_config",)}
  text |= hf.get("text_config") or {}
  rope = dict(text.get("rope_scaling") or {})
  rope |= text.get("rope_parameters") or {}
  section = rope.get("mrope_section")
  theta = rope.get("rope_theta", text.get("rope_theta", 1e6))
  # "mrope" is default rotary frequencies applied to 3-D positions.
  text["rope_scaling"] = None
  text["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
  text["architectures"] = ["Qwen2ForCausalLM"]
  return text, tuple(section) if section else ()


def _vision_config(v: dict[str, Any], where: str) -> VisionConfig:
  if v.get("hidden_act", "silu") != "silu":
    raise CheckpointError(
      f"{where}: vision_config.hidden_act={v['hidden_act']!r}; Qwen2.5-VL's "
      "tower is SwiGLU ('silu'), the only one emojax implements."
    )
  theta = (v.get("rope_parameters") or {}).get("rope_theta", vision.ROPE_THETA)
  if float(theta) != vision.ROPE_THETA:
    raise CheckpointError(
      f"{where}: vision rope_theta={theta}; emojax's tower uses "
      f"{vision.ROPE_THETA} as Qwen2.5-VL does."
    )
  return VisionConfig(
    depth=int(v["depth"]),
    hidden_size=int(v["hidden_size"]),
    intermediate_size=int(v["intermediate_size"]),
    num_heads=int(v["num_heads"]),
    in_channels=int(v.get("in_channels", v.get("in_chans", 3))),
    patch_size=int(v.get("patch_size", v.get("spatial_patch_size", 14))),
    spatial_merge_size=int(v.get("spatial_merge_size", 2)),
    temporal_patch_size=int(v.get("temporal_patch_size", 2)),
    window_size=int(v.get("window_size", 112)),
    fullatt_block_indexes=tuple(int(i) for i in v["fullatt_block_indexes"]),
    out_hidden_size=int(v["out_hidden_size"]),
    tokens_per_second=v.get("tokens_per_second", 2),
  )


def config_from_hf(hf: dict[str, Any], where: str) -> ModelConfig:
  """A `ModelConfig` (with `vision`) from either config.json layout."""
  text, section = _text_part(hf)
  if not section:
    raise CheckpointError(
      f"{where}: no mrope_section in rope_scaling/rope_parameters; a "
      "Qwen2.5-VL config needs it (e.g. [16, 24, 24])."
    )
  cfg = qwen2.config_from_hf(text, where)
  if 2 * sum(section) != cfg.head_dim:
    raise CheckpointError(
      f"{where}: mrope_section {list(section)} covers {2 * sum(section)} "
      f"dims but head_dim is {cfg.head_dim}; they must be equal."
    )
  if "vision_config" not in hf:
    raise CheckpointError(f"{where}: no vision_config.")
  vcfg = _vision_config(hf["vision_config"], where)
  return cfg.replace(
    family="qwen2_5_vl",
    mrope_section=section,
    vision=vcfg,
    tie_embeddings=bool(hf.get("tie_word_embeddings", cfg.tie_embeddings)),
    image_token_id=int(hf.get("image_token_id", cfg.image_token_id)),
    video_token_id=int(hf.get("video_token_id", cfg.video_token_id)),
    vision_start_token_id=int(
      hf.get("vision_start_token_id", cfg.vision_start_token_id)
    ),
  )


def config_to_hf(cfg: ModelConfig, dtype: str) -> dict[str, Any]:
  """config.json in the released layout (text fields at the top level).

  vision end and vision pad ids follow vision start, as in Qwen's vocab.
  """
  out = qwen2.config_to_hf(cfg.replace(family="qwen2"), dtype)
  del out["rope_parameters"]
  v = cfg.vision
  return out | {
    "architectures": list(ARCHITECTURES),
    "model_type": "qwen2_5_vl",
    "rope_scaling": {"type": "mrope", "mrope_section": list(cfg.mrope_section)},
    "image_token_id": cfg.image_token_id,
    "video_token_id": cfg.video_token_id,
    "vision_start_token_id": cfg.vision_start_token_id,
    "vision_end_token_id": cfg.vision_start_token_id + 1,
    "vision_token_id": cfg.vision_start_token_id + 2,
    "vision_config": {
      "model_type": "qwen2_5_vl",
      "depth": v.depth,
      "hidden_size": v.hidden_size,
      "intermediate_size": v.intermediate_size,
      "num_heads": v.num_heads,
      "in_chans": v.in_channels,
      "in_channels": v.in_channels,
      "patch_size": v.patch_size,
      "spatial_patch_size": v.patch_size,
      "spatial_merge_size": v.spatial_merge_size,
      "temporal_patch_size": v.temporal_patch_size,
      "window_size": v.window_size,
      "fullatt_block_indexes": list(v.fullatt_block_indexes),
      "out_hidden_size": v.out_hidden_size,
      "hidden_act": "silu",
      "tokens_per_second": v.tokens_per_second,
    },
  }


def _conv_patch(D: int, hf_shape):
  """Conv3d weight [D, C, t, p, p] <-> emojax `patch_embed_CD`."""

  def to_emojax(w):
    return np.asarray(w).reshape(D, -1).T

  def to_hf(w):
    return np.asarray(w).T.reshape(hf_shape)

  return to_emojax, to_hf


def vision_entries(v: VisionConfig, out_dim: int) -> list[table.Entry]:
  """The tower's table; layered names hold `{i}` over `v.depth` blocks."""
  D, F, H, E = v.hidden_size, v.intermediate_size, v.num_heads, v.head_dim
  M = D * v.spatial_merge_size**2
  conv_shape = (
    D,
    v.in_channels,
    v.temporal_patch_size,
    v.patch_size,
    v.patch_size,
  )
  bp = VISION_PREFIX + "blocks.{i}."
  same = (table.identity, table.identity)

  def entry(path, hf, transforms, hf_shape):
    return table.Entry(("vision", *path.split("/")), hf, *transforms, hf_shape)

  return [
    entry(
      "patch_embed_CD",
      VISION_PREFIX + "patch_embed.proj.weight",
      _conv_patch(D, conv_shape),
      conv_shape,
    ),
    entry("layers/norm1_D", bp + "norm1.weight", same, (D,)),
    entry("layers/norm2_D", bp + "norm2.weight", same, (D,)),
    entry(
      "layers/qkv_D3HE",
      bp + "attn.qkv.weight",
      table.linear(D, 3, H, E),
      (3 * D, D),
    ),
    entry(
      "layers/qkv_bias_3HE",
      bp + "attn.qkv.bias",
      table.reshape(3, H, E),
      (3 * D,),
    ),
    entry(
      "layers/out_HED",
      bp + "attn.proj.weight",
      table.linear_in(D, H, E),
      (D, D),
    ),
    entry("layers/out_bias_D", bp + "attn.proj.bias", same, (D,)),
    entry(
      "layers/gate_DF", bp + "mlp.gate_proj.weight", table.linear(D, F), (F, D)
    ),
    entry("layers/gate_bias_F", bp + "mlp.gate_proj.bias", same, (F,)),
    entry(
      "layers/up_DF", bp + "mlp.up_proj.weight", table.linear(D, F), (F, D)
    ),
    entry("layers/up_bias_F", bp + "mlp.up_proj.bias", same, (F,)),
    entry(
      "layers/down_FD", bp + "mlp.down_proj.weight", table.linear(F, D), (D, F)
    ),
    entry("layers/down_bias_D", bp + "mlp.down_proj.bias", same, (D,)),
    entry("merger/norm_D", VISION_PREFIX + "merger.ln_q.weight", same, (D,)),
    entry(
      "merger/fc1_MM",
      VISION_PREFIX + "merger.mlp.0.weight",
      table.linear(M, M),
      (M, M),
    ),
    entry("merger/fc1_bias_M", VISION_PREFIX + "merger.mlp.0.bias", same, (M,)),
    entry(
      "merger/fc2_MO",
      VISION_PREFIX + "merger.mlp.2.weight",
      table.linear(M, out_dim),
      (out_dim, M),
    ),
    entry(
      "merger/fc2_bias_O",
      VISION_PREFIX + "merger.mlp.2.bias",
      same,
      (out_dim,),
    ),
  ]


def entries(cfg: ModelConfig) -> list[table.Entry]:
  return qwen2.text_entries(cfg) + vision_entries(cfg.vision, cfg.hidden_size)


def from_tensors(cfg: ModelConfig, tensors: Mapping[str, Any]) -> dict:
  """In-memory import: {HF name: array} (either layout) -> emojax params."""
  return table.from_tensors(entries(cfg), tensors, canonical_name, _layers(cfg))


def to_tensors(cfg: ModelConfig, params) -> dict[str, np.ndarray]:
  """In-memory export: emojax params -> {HF name: array}, released layout."""
  return table.to_tensors(entries(cfg), params)


def _layers(cfg: ModelConfig):
  return lambda e: cfg.vision.depth if e.path[0] == "vision" else cfg.num_layers
