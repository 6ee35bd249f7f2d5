"""The model: configs, parameter specs and pure forward functions."""

from emojax.model.config import ModelConfig, RopeScaling, VisionConfig
from emojax.model.model import forward, forward_hidden


def specs(cfg: ModelConfig) -> dict:
  """All parameters of the model `cfg` describes (text, and vision if set)."""
  from emojax.model import decoder

  out = decoder.specs(cfg)
  if cfg.vision is not None:
    from emojax.model import vlm

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
