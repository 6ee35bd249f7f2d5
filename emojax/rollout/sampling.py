"""Choosing the next token from logits: greedy, temperature, top-k, top-p.

The shaping order is transformers' (temperature, then top-k, then top-p),
so a seed-free comparison with `generate` is a comparison of distributions.
Every row draws from its own key, so a row's sample does not depend on the
other rows of the batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """How to pick tokens; hashable, so it is a static argument of jit."""

  temperature: float = 1.0
  top_p: float = 1.0
  top_k: int = 0  # 0 = no top-k cut.
  greedy: bool = False
  # Token ids never emitted (e.g. image placeholders: a completion holding
  # one would break the next forward's image bookkeeping).
  suppress_ids: tuple[int, ...] = ()

  def __post_init__(self):
    if not self.greedy and not self.temperature > 0:
      raise ValueError(
        f"temperature={self.temperature} must be > 0; for the most likely "
        "token pass greedy=True."
      )
    if not 0 < self.top_p <= 1:
      raise ValueError(f"top_p={self.top_p} must be in (0, 1].")
    if self.top_k < 0:
      raise ValueError(f"top_k={self.top_k} must be >= 0 (0 turns it off).")

  @property
  def is_shaped(self) -> bool:
    """Whether the sampled distribution differs from the raw softmax."""
    return (
      self.greedy
      or bool(self.suppress_ids)
      or self.temperature != 1.0
      or self.top_p < 1.0
      or self.top_k > 0
    )


def shape_logits(logits_BV: jax.Array, sp: SamplingParams) -> jax.Array:
  """Logits of the distribution sampled from; excluded tokens are -inf.

  Ties at a top-k or top-p threshold keep every tied token.
  """
  x_BV = logits_BV.astype(jnp.float32) / jnp.float32(sp.temperature)
  V = x_BV.shape[-1]
  top_k = sp.top_k if 0 < sp.top_k < V else 0
  if top_k == 0 and sp.top_p >= 1.0:
    return x_BV
  if top_k:
    # lax.top_k returns the kept values sorted, which top-p reuses: no
    # full-vocabulary sort when both are set.
    sorted_BK = jax.lax.top_k(x_BV, top_k)[0]
  else:
    sorted_BK = -jnp.sort(-x_BV, axis=-1)
  keep_from_BK = sorted_BK
  if sp.top_p < 1.0:
    probs_BK = jax.nn.softmax(sorted_BK, axis=-1)
    before_BK = jnp.cumsum(probs_BK, axis=-1) - probs_BK
    # transformers keeps a token unless the mass strictly above it already
    # reaches top_p; the most likely token is always kept.
    kept_BK = (before_BK < sp.top_p).at[:, 0].set(True)
    keep_from_BK = jnp.where(kept_BK, sorted_BK, jnp.inf)
  threshold_B1 = jnp.min(keep_from_BK, axis=-1, keepdims=True)
  return jnp.where(x_BV >= threshold_B1, x_BV, -jnp.inf)


def first_argmax(x_BV: jax.Array) -> jax.Array:
  """`jnp.argmax(x_BV, -1)` (the first maximum) for finite x, as int32.

  Why not argmax: XLA:CPU lowers it to a variadic (value, index) reduction
  that does not vectorise, and fuses the Gumbel noise of sampling into
  that loop; a max, then a min over the indices reaching it, are two plain
  reductions, 3x faster per decode step. Rows without a maximum (NaN)
  return the last id rather than an out-of-range one.
  """
  V = x_BV.shape[-1]
  max_B1 = jnp.max(x_BV, axis=-1, keepdims=True)
  ids_BV = jax.lax.broadcasted_iota(jnp.int32, x_BV.shape, x_BV.ndim - 1)
  first_B = jnp.min(jnp.where(x_BV >= max_B1, ids_BV, V - 1), axis=-1)
  return first_B


def _gumbel_max(keys_B: jax.Array, shaped_BV: jax.Array) -> jax.Array:
  """`vmap(jax.random.categorical)(keys_B, shaped_BV)`, same draws, faster.

  The barrier keeps the noise out of the reduction loop (see first_argmax).
  """
  V = shaped_BV.shape[-1]
  noise_BV = jax.vmap(lambda k: jax.random.gumbel(k, (V,)))(keys_B)
  noise_BV = jax.lax.optimization_barrier(noise_BV)
  return first_argmax(shaped_BV + noise_BV)


def _pick(logits_BV: jax.Array, tokens_B: jax.Array) -> jax.Array:
  logp_BV = jax.nn.log_softmax(logits_BV, axis=-1)
  return jnp.take_along_axis(logp_BV, tokens_B[:, None], axis=-1)[:, 0]


def sample(
  keys_B: jax.Array, logits_BV: jax.Array, sp: SamplingParams
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One token per row: `(tokens_B, logprobs_B, shaped_logprobs_B)`.

  `logprobs_B` are under the raw policy (log_softmax of the logits);
  `shaped_logprobs_B` under the distribution actually sampled from (0 for
  greedy, a point mass).
  """
  logits_BV = logits_BV.astype(jnp.float32)
  allowed_BV = logits_BV
  if sp.suppress_ids:
    ids = jnp.asarray(sp.suppress_ids, jnp.int32)
    allowed_BV = logits_BV.at[:, ids].set(-jnp.inf)
  if sp.greedy:
    tokens_B = first_argmax(allowed_BV)
    logp_B = _pick(logits_BV, tokens_B)
    return tokens_B, logp_B, jnp.zeros_like(logp_B)
  shaped_BV = shape_logits(allowed_BV, sp)
  tokens_B = _gumbel_max(keys_B, shaped_BV)
  logp_B = _pick(logits_BV, tokens_B)
  if not sp.is_shaped:
    return tokens_B, logp_B, logp_B
  return tokens_B, logp_B, _pick(shaped_BV, tokens_B)
