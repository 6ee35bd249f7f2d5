"""Tiny random transformers models, saved in the real on-disk layout."""

from __future__ import annotations

import numpy as np
import torch
import transformers

TINY = dict(
  vocab_size=128,
  hidden_size=64,
  intermediate_size=96,
  num_hidden_layers=2,
  num_attention_heads=4,
  num_key_value_heads=2,
  max_position_embeddings=512,
  rms_norm_eps=1e-6,
)


def qwen2(tie: bool = False, seed: int = 0, **overrides):
  torch.manual_seed(seed)
  cfg = transformers.Qwen2Config(
    **(TINY | {"rope_theta": 10000.0, "tie_word_embeddings": tie} | overrides)
  )
  model = transformers.Qwen2ForCausalLM(cfg).eval()
  _randomise_norms_and_biases(model)
  return model


def llama(seed: int = 0, **overrides):
  torch.manual_seed(seed)
  rope = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
  }
  cfg = transformers.LlamaConfig(
    **(
      TINY | {"rope_parameters": rope, "tie_word_embeddings": True} | overrides
    )
  )
  model = transformers.LlamaForCausalLM(cfg).eval()
  _randomise_norms_and_biases(model)
  return model


def _randomise_norms_and_biases(model) -> None:
  # HF initialises norms to 1 and biases to 0, which would hide a mix-up
  # of norm weights or a dropped bias; random values make parity strict.
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("norm.weight") or name.endswith(".bias"):
        p.copy_(1.0 + 0.2 * torch.randn_like(p))


def save(model, folder) -> str:
  model.save_pretrained(str(folder), safe_serialization=True)
  return str(folder)


def logits(model, input_ids, attention_mask, position_ids):
  # np.array copies: jax arrays convert to read-only numpy views, which
  # torch warns about.
  with torch.no_grad():
    out = model(
      input_ids=torch.as_tensor(np.array(input_ids)),
      attention_mask=torch.as_tensor(np.array(attention_mask)),
      position_ids=torch.as_tensor(np.array(position_ids)),
    )
  return out.logits.float().numpy()
