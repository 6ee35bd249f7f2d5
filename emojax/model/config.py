"""Model configuration: one frozen dataclass per tower, plus presets.

`ModelConfig` is hashable so it can be a static argument of `jax.jit`.
Field names follow transformers' config.json where one exists, so the HF
importer is a rename table and nothing more.
"""

from __future__ import annotations

import dataclasses
from typing import Any

ATTENTION_IMPLS = ("xla", "cudnn", "pallas")
# Completion logprobs: XLA over vocab chunks, or the fused Pallas kernel.
LOGPROB_IMPLS = ("chunked", "fused")
FAMILIES = ("qwen2", "llama", "qwen2_5_vl", "qwen2_5_omni")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """Llama-3 style frequency scaling (`rope_type: llama3` in HF)."""

  factor: float = 8.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class VisionConfig:
  """The Qwen2.5-VL vision tower (`vision_config` in HF's config.json)."""

  depth: int = 32
  hidden_size: int = 1280
  intermediate_size: int = 3420
  num_heads: int = 16
  in_channels: int = 3
  patch_size: int = 14
  spatial_merge_size: int = 2
  temporal_patch_size: int = 2
  window_size: int = 112
  fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
  out_hidden_size: int = 3584
  rms_norm_eps: float = 1e-6
  # A video's temporal rotary positions per second (M-RoPE's time axis).
  tokens_per_second: float = 2

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads


@dataclasses.dataclass(frozen=True)
class AudioConfig:
  """Qwen2.5-Omni's Whisper-style audio tower (`audio_config` in HF).

  Log-mel frames (100 a second) are cut into chunks of 2 * n_window frames
  that attend only within themselves; two convolutions (the second with
  stride 2) and a final stride-2 average pool give one LM token per 4
  frames (25 a second).
  """

  num_mel_bins: int = 128
  encoder_layers: int = 32
  encoder_attention_heads: int = 20
  encoder_ffn_dim: int = 5120
  d_model: int = 1280
  max_source_positions: int = 1500
  n_window: int = 100
  output_dim: int = 3584
  # A video's soundtrack interleaves with its frames in chunks of this
  # many seconds (the thinker's `seconds_per_chunk`; `emojax.model.tmrope`).
  seconds_per_chunk: float = 2

  @property
  def head_dim(self) -> int:
    return self.d_model // self.encoder_attention_heads

  def replace(self, **kw: Any) -> AudioConfig:
    return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A decoder-only language model, optionally with vision and audio
  towers (Qwen2.5-VL, Qwen2.5-Omni's thinker)."""

  family: str = "qwen2"
  vocab_size: int = 152064
  hidden_size: int = 3584
  intermediate_size: int = 18944
  num_layers: int = 28
  num_heads: int = 28
  num_kv_heads: int = 4
  head_dim: int = 128
  rope_theta: float = 1e6
  rope_scaling: RopeScaling | None = None
  # Qwen2.5-VL's multimodal rotary sections (temporal, height, width), in
  # units of rotary frequency pairs; None means plain 1-D RoPE.
  mrope_section: tuple[int, ...] | None = None
  rms_norm_eps: float = 1e-6
  qkv_bias: bool = True
  tie_embeddings: bool = False
  max_position_embeddings: int = 32768
  # Compute and storage dtypes: params are stored in `param_dtype` (fp32
  # master weights) and cast to `dtype` for the forward pass.
  dtype: str = "float32"
  param_dtype: str = "float32"
  attention: str = "xla"
  logprobs: str = "chunked"
  # lax.scan over stacked layers: one layer is compiled once. Unrolled
  # layers compile slower but let XLA overlap across layer boundaries.
  scan_layers: bool = True
  # Recompute each layer's activations in the backward pass.
  remat: bool = False
  vision: VisionConfig | None = None
  audio: AudioConfig | None = None
  # Special token ids the VLM merge step needs (Qwen2.5-VL's defaults).
  image_token_id: int = 151655
  video_token_id: int = 151656
  vision_start_token_id: int = 151652
  # Qwen2.5-Omni's `<|AUDIO|>` placeholder (one per audio token).
  audio_token_id: int = 151646
  eos_token_ids: tuple[int, ...] = (151645,)
  pad_token_id: int = 151643

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(
        f"ModelConfig.family={self.family!r}; supported: {FAMILIES}."
      )
    if self.attention not in ATTENTION_IMPLS:
      raise ValueError(
        f"ModelConfig.attention={self.attention!r}; choose one of "
        f"{ATTENTION_IMPLS}."
      )
    if self.logprobs not in LOGPROB_IMPLS:
      raise ValueError(
        f"ModelConfig.logprobs={self.logprobs!r}; choose one of "
        f"{LOGPROB_IMPLS}."
      )
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
        f"num_heads={self.num_heads} must be a multiple of "
        f"num_kv_heads={self.num_kv_heads} (grouped-query attention)."
      )

  def replace(self, **kw: Any) -> ModelConfig:
    return dataclasses.replace(self, **kw)


def qwen2_5_7b() -> ModelConfig:
  """Qwen2.5-7B-Instruct's text decoder (about 7.6B parameters)."""
  return ModelConfig(
    family="qwen2",
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_layers=28,
    num_heads=28,
    num_kv_heads=4,
    head_dim=128,
    rope_theta=1e6,
    rms_norm_eps=1e-6,
    qkv_bias=True,
    tie_embeddings=False,
    max_position_embeddings=32768,
  )


def qwen2_5_1_5b() -> ModelConfig:
  """Qwen2.5-1.5B(-Instruct): tied embeddings, 2 kv heads."""
  return ModelConfig(
    family="qwen2",
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_layers=28,
    num_heads=12,
    num_kv_heads=2,
    head_dim=128,
    rope_theta=1e6,
    rms_norm_eps=1e-6,
    qkv_bias=True,
    tie_embeddings=True,
  )


def llama3_2_1b() -> ModelConfig:
  """Llama-3.2-1B(-Instruct), the reasoning-infused text recipe's base."""
  return ModelConfig(
    family="llama",
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_layers=16,
    num_heads=32,
    num_kv_heads=8,
    head_dim=64,
    rope_theta=500000.0,
    rope_scaling=RopeScaling(factor=32.0),
    rms_norm_eps=1e-5,
    qkv_bias=False,
    tie_embeddings=True,
    max_position_embeddings=131072,
    eos_token_ids=(128001, 128008, 128009),
    pad_token_id=128004,
  )


def tiny_text(vocab_size: int = 512) -> ModelConfig:
  """A few-hundred-thousand-parameter Qwen2 for tests."""
  return ModelConfig(
    family="qwen2",
    vocab_size=vocab_size,
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    rope_theta=10000.0,
    max_position_embeddings=2048,
    eos_token_ids=(vocab_size - 1,),
    pad_token_id=0,
  )


PRESETS = {
  "qwen2_5_7b": qwen2_5_7b,
  "qwen2_5_1_5b": qwen2_5_1_5b,
  "llama3_2_1b": llama3_2_1b,
  "tiny_text": tiny_text,
}


def qwen2_5_vl_7b() -> ModelConfig:
  """Qwen2.5-VL-7B-Instruct (config.json of the released checkpoint)."""
  return qwen2_5_7b().replace(
    family="qwen2_5_vl",
    max_position_embeddings=128000,
    mrope_section=(16, 24, 24),
    vision=VisionConfig(
      depth=32,
      hidden_size=1280,
      intermediate_size=3420,
      num_heads=16,
      in_channels=3,
      patch_size=14,
      spatial_merge_size=2,
      temporal_patch_size=2,
      window_size=112,
      fullatt_block_indexes=(7, 15, 23, 31),
      out_hidden_size=3584,
    ),
    image_token_id=151655,
    video_token_id=151656,
    vision_start_token_id=151652,
    eos_token_ids=(151645,),
    pad_token_id=151643,
  )


def tiny_vlm(vocab_size: int = 512) -> ModelConfig:
  """A ~3M-parameter Qwen2.5-VL for 48-96 px faces (tests, embedded runs).

  8 px patches, so a 64 px face is an 8x8 patch grid, 16 LM tokens, and
  2x2 attention windows of 4x4 patches. The top six ids are special, in
  Qwen's order: vision start/end = V-6/V-5, vision pad V-4, image pad V-3,
  video pad V-2, eos V-1.
  """
  return ModelConfig(
    family="qwen2_5_vl",
    vocab_size=vocab_size,
    hidden_size=128,
    intermediate_size=384,
    num_layers=4,
    num_heads=4,
    num_kv_heads=2,
    head_dim=32,
    rope_theta=10000.0,
    # Qwen2.5-VL's (16, 24, 24) of 64 pairs, scaled to 16 pairs.
    mrope_section=(4, 6, 6),
    max_position_embeddings=4096,
    vision=VisionConfig(
      depth=4,
      hidden_size=128,
      intermediate_size=256,
      num_heads=4,
      patch_size=8,
      window_size=32,
      fullatt_block_indexes=(1, 3),
      out_hidden_size=128,
    ),
    image_token_id=vocab_size - 3,
    video_token_id=vocab_size - 2,
    vision_start_token_id=vocab_size - 6,
    eos_token_ids=(vocab_size - 1,),
    pad_token_id=0,
  )


def qwen2_5_omni_7b() -> ModelConfig:
  """Qwen2.5-Omni-7B's thinker (Qwen2.5-VL-7B's shapes plus the audio
  tower; config.json of the released checkpoint)."""
  vl = qwen2_5_vl_7b()
  return vl.replace(
    family="qwen2_5_omni",
    # The thinker's position_id_per_seconds: 25 a second, the rate of the
    # audio tokens, so frames and sound share one time axis.
    vision=dataclasses.replace(vl.vision, tokens_per_second=25),
    max_position_embeddings=32768,
    audio=AudioConfig(),
    audio_token_id=151646,
  )


def tiny_omni(vocab_size: int = 512) -> ModelConfig:
  """`tiny_vlm` that also listens: a 2-layer audio tower on Whisper's 128
  mel bins, 2-s chunks as Qwen2.5-Omni. Audio placeholder, start and end
  are V-9, V-8, V-7 (Qwen's order, below the vision ids)."""
  vlm = tiny_vlm(vocab_size)
  return vlm.replace(
    family="qwen2_5_omni",
    vision=dataclasses.replace(vlm.vision, tokens_per_second=25),
    audio=AudioConfig(
      num_mel_bins=128,
      encoder_layers=2,
      encoder_attention_heads=4,
      encoder_ffn_dim=256,
      d_model=64,
      max_source_positions=1500,
      n_window=100,
      output_dim=vlm.hidden_size,
    ),
    audio_token_id=vocab_size - 9,
  )


def tiny_audio(vocab_size: int = 512) -> ModelConfig:
  """`tiny_text` that listens: `tiny_omni`'s audio tower, no vision tower
  (a speech recipe's embedded model). The audio placeholder id is fitted
  to the tokenizer by the caller."""
  text = tiny_text(vocab_size)
  return text.replace(
    family="qwen2_5_omni",
    audio=tiny_omni(vocab_size).audio.replace(output_dim=text.hidden_size),
  )


PRESETS.update(
  qwen2_5_vl_7b=qwen2_5_vl_7b,
  tiny_audio=tiny_audio,
  tiny_vlm=tiny_vlm,
  qwen2_5_omni_7b=qwen2_5_omni_7b,
  tiny_omni=tiny_omni,
)
