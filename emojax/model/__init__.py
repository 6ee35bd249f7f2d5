"""The model: configs, parameter specs and pure forward functions."""

from emojax.model import decoder, vlm
from emojax.model.config import ModelConfig, RopeScaling, VisionConfig
from emojax.model.model import forward, forward_hidden


def specs(cfg: ModelConfig) -> dict:
  """All parameters of the model `cfg` describes (text, and vision if set)."""
  out = decoder.specs(cfg)
  if cfg.vision is not None:
    out |= vlm.specs(cfg)
  return out


__all__ = [
  "ModelConfig",
  "RopeScaling",
  "VisionConfig",
  "forward",
  "forward_hidden",
  "specs",
]
