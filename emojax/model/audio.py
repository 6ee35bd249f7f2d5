"""Qwen2.5-Omni's audio tower as pure functions over a ParamSpec tree.

Audio arrives as transformers' processor gives it: `input_features_AMF`,
log-mel features of A clips (M mel bins, F frames, padded; see
`emojax.data.audio_features`), and `feature_lens_A`, each clip's real frame
count (`feature_attention_mask.sum(-1)`). As transformers'
`Qwen2_5OmniAudioEncoder`: each clip is cut into chunks of 2 * n_window
frames; a chunk is zeroed past its length, goes through conv1 (GELU, masked)
and conv2 (stride 2, GELU), takes sinusoidal positions from 0, and its
tokens attend only within the chunk; the clip's tokens, concatenated, are
averaged in pairs, normed and projected to the LM width.

Every chunk but a clip's last is full, so the clip's tokens are the chunks'
rows read in order and the whole tower is static-shaped: chunks are the
batch of the attention, and no host layout is needed.

Inside this file X is chunks (A * chunks per clip), W = 2 * n_window frames
per chunk, L = n_window tokens per chunk after conv2, D the tower width, F
its MLP width, H/E its heads and head dim, O the LM width and U audio tokens
per clip.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emojax.model import attention
from emojax.model import params as params_lib
from emojax.model.config import AudioConfig

ParamSpec = params_lib.ParamSpec

# torch.nn.LayerNorm's default epsilon, which the tower's norms keep.
NORM_EPS = 1e-5


def specs(acfg: AudioConfig, dtype="float32") -> dict:
  """ParamSpecs of the tower (convolutions, layers, pool projection)."""
  D, F, H, E = (
    acfg.d_model,
    acfg.encoder_ffn_dim,
    acfg.encoder_attention_heads,
    acfg.head_dim,
  )
  L, M, out = acfg.encoder_layers, acfg.num_mel_bins, acfg.output_dim
  w = params_lib.normal(0.02)
  zeros, ones = params_lib.zeros, params_lib.ones

  def spec(shape, axes, init=w):
    return ParamSpec(tuple(shape), dtype, tuple(axes), init)

  heads = ("layers", "audio_embed", "audio_heads", "head_dim")
  layer = {
    "attn_norm_D": spec((L, D), ("layers", "norm"), ones),
    "attn_norm_bias_D": spec((L, D), ("layers", "norm"), zeros),
    "q_DHE": spec((L, D, H, E), heads),
    "q_bias_HE": spec((L, H, E), ("layers", "audio_heads", "head_dim"), zeros),
    # Whisper's key projection has no bias.
    "k_DHE": spec((L, D, H, E), heads),
    "v_DHE": spec((L, D, H, E), heads),
    "v_bias_HE": spec((L, H, E), ("layers", "audio_heads", "head_dim"), zeros),
    "out_HED": spec(
      (L, H, E, D), ("layers", "audio_heads", "head_dim", "audio_embed")
    ),
    "out_bias_D": spec((L, D), ("layers", "norm"), zeros),
    "mlp_norm_D": spec((L, D), ("layers", "norm"), ones),
    "mlp_norm_bias_D": spec((L, D), ("layers", "norm"), zeros),
    "fc1_DF": spec((L, D, F), ("layers", "audio_embed", "audio_mlp")),
    "fc1_bias_F": spec((L, F), ("layers", "audio_mlp"), zeros),
    "fc2_FD": spec((L, F, D), ("layers", "audio_mlp", "audio_embed")),
    "fc2_bias_D": spec((L, D), ("layers", "norm"), zeros),
  }
  return {
    "conv1_KMD": spec((3, M, D), (None, None, "audio_embed")),
    "conv1_bias_D": spec((D,), ("norm",), zeros),
    "conv2_KDD": spec((3, D, D), (None, None, "audio_embed")),
    "conv2_bias_D": spec((D,), ("norm",), zeros),
    "layers": layer,
    "post_norm_D": spec((D,), ("norm",), ones),
    "post_norm_bias_D": spec((D,), ("norm",), zeros),
    "proj_DO": spec((D, out), ("audio_embed", "embed")),
    "proj_bias_O": spec((out,), ("norm",), zeros),
    # In every Qwen2.5-Omni checkpoint but unused by its forward pass;
    # kept so an export is the checkpoint that was imported.
    "bos_eos_2O": spec((2, out), (None, "embed")),
  }


def num_tokens(feature_lens) -> np.ndarray:
  """LM tokens per clip: conv2 halves the frames, the pool halves again.

  transformers' `_get_feat_extract_output_lengths`; the processor puts
  this many `<|AUDIO|>` placeholders in the prompt. numpy in, numpy out;
  a jax array in (inside jit), a jax array out.
  """
  lens = feature_lens
  if not isinstance(lens, jax.Array):
    lens = np.asarray(lens, np.int64)
  after_conv = (lens - 1) // 2 + 1
  return (after_conv - 2) // 2 + 1


def check_inputs(acfg: AudioConfig, input_features, feature_lens) -> None:
  """Raises a readable error for features the tower cannot take."""
  shape = np.shape(input_features)
  lens = np.asarray(feature_lens)
  if len(shape) != 3 or shape[1] != acfg.num_mel_bins:
    raise ValueError(
      f"input_features has shape {shape}; the audio tower wants [clips, "
      f"{acfg.num_mel_bins} mel bins, frames]. Compute them with "
      "emojax.data.audio_features.log_mel (Whisper's features)."
    )
  if lens.shape != (shape[0],):
    raise ValueError(
      f"feature_lens has shape {lens.shape}; it must give one frame count "
      f"per clip ({shape[0]} clips)."
    )
  # Under 3 frames a clip gives no LM token (`num_tokens`).
  bad = np.flatnonzero((lens < 3) | (lens > shape[2]))
  if len(bad):
    i = int(bad[0])
    raise ValueError(
      f"clip {i}: feature_lens={int(lens[i])} frames, but a clip needs at "
      f"least 3 frames (30 ms, one audio token) and at most the {shape[2]} "
      "frames of input_features."
    )


def _gelu(x):
  return jax.nn.gelu(x, approximate=False)


def _conv(x_XWC, w_KCD, b_D, stride: int):
  """Conv1d with kernel 3 and padding 1 over frames, as torch's."""
  y = jax.lax.conv_general_dilated(
    x_XWC,
    w_KCD,
    window_strides=(stride,),
    padding=[(1, 1)],
    dimension_numbers=("NWC", "WIO", "NWC"),
  )
  return y + b_D[None, None]


def positions(length: int, channels: int) -> np.ndarray:
  """Whisper's sinusoids [length, channels]: sin half, then cos half."""
  increment = np.log(10000.0) / (channels // 2 - 1)
  inv = np.exp(-increment * np.arange(channels // 2, dtype=np.float32))
  t = np.arange(length, dtype=np.float32)[:, None] * inv[None]
  return np.concatenate([np.sin(t), np.cos(t)], 1).astype(np.float32)


def layer_norm(x, scale, bias, eps: float = NORM_EPS):
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, -1, keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), -1, keepdims=True)
  y = (x32 - mean) * jax.lax.rsqrt(var + eps)
  lead = (None,) * (x.ndim - 1)
  y = y * scale.astype(jnp.float32)[lead] + bias.astype(jnp.float32)[lead]
  return y.astype(x.dtype)


def chunk(acfg: AudioConfig, input_features_AMF, feature_lens_A):
  """Clips as chunks `x_XWM` (zeroed past each chunk's end), each chunk's
  frame count `lens_X` and its frame mask `frame_valid_XW`."""
  A, M, F = input_features_AMF.shape
  W = 2 * acfg.n_window
  C = -(-F // W)
  x_AFM = jnp.swapaxes(input_features_AMF, 1, 2)
  x_AFM = jnp.pad(x_AFM, ((0, 0), (0, C * W - F), (0, 0)))
  lens_AC = (
    jnp.asarray(feature_lens_A, jnp.int32)[:, None] - W * jnp.arange(C)[None]
  )
  lens_X = jnp.clip(lens_AC, 0, W).reshape(-1)
  frame_valid_XW = jnp.arange(W)[None] < lens_X[:, None]
  x_XWM = x_AFM.reshape(A * C, W, M) * frame_valid_XW[..., None]
  return x_XWM, lens_X, frame_valid_XW


def real_chunks(
  acfg: AudioConfig, feature_lens, num_frames: int, bucket: int = 8
) -> np.ndarray:
  """Host side: the flat ids (clip * chunks per clip + chunk) of the chunks
  that hold frames, padded with the id one past the last chunk to a
  multiple of `bucket` (batches then share compiled programs)."""
  W = 2 * acfg.n_window
  C = -(-num_frames // W)
  lens = np.asarray(feature_lens, np.int64)
  ids = [a * C + c for a, n in enumerate(lens) for c in range(-(-n // W))]
  size = max(-(-len(ids) // bucket) * bucket, bucket)
  return np.asarray(ids + [len(lens) * C] * (size - len(ids)), np.int32)


def encode(
  params: dict,
  acfg: AudioConfig,
  input_features_AMF: jax.Array,
  feature_lens_A: jax.Array,
  dtype=jnp.float32,
  impl: str = "xla",
  chunks_Y=None,
) -> jax.Array:
  """Audio tokens `out_AUO`: clip a's first `num_tokens(len_a)` rows count.

  U = chunks per clip * n_window / 2 (rounded up); rows past a clip's
  token count are padding. `chunks_Y` (from `real_chunks`, host side)
  names the chunks that hold frames, so only those go through the layers;
  without it every chunk of the padded features does.
  """
  with jax.named_scope("audio"):
    p = jax.tree.map(lambda a: a.astype(dtype), params)
    A = input_features_AMF.shape[0]
    x_XWM, lens_X, frame_valid_XW = chunk(
      acfg, input_features_AMF.astype(dtype), feature_lens_A
    )
    if chunks_Y is None:
      h_XLD = chunk_layers(p, acfg, x_XWM, lens_X, frame_valid_XW, impl)
    else:  # chunk X (one past the last): an appended empty one
      X = x_XWM.shape[0]
      pick = lambda a: jnp.concatenate([a, jnp.zeros_like(a[:1])])[chunks_Y]
      picked = map(pick, (x_XWM, lens_X, frame_valid_XW))
      h_YLD = chunk_layers(p, acfg, *picked, impl)
      h_XLD = jnp.zeros((X + 1, *h_YLD.shape[1:]), h_YLD.dtype)
      h_XLD = h_XLD.at[chunks_Y].set(h_YLD)[:X]
    return pool_project(p, h_XLD.reshape(A, -1, h_XLD.shape[-1]))


def chunk_layers(p, acfg: AudioConfig, x_XWM, lens_X, frame_valid_XW, impl):
  """Convolutions, positions and the layers over chunks: `h_XLD`."""
  h_XWD = _gelu(_conv(x_XWM, p["conv1_KMD"], p["conv1_bias_D"], 1))
  h_XWD = h_XWD * frame_valid_XW[..., None]
  h_XLD = _gelu(_conv(h_XWD, p["conv2_KDD"], p["conv2_bias_D"], 2))
  L = h_XLD.shape[1]
  h_XLD = h_XLD + jnp.asarray(positions(L, acfg.d_model), h_XLD.dtype)[None]
  tokens_X = (lens_X - 1) // 2 + 1
  valid_XL = (jnp.arange(L)[None] < tokens_X[:, None]).astype(jnp.int32)

  def body(h_XLD, layer):
    return block(layer, acfg, h_XLD, valid_XL, impl), None

  h_XLD, _ = jax.lax.scan(body, h_XLD, p["layers"])
  return h_XLD


def pool_project(p, h_ATD):
  """Pairs of a clip's tokens averaged, then post-norm and projection."""
  A, T, D = h_ATD.shape
  h_ATD = jnp.pad(h_ATD, ((0, 0), (0, T % 2), (0, 0)))
  h_AUD = h_ATD.reshape(A, -1, 2, D).mean(2)
  h_AUD = layer_norm(h_AUD, p["post_norm_D"], p["post_norm_bias_D"])
  return h_AUD @ p["proj_DO"] + p["proj_bias_O"][None, None]


def block(p, acfg: AudioConfig, h_XLD, valid_XL, impl: str):
  """One pre-norm Whisper layer: attention within the chunk, GELU MLP."""
  x_XLD = layer_norm(h_XLD, p["attn_norm_D"], p["attn_norm_bias_D"])
  q_XLHE = jnp.einsum("xld,dhe->xlhe", x_XLD, p["q_DHE"])
  q_XLHE = q_XLHE + p["q_bias_HE"][None, None]
  k_XLHE = jnp.einsum("xld,dhe->xlhe", x_XLD, p["k_DHE"])
  v_XLHE = jnp.einsum("xld,dhe->xlhe", x_XLD, p["v_DHE"])
  v_XLHE = v_XLHE + p["v_bias_HE"][None, None]
  index_XL = jnp.zeros_like(valid_XL)
  o_XLHE = attention.attend(
    q_XLHE,
    k_XLHE,
    v_XLHE,
    q_segment_BT=valid_XL,
    kv_segment_BS=valid_XL,
    q_index_BT=index_XL,
    kv_index_BS=index_XL,
    causal=False,
    impl=impl,
  )
  out_XLD = jnp.einsum("xlhe,hed->xld", o_XLHE, p["out_HED"])
  h_XLD = h_XLD + out_XLD + p["out_bias_D"][None, None]
  x_XLD = layer_norm(h_XLD, p["mlp_norm_D"], p["mlp_norm_bias_D"])
  x_XLF = _gelu(x_XLD @ p["fc1_DF"] + p["fc1_bias_F"][None, None])
  h_XLD = h_XLD + x_XLF @ p["fc2_FD"] + p["fc2_bias_D"][None, None]
  if h_XLD.dtype == jnp.float16:  # As transformers: keep fp16 finite.
    big = float(jnp.finfo(jnp.float16).max) - 1000
    h_XLD = jnp.clip(h_XLD, -big, big)
  return h_XLD
