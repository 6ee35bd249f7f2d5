# ruff: noqa: N815  (shape-suffixed NamedTuple fields are the house style)
"""Prefill and decode: G samples per prompt in one jitted program.

  rollout = generate(params, cfg, batch, rng, num_generations=8,
                     max_new_tokens=64, temperature=1.0)

One compiled program per static shape does everything on device: the P
prompts are prefilled once (images encoded once per prompt), their cache is
broadcast to the P*G rows, and a single `lax.while_loop` decodes one token
per step for every row until each has produced a stop token or the budget.
The KV cache is a donated argument: one buffer per shape is allocated on
first use and reused by every later call (`release_caches` frees them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from emojax import multihost, sharding
from emojax.model import decoder, kv_cache
from emojax.model import model as model_lib
from emojax.model import params as params_lib
from emojax.model.config import ModelConfig
from emojax.model.kv_cache import KVCache
from emojax.rollout import prompts, sampling
from emojax.rollout.rollout import Rollout

# One donated cache buffer per (model, rows, length, dtype, mesh, rules).
_CACHES: dict[tuple, KVCache] = {}


def release_caches() -> None:
  """Frees the KV cache buffers kept for reuse between calls."""
  _CACHES.clear()


@dataclasses.dataclass(frozen=True)
class _Static:
  """Everything the compiled program specialises on besides shapes."""

  sampling: sampling.SamplingParams
  num_generations: int
  max_new_tokens: int
  stop_ids: tuple[int, ...]
  pad_id: int
  mesh: jax.sharding.Mesh | None
  rules: tuple | None


class _Loop(NamedTuple):
  cache: KVCache
  tokens_BN: jax.Array
  mask_BN: jax.Array
  logp_BN: jax.Array
  shaped_BN: jax.Array
  last_B: jax.Array
  done_B: jax.Array
  t: jax.Array  # tokens generated so far


def _prefill(params, cfg: ModelConfig, cache: KVCache, inputs, G: int):
  """Prefills the P prompts, broadcasts them into the B = P*G row cache.

  Returns the cache, the last prompt position's logits `[B, V]` and each
  row's first decode position `[B]`.
  """
  ids_PT, mask_PT = inputs["input_ids"], inputs["attention_mask"]
  positions = inputs["position_ids"]
  P, T = ids_PT.shape
  x_PTD = model_lib.input_embeddings(params, cfg, inputs)
  small = kv_cache.init(cfg, P, T, cache.v_BKSE[0].dtype)
  h_PTD, small = decoder.run_layers(
    params, cfg, x_PTD, positions, mask_PT, small
  )
  # Prompts are left-aligned: the last slot is every row's last real token,
  # and only its logits are needed.
  logits_PV = decoder.unembed(params, cfg, h_PTD[:, -1:])[:, 0]

  def fill(big, small):
    # The small cache's T slots are the big one's first T (either layout).
    return jax.lax.dynamic_update_slice(
      big, jnp.repeat(small, G, axis=0), (0, 0, 0, 0)
    )

  k_BKES = tuple(map(fill, cache.k_BKES, small.k_BKES))
  v_BKSE = tuple(map(fill, cache.v_BKSE, small.v_BKSE))
  segment_BS = jax.lax.dynamic_update_slice(
    jnp.zeros_like(cache.segment_BS), jnp.repeat(mask_PT, G, axis=0), (0, 0)
  )
  cache = KVCache(k_BKES, v_BKSE, segment_BS, jnp.int32(T))
  # Generated tokens continue from the largest prompt position (Qwen2.5-VL's
  # rope_deltas; for text, the number of real tokens).
  axes = (0, 2) if positions.ndim == 3 else (1,)
  start_P = jnp.max(positions, axis=axes) + 1
  return (
    kv_cache.constrain(cache),
    jnp.repeat(logits_PV, G, axis=0),
    jnp.repeat(start_P, G, axis=0),
  )


def _draw(keys_B, t, logits_BV, sp):
  step_keys_B = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys_B, t)
  return sampling.sample(step_keys_B, logits_BV, sp)


def _decode_logits(params, cfg, cache, tokens_B, positions_B):
  """Feeds one token per row; returns next-token logits and the cache."""
  x_B1D = decoder.embed_tokens(params, cfg, tokens_B[:, None])
  positions = positions_B[:, None]
  if cfg.mrope_section is not None:
    # Generated tokens are text: all three rotary components are equal.
    positions = jnp.broadcast_to(positions[None], (3, *positions.shape))
  seg_B1 = jnp.ones_like(positions_B)[:, None]
  h_B1D, cache = decoder.run_layers(
    params, cfg, x_B1D, positions, seg_B1, cache
  )
  return decoder.unembed(params, cfg, h_B1D)[:, 0], kv_cache.constrain(cache)


def _record(s: _Loop, tokens_B, logp_B, shaped_B, stop_ids, pad_id) -> _Loop:
  """Writes column t for rows still running; finished rows get padding."""
  live_B = ~s.done_B
  tokens_B = jnp.where(live_B, tokens_B, pad_id)
  zero = jnp.float32(0)

  def put(buf_BN, col_B):
    return jax.lax.dynamic_update_slice(buf_BN, col_B[:, None], (0, s.t))

  stop_B = jnp.any(tokens_B[:, None] == jnp.asarray(stop_ids)[None], axis=1)
  return s._replace(
    tokens_BN=put(s.tokens_BN, tokens_B),
    mask_BN=put(s.mask_BN, live_B.astype(jnp.int32)),
    logp_BN=put(s.logp_BN, jnp.where(live_B, logp_B, zero)),
    shaped_BN=put(s.shaped_BN, jnp.where(live_B, shaped_B, zero)),
    last_B=tokens_B,
    done_B=s.done_B | (live_B & stop_B),
    t=s.t + 1,
  )


def _empty(cache: KVCache, B: int, N: int, pad_id: int) -> _Loop:
  return _Loop(
    cache=cache,
    tokens_BN=jnp.full((B, N), pad_id, jnp.int32),
    mask_BN=jnp.zeros((B, N), jnp.int32),
    logp_BN=jnp.zeros((B, N), jnp.float32),
    shaped_BN=jnp.zeros((B, N), jnp.float32),
    last_B=jnp.zeros((B,), jnp.int32),
    done_B=jnp.zeros((B,), bool),
    t=jnp.int32(0),
  )


def _run(params, cache: KVCache, inputs, rng, *, cfg: ModelConfig, st):
  """The whole rollout; see the module docstring."""
  rules_ctx = (
    sharding.use_rules(st.mesh, st.rules)
    if st.mesh is not None
    else contextlib.nullcontext()
  )
  with rules_ctx:
    params = params_lib.cast(params, jnp.dtype(cfg.dtype))
    G, N = st.num_generations, st.max_new_tokens
    cache, logits_BV, start_B = _prefill(params, cfg, cache, inputs, G)
    B = logits_BV.shape[0]
    keys_B = jax.random.split(rng, B)
    stop_ids = st.stop_ids or (-1,)
    s = _record(
      _empty(cache, B, N, st.pad_id),
      *_draw(keys_B, 0, logits_BV, st.sampling),
      stop_ids,
      st.pad_id,
    )

    def cond(s: _Loop):
      return (s.t < N) & ~jnp.all(s.done_B)

    def body(s: _Loop):
      logits_BV, cache = _decode_logits(
        params, cfg, s.cache, s.last_B, start_B + s.t - 1
      )
      s = s._replace(cache=cache)
      drawn = _draw(keys_B, s.t, logits_BV, st.sampling)
      return _record(s, *drawn, stop_ids, st.pad_id)

    s = jax.lax.while_loop(cond, body, s)
    out = dict(
      prompt_ids=jnp.repeat(inputs["input_ids"], G, axis=0),
      prompt_mask=jnp.repeat(inputs["attention_mask"], G, axis=0),
      completion_ids=s.tokens_BN,
      completion_mask=s.mask_BN,
      logprobs=s.logp_BN,
      shaped_logprobs=s.shaped_BN,
      lengths=jnp.sum(s.mask_BN, axis=1),
      truncated=~s.done_B,
    )
    return s.cache, out


_run_jit = jax.jit(
  _run, static_argnames=("cfg", "st"), donate_argnames=("cache",)
)


def _cache_for(cfg, B, S, dtype, mesh, rules, device) -> tuple[tuple, KVCache]:
  """The pooled buffer for this shape (taken out of the pool), or a new one.

  A new buffer is committed to `device` (or the mesh) as the program's
  returned one is, so the second call hits the compiled program.
  """
  key = (cfg, B, S, jnp.dtype(dtype).name, mesh, rules, device)
  cache = _CACHES.pop(key, None)
  if cache is None:
    make = functools.partial(kv_cache.init, cfg, B, S, dtype)
    if mesh is None:
      out_shardings = jax.sharding.SingleDeviceSharding(device)
    else:
      out_shardings = kv_cache.map_with_axes(
        lambda x, axes: sharding.named_sharding(
          mesh, axes, rules, shape=x.shape
        ),
        jax.eval_shape(make),
      )
    cache = jax.jit(make, out_shardings=out_shardings)()
  return key, cache


def _mesh_of(params) -> jax.sharding.Mesh | None:
  """The mesh params are sharded over, if they are (None on one device)."""
  for leaf in jax.tree.leaves(params):
    spec = getattr(leaf, "sharding", None)
    if isinstance(spec, jax.sharding.NamedSharding) and spec.mesh.size > 1:
      return spec.mesh
  return None


def _device_of(params) -> jax.Device:
  """The device single-device params live on (the default one otherwise)."""
  for leaf in jax.tree.leaves(params):
    devices = getattr(leaf, "devices", lambda: ())()
    if len(devices) == 1:
      return next(iter(devices))
  return jax.devices()[0]


def _place(inputs: dict, mesh, rules) -> dict:
  """Rows over the batch axes; images and layouts replicated."""
  if mesh is None:
    return inputs

  def put(x, axes):
    x = np.asarray(x)
    return multihost.put(
      x, sharding.named_sharding(mesh, axes, rules, shape=x.shape)
    )

  out = {}
  for key, x in inputs.items():
    if key in ("input_ids", "attention_mask"):
      out[key] = put(x, ("batch", None))
    elif key == "position_ids":
      out[key] = put(x, (None,) * (np.ndim(x) - 2) + ("batch", None))
    else:
      out[key] = jax.tree.map(lambda a: put(a, (None,) * np.ndim(a)), x)
  return out


def _rules_key(rules) -> tuple | None:
  if rules is None:
    return None
  return tuple(sorted(sharding.rules_dict(rules).items()))


def _decode_text(decode_fn, ids_BN, lengths_B) -> tuple[str, ...]:
  ids_BN, lengths_B = jax.device_get((ids_BN, lengths_B))
  return tuple(
    decode_fn([int(i) for i in ids_BN[b, : lengths_B[b]]])
    for b in range(ids_BN.shape[0])
  )


def generate(
  params,
  model_config: ModelConfig,
  batch: Mapping,
  rng: jax.Array,
  *,
  num_generations: int = 1,
  max_new_tokens: int,
  temperature: float = 1.0,
  top_p: float = 1.0,
  top_k: int = 0,
  greedy: bool = False,
  suppress_ids: Sequence[int] = (),
  stop_token_ids: Sequence[int] | None = None,
  cache_dtype=None,
  decode_fn: Callable[[list[int]], str] | None = None,
  mesh: jax.sharding.Mesh | None = None,
  rules=None,
  prompt_bucket: int = 16,
) -> Rollout:
  """Samples `num_generations` completions for each prompt of `batch`.

  `batch` uses HF names (`input_ids`, `attention_mask`, optional
  `position_ids`, `pixel_values`, `image_grid_thw`, `second_per_grid_ts`,
  or transformers' `pixel_values_videos`/`video_grid_thw`; clips'
  `input_features`), left or right padded.
  `stop_token_ids` defaults to the model's EOS ids (`()` never stops early);
  `suppress_ids` are never sampled (greedy picks the best other token);
  `cache_dtype` defaults to the compute dtype (bfloat16 halves the cache);
  `decode_fn` (e.g. a tokenizer's `decode`) fills `Rollout.text`. With a
  `mesh` (default: the one `params` are sharded over), rows are sharded
  over the batch axes and the cache's KV heads over the tensor axis (`rules`
  as in `emojax.sharding`); `params` must already be placed on that mesh.
  """
  if max_new_tokens < 1 or num_generations < 1:
    raise ValueError(
      f"max_new_tokens={max_new_tokens} and num_generations="
      f"{num_generations} must both be >= 1."
    )
  cfg = model_config
  mesh = mesh if mesh is not None else _mesh_of(params)
  st = _Static(
    sampling=sampling.SamplingParams(
      temperature, top_p, top_k, greedy, tuple(int(i) for i in suppress_ids)
    ),
    num_generations=num_generations,
    max_new_tokens=max_new_tokens,
    stop_ids=tuple(
      int(i)
      for i in (cfg.eos_token_ids if stop_token_ids is None else stop_token_ids)
    ),
    pad_id=cfg.pad_token_id,
    mesh=mesh,
    rules=_rules_key(rules),
  )
  inputs = prompts.prepare(cfg, batch, prompt_bucket)
  P, T = inputs["input_ids"].shape
  B, S = P * num_generations, T + max_new_tokens - 1
  device = None if mesh is not None else _device_of(params)
  key, cache = _cache_for(
    cfg, B, S, cache_dtype or cfg.dtype, mesh, st.rules, device
  )
  inputs = _place(inputs, mesh, st.rules)
  cache, out = _run_jit(params, cache, inputs, rng, cfg=cfg, st=st)
  _CACHES[key] = cache
  if jax.process_count() > 1:  # Each host scores every row.
    out = {k: multihost.to_host(v) for k, v in out.items()}
  text = None
  if decode_fn is not None:
    text = _decode_text(decode_fn, out["completion_ids"], out["lengths"])
  return Rollout(**out, num_generations=num_generations, text=text)
