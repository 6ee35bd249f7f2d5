"""Pallas kernels, each beside a plain-jnp `*_ref` twin of the same signature.

Imports nothing from emojax. On CPU the Pallas kernels run in interpret
mode (tests only: slow); `chunked_logprobs` is the XLA path for training on
CPU (and anywhere, with the same values and gradients).
"""

from emojax.kernels.decode_attention import (
  decode_attention,
  decode_attention_ref,
)
from emojax.kernels.flash_attention import flash_attention, flash_attention_ref
from emojax.kernels.fused_logprobs import fused_logprobs, fused_logprobs_ref
from emojax.kernels.group_advantages import (
  MODES as ADVANTAGE_MODES,
)
from emojax.kernels.group_advantages import (
  group_advantages,
  group_advantages_ref,
)
from emojax.kernels.xla_logprobs import chunked_logprobs

__all__ = [
  "ADVANTAGE_MODES",
  "chunked_logprobs",
  "decode_attention",
  "decode_attention_ref",
  "flash_attention",
  "flash_attention_ref",
  "fused_logprobs",
  "fused_logprobs_ref",
  "group_advantages",
  "group_advantages_ref",
]
