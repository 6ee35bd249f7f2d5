"""The model: configs, parameter specs and pure forward functions."""

from emojax.model import audio_lm, decoder, vlm
from emojax.model.config import (
  AudioConfig,
  ModelConfig,
  RopeScaling,
  VisionConfig,
)
from emojax.model.model import forward, forward_hidden


def specs(cfg: ModelConfig) -> dict:
  """All parameters of the model `cfg` describes (text, vision, audio)."""
  out = decoder.specs(cfg)
  if cfg.vision is not None:
    out |= vlm.specs(cfg)
  if cfg.audio is not None:
    out |= audio_lm.specs(cfg)
  return out


__all__ = [
  "AudioConfig",
  "ModelConfig",
  "RopeScaling",
  "VisionConfig",
  "forward",
  "forward_hidden",
  "specs",
]
