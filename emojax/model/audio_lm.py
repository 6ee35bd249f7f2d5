"""Merging audio into the language model (Qwen2.5-Omni): placeholders, features.

A Qwen2.5-Omni prompt holds each clip as `<|audio_bos|>`, one `<|AUDIO|>`
per audio token (`audio.num_tokens` of its frames), `<|audio_eos|>`. Audio
tokens take ordinary consecutive positions (transformers' rope index gives
them t = h = w), so they need no 3-D positions of their own; a video's
sound interleaves with its frames instead (`tmrope`). The batch
carries transformers' names: `input_features` [clips, mel, frames] and
`feature_attention_mask` [clips, frames] (or `audio_feature_lengths`
[clips]). The host side (`check_batch`) runs on numpy before any compute
and names the row; the device side (`merge`) encodes the clips and writes
their tokens into the placeholders in row-major order, inside jit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emojax.model import audio, placeholders, tmrope, vlm
from emojax.model.config import ModelConfig

CHUNKS_KEY = "audio_chunks"


def specs(cfg: ModelConfig) -> dict:
  """The `audio` subtree added to the decoder's specs."""
  if cfg.audio.output_dim != cfg.hidden_size:
    raise ValueError(
      f"AudioConfig.output_dim={cfg.audio.output_dim} must equal the "
      f"language model's hidden_size={cfg.hidden_size}: the tower writes "
      "audio tokens into token embeddings."
    )
  return {"audio": audio.specs(cfg.audio, cfg.param_dtype)}


def feature_lens(batch: Mapping):
  """Frames per clip, from either of transformers' names (None: no audio).

  As transformers, `feature_attention_mask` wins when both are given.
  """
  mask = batch.get("feature_attention_mask")
  if mask is not None:
    return mask.sum(-1)
  return batch.get("audio_feature_lengths")


def expand_audio_placeholders(
  cfg: ModelConfig, input_ids: Sequence[int], lens
) -> list[int]:
  """Repeats each single `<|AUDIO|>` by its clip's token count, in order."""
  counts = audio.num_tokens(np.asarray(lens).reshape(-1)).tolist()
  return placeholders.expand(
    placeholders.AUDIO, input_ids, cfg.audio_token_id, counts
  )


def check_batch(cfg: ModelConfig, batch: Mapping) -> None:
  """Raises, naming the row and the fix, when clips and prompts disagree."""
  ids_BT = np.asarray(batch["input_ids"])
  features, lens = batch.get("input_features"), feature_lens(batch)
  if cfg.audio is None:
    # Without a tower the placeholder id is an ordinary token (151646 is
    # Qwen2.5's <|object_ref_start|>); only clips are an error.
    if features is not None or lens is not None:
      raise ValueError(
        "the batch has audio (input_features) but the model (family="
        f"{cfg.family!r}) has no audio tower; load a Qwen2.5-Omni "
        "checkpoint or drop the audio."
      )
    return
  if (
    features is None
    and lens is None
    and not np.any(ids_BT == cfg.audio_token_id)
  ):
    return
  if features is None or lens is None:
    raise ValueError(
      "audio placeholders need input_features and feature_attention_mask "
      "(or audio_feature_lengths) together, as the processor returns them."
    )
  audio.check_inputs(cfg.audio, features, lens)
  lens = np.asarray(lens)
  a = cfg.audio_token_id
  placeholders.check(
    placeholders.AUDIO,
    # A video's sound is one run here (tmrope.grouped).
    tmrope.grouped(cfg, ids_BT, batch.get("attention_mask")),
    batch.get("attention_mask"),
    a,
    audio.num_tokens(lens).tolist(),
    lambda j: f"clip {j} ({int(lens[j])} frames)",
    open_ids=(a, a + 1),  # the placeholder, <|audio_bos|>
  )


def prepare(cfg: ModelConfig, batch: Mapping, bucket_chunks: int = 1) -> dict:
  """Host step before jit: checks the clips, crops `input_features` and
  names the chunks that hold frames (`CHUNKS_KEY`).

  The processor pads every clip to 30 s (3000 frames): the crop keeps
  whole chunks up to the longest clip (rounded up to `bucket_chunks`
  chunks), and the tower's layers then run on the named chunks only
  (padded to a multiple of 8), as transformers runs each clip's own
  chunks. Neither changes an output.
  """
  check_batch(cfg, batch)
  out = dict(batch)
  if cfg.audio is None or batch.get("input_features") is None:
    return out
  lens = np.asarray(feature_lens(batch))
  step = 2 * cfg.audio.n_window * bucket_chunks
  keep = -(-int(lens.max()) // step) * step
  out["input_features"] = np.asarray(batch["input_features"])[..., :keep]
  out["audio_feature_lengths"] = lens.astype(np.int32)
  out[CHUNKS_KEY] = audio.real_chunks(cfg.audio, lens, keep)
  out.pop("feature_attention_mask", None)
  return out


def ordered_tokens(out_AUO: jax.Array, lens_A) -> jax.Array:
  """The clips' real tokens back to back `[A * U, O]` (then padding).

  Row g is the g-th audio placeholder of the batch: clip a's tokens follow
  those of clips before it.
  """
  A, U, width = out_AUO.shape
  counts_A = audio.num_tokens(lens_A)
  ends_A = jnp.cumsum(counts_A)
  g = jnp.arange(A * U)
  clip = jnp.minimum(jnp.searchsorted(ends_A, g, side="right"), A - 1)
  within = jnp.clip(g - (ends_A - counts_A)[clip], 0, U - 1)
  return out_AUO.reshape(A * U, width)[clip * U + within]


def merge(params, cfg: ModelConfig, batch: Mapping, x_BTD: jax.Array):
  """`x_BTD` with the clips' audio tokens in the `<|AUDIO|>` slots.

  Outside jit the batch is checked first (`check_batch`); under jit, check
  it on the host before (the rollout engine does).
  """
  if not isinstance(batch["input_ids"], jax.core.Tracer):
    check_batch(cfg, batch)
  if batch.get("input_features") is None:
    return x_BTD
  lens_A = jnp.asarray(feature_lens(batch), jnp.int32)
  out_AUO = audio.encode(
    params["audio"],
    cfg.audio,
    jnp.asarray(batch["input_features"]),
    lens_A,
    dtype=jnp.dtype(cfg.dtype),
    impl=cfg.attention,
    chunks_Y=batch.get(CHUNKS_KEY),
  )
  tokens_GO = ordered_tokens(out_AUO, lens_A)
  return vlm.scatter(x_BTD, tokens_GO, batch["input_ids"], cfg.audio_token_id)
