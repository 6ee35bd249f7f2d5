"""Qwen2.5-Omni's thinker: config and tensor table (text, vision, audio).

Two checkpoints hold a thinker: `Qwen2_5OmniThinkerForConditionalGeneration`
(tensors `model.*`, `visual.*`, `audio_tower.*`, `lm_head.weight`, or the
in-memory `model.language_model.*`, `model.visual.*`, `model.audio_tower.*`)
and the released folder (`Qwen2_5OmniModel` in its config.json, or
transformers' `Qwen2_5OmniForConditionalGeneration`: the same under
`thinker.`, beside the `talker.*` and `token2wav.*` that turn text into
speech). emojax reads the thinker, the part that listens, looks and writes
text, and exports it as a thinker checkpoint; the speech-output modules
are skipped on import, by name (`IGNORED_PREFIXES`).

The text model is Qwen2's table with Qwen2.5-VL's 3-D rotary sections; the
vision tower is Qwen2.5-VL's function with q, k and v stored apart (three
parts of emojax's fused `qkv_D3HE`); the audio tower is `emojax.model.audio`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from emojax.hf import qwen2, qwen2_5_vl, table
from emojax.hf.errors import CheckpointError
from emojax.model.config import AudioConfig, ModelConfig

ARCHITECTURES = {
  "Qwen2_5OmniThinkerForConditionalGeneration": "qwen2_5_omni",
  "Qwen2_5OmniForConditionalGeneration": "qwen2_5_omni",
  # What the released Qwen2.5-Omni-7B/3B config.json names (as vLLM and
  # llama.cpp register it): the same thinker + talker + token2wav folder.
  "Qwen2_5OmniModel": "qwen2_5_omni",
}
IGNORED_SUFFIXES = qwen2.IGNORED_SUFFIXES
# Speech output (text -> speech tokens -> waveform), not part of the thinker.
IGNORED_PREFIXES = ("talker.", "token2wav.")
AUDIO_PREFIX = "audio_tower."
_RENAMES = (
  (re.compile(r"^thinker\."), ""),
  (re.compile(r"^model\.audio_tower\."), "audio_tower."),
)


def canonical_name(name: str) -> str:
  """A thinker tensor name in the saved layout, whichever layout it came in.

  Past the `thinker.` prefix and the audio tower, the names are
  Qwen2.5-VL's.
  """
  for pattern, repl in _RENAMES:
    name = pattern.sub(repl, name)
  return qwen2_5_vl.canonical_name(name)


def _audio_config(a: dict[str, Any], where: str) -> AudioConfig:
  if a.get("activation_function", "gelu") != "gelu":
    raise CheckpointError(
      f"{where}: audio_config.activation_function="
      f"{a['activation_function']!r}; Qwen2.5-Omni's tower is 'gelu', the "
      "only one emojax implements."
    )
  if a.get("scale_embedding", False):
    raise CheckpointError(
      f"{where}: audio_config.scale_embedding=true is not implemented "
      "(Qwen2.5-Omni leaves it false)."
    )
  return AudioConfig(
    num_mel_bins=int(a["num_mel_bins"]),
    encoder_layers=int(a["encoder_layers"]),
    encoder_attention_heads=int(a["encoder_attention_heads"]),
    encoder_ffn_dim=int(a["encoder_ffn_dim"]),
    d_model=int(a["d_model"]),
    max_source_positions=int(a.get("max_source_positions", 1500)),
    n_window=int(a.get("n_window", 100)),
    output_dim=int(a["output_dim"]),
  )


def _with_mrope_section(text: dict[str, Any]) -> dict[str, Any]:
  """The text config with its rotary sections; transformers' Omni rotary
  falls back to (16, 24, 24) where the config names none (its own default
  config does not)."""
  rope = dict(text.get("rope_scaling") or {}) | (
    text.get("rope_parameters") or {}
  )
  if rope.get("mrope_section"):
    return text
  params = dict(text.get("rope_parameters") or {})
  params.setdefault("rope_theta", text.get("rope_theta", 1e6))
  return text | {"rope_parameters": params | {"mrope_section": [16, 24, 24]}}


def _text_ids(thinker: dict[str, Any]) -> dict[str, Any]:
  """The text config, with eos/pad ids from the thinker level where the
  text config leaves them out (released thinker configs keep them there)."""
  text = dict(thinker["text_config"])
  for key in ("eos_token_id", "pad_token_id"):
    if text.get(key) is None and thinker.get(key) is not None:
      text[key] = thinker[key]
  return text


def config_from_hf(hf: dict[str, Any], where: str) -> ModelConfig:
  """A `ModelConfig` (vision and audio) from a thinker or full config.json."""
  thinker = hf.get("thinker_config", hf)
  for key in ("text_config", "vision_config", "audio_config"):
    if key not in thinker:
      raise CheckpointError(f"{where}: the thinker config has no {key}.")
  vl = qwen2_5_vl.config_from_hf(
    {
      "text_config": _with_mrope_section(_text_ids(thinker)),
      "vision_config": thinker["vision_config"],
      "tie_word_embeddings": thinker.get("tie_word_embeddings", False),
      "image_token_id": thinker.get("image_token_index", 151655),
      "video_token_id": thinker.get("video_token_index", 151656),
      "vision_start_token_id": thinker.get("vision_start_token_id", 151652),
    },
    where,
  )
  acfg = _audio_config(thinker["audio_config"], where).replace(
    seconds_per_chunk=thinker.get("seconds_per_chunk", 2)
  )
  if acfg.output_dim != vl.hidden_size:
    raise CheckpointError(
      f"{where}: audio_config.output_dim={acfg.output_dim} but the text "
      f"model's hidden_size is {vl.hidden_size}; they must be equal."
    )
  # Time positions come from the thinker's rate, not the vision config's.
  rate = thinker.get("position_id_per_seconds", 25)
  return vl.replace(
    family="qwen2_5_omni",
    vision=dataclasses.replace(vl.vision, tokens_per_second=rate),
    audio=acfg,
    audio_token_id=int(thinker.get("audio_token_index", 151646)),
  )


def config_to_hf(cfg: ModelConfig, dtype: str) -> dict[str, Any]:
  """A thinker config.json (what transformers' thinker class loads).

  Audio start/end ids follow the audio placeholder, as in Qwen's vocab.
  """
  vl = qwen2_5_vl.config_to_hf(cfg.replace(family="qwen2_5_vl"), dtype)
  text_keys = qwen2.config_to_hf(cfg.replace(family="qwen2"), dtype)
  text = {k: vl[k] for k in text_keys if k in vl and k != "architectures"}
  text |= {
    "model_type": "qwen2_5_omni_text",
    "rope_parameters": {
      "rope_type": "default",
      "rope_theta": cfg.rope_theta,
      "mrope_section": list(cfg.mrope_section),
    },
  }
  text.pop("rope_scaling", None)
  return {
    "architectures": ["Qwen2_5OmniThinkerForConditionalGeneration"],
    "model_type": "qwen2_5_omni_thinker",
    "dtype": dtype,
    "tie_word_embeddings": cfg.tie_embeddings,
    "text_config": text,
    "vision_config": vl["vision_config"]
    | {"model_type": "qwen2_5_omni_vision_encoder"},
    "audio_config": audio_config_to_hf(cfg.audio)
    | {"model_type": "qwen2_5_omni_audio_encoder"},
    "audio_token_index": cfg.audio_token_id,
    "audio_start_token_id": cfg.audio_token_id + 1,
    "audio_end_token_id": cfg.audio_token_id + 2,
    "image_token_index": cfg.image_token_id,
    "video_token_index": cfg.video_token_id,
    "vision_start_token_id": cfg.vision_start_token_id,
    "vision_end_token_id": cfg.vision_start_token_id + 1,
    "position_id_per_seconds": cfg.vision.tokens_per_second,
    "seconds_per_chunk": cfg.audio.seconds_per_chunk,
  }


def audio_config_to_hf(a: AudioConfig) -> dict[str, Any]:
  """`audio_config` fields (Qwen2_5OmniAudioEncoderConfig's arguments)."""
  return {
    "num_mel_bins": a.num_mel_bins,
    "encoder_layers": a.encoder_layers,
    "encoder_attention_heads": a.encoder_attention_heads,
    "encoder_ffn_dim": a.encoder_ffn_dim,
    "d_model": a.d_model,
    "max_source_positions": a.max_source_positions,
    "n_window": a.n_window,
    "output_dim": a.output_dim,
    "activation_function": "gelu",
    "scale_embedding": False,
  }


def _reverse_axes(w):
  return np.asarray(w).transpose(2, 1, 0)


# Conv1d weight [out, in, k] <-> emojax [k, in, out]: its own inverse.
_CONV1D = (_reverse_axes, _reverse_axes)


def audio_entries(a: AudioConfig) -> list[table.Entry]:
  """The audio tower's table; layered names hold `{i}` over its layers."""
  D, F, H, E = (
    a.d_model,
    a.encoder_ffn_dim,
    a.encoder_attention_heads,
    a.head_dim,
  )
  M, out = a.num_mel_bins, a.output_dim
  lp = AUDIO_PREFIX + "layers.{i}."
  same = (table.identity, table.identity)

  def entry(path, hf, transforms, hf_shape):
    return table.Entry(("audio", *path.split("/")), hf, *transforms, hf_shape)

  def layer(path, hf, transforms, hf_shape):
    return entry("layers/" + path, lp + hf, transforms, hf_shape)

  return [
    entry("conv1_KMD", AUDIO_PREFIX + "conv1.weight", _CONV1D, (D, M, 3)),
    entry("conv1_bias_D", AUDIO_PREFIX + "conv1.bias", same, (D,)),
    entry("conv2_KDD", AUDIO_PREFIX + "conv2.weight", _CONV1D, (D, D, 3)),
    entry("conv2_bias_D", AUDIO_PREFIX + "conv2.bias", same, (D,)),
    layer("attn_norm_D", "self_attn_layer_norm.weight", same, (D,)),
    layer("attn_norm_bias_D", "self_attn_layer_norm.bias", same, (D,)),
    layer("q_DHE", "self_attn.q_proj.weight", table.linear(D, H, E), (D, D)),
    layer("q_bias_HE", "self_attn.q_proj.bias", table.reshape(H, E), (D,)),
    layer("k_DHE", "self_attn.k_proj.weight", table.linear(D, H, E), (D, D)),
    layer("v_DHE", "self_attn.v_proj.weight", table.linear(D, H, E), (D, D)),
    layer("v_bias_HE", "self_attn.v_proj.bias", table.reshape(H, E), (D,)),
    layer(
      "out_HED", "self_attn.out_proj.weight", table.linear_in(D, H, E), (D, D)
    ),
    layer("out_bias_D", "self_attn.out_proj.bias", same, (D,)),
    layer("mlp_norm_D", "final_layer_norm.weight", same, (D,)),
    layer("mlp_norm_bias_D", "final_layer_norm.bias", same, (D,)),
    layer("fc1_DF", "fc1.weight", table.linear(D, F), (F, D)),
    layer("fc1_bias_F", "fc1.bias", same, (F,)),
    layer("fc2_FD", "fc2.weight", table.linear(F, D), (D, F)),
    layer("fc2_bias_D", "fc2.bias", same, (D,)),
    entry("post_norm_D", AUDIO_PREFIX + "ln_post.weight", same, (D,)),
    entry("post_norm_bias_D", AUDIO_PREFIX + "ln_post.bias", same, (D,)),
    entry(
      "proj_DO", AUDIO_PREFIX + "proj.weight", table.linear(D, out), (out, D)
    ),
    entry("proj_bias_O", AUDIO_PREFIX + "proj.bias", same, (out,)),
    entry(
      "bos_eos_2O",
      AUDIO_PREFIX + "audio_bos_eos_token.weight",
      same,
      (2, out),
    ),
  ]


def _fused_qkv(D: int, H: int, E: int):
  """q, k, v weights stacked [3, D, D] <-> emojax `qkv_D3HE`."""

  def to_emojax(w_3OI):
    return np.asarray(w_3OI).transpose(2, 0, 1).reshape(D, 3, H, E)

  def to_hf(w):
    return np.asarray(w).reshape(D, 3, D).transpose(1, 2, 0)

  return to_emojax, to_hf


def vision_entries(cfg: ModelConfig) -> list[table.Entry]:
  """Qwen2.5-VL's vision table with q, k and v as three tensors each."""
  v = cfg.vision
  D, H, E = v.hidden_size, v.num_heads, v.head_dim
  bp = qwen2_5_vl.VISION_PREFIX + "blocks.{i}."
  fused = {
    ("vision", "layers", "qkv_D3HE"): table.Entry(
      ("vision", "layers", "qkv_D3HE"),
      bp + "attn.{part}.weight",
      *_fused_qkv(D, H, E),
      (D, D),
      parts=("q", "k", "v"),
    ),
    ("vision", "layers", "qkv_bias_3HE"): table.Entry(
      ("vision", "layers", "qkv_bias_3HE"),
      bp + "attn.{part}.bias",
      lambda b_3O: np.asarray(b_3O).reshape(3, H, E),
      lambda b: np.asarray(b).reshape(3, D),
      (D,),
      parts=("q", "k", "v"),
    ),
  }
  return [
    fused.get(e.path, e) for e in qwen2_5_vl.vision_entries(v, cfg.hidden_size)
  ]


def entries(cfg: ModelConfig) -> list[table.Entry]:
  return (
    qwen2.text_entries(cfg) + vision_entries(cfg) + audio_entries(cfg.audio)
  )


def _layers(cfg: ModelConfig):
  depth = {"vision": cfg.vision.depth, "audio": cfg.audio.encoder_layers}
  return lambda e: depth.get(e.path[0], cfg.num_layers)


def from_tensors(cfg: ModelConfig, tensors: Mapping[str, Any]) -> dict:
  """In-memory import: {HF name: array} (any thinker layout) -> params."""
  return table.from_tensors(entries(cfg), tensors, canonical_name, _layers(cfg))


def to_tensors(cfg: ModelConfig, params) -> dict[str, np.ndarray]:
  """In-memory export: emojax params -> {HF name: array}, saved layout."""
  return table.to_tensors(entries(cfg), params)
