"""Everything a run shares: mesh, tokenizer, model config, initial params.

The model starts from (in order of precedence) a Hugging Face folder
(`model.hf_dir`), the project's cached base model (`model.base`), or a
random init of `model.preset`.
"""

from __future__ import annotations

import os

import jax

from emojax import checkpoint
from emojax import sharding as sharding_lib
from emojax.data import tokenizer as tokenizer_lib
from emojax.hf import importer, registry
from emojax.model import config as config_lib
from emojax.model import params as params_lib
from emojax.model import specs as model_specs


def cache_dir() -> str:
  return os.path.expanduser(os.environ.get("EMOJAX_CACHE", "~/.cache/emojax"))


def compilation_cache() -> str:
  """Turns on JAX's persistent compilation cache; returns its folder.

  A resumed or repeated run then loads its train, rollout and eval
  programs instead of compiling them again (minutes for a 7B on a pod).
  `JAX_COMPILATION_CACHE_DIR` (a local or gs:// path) wins; else
  `$EMOJAX_CACHE/xla`. JAX keys entries by program and compiler options,
  so a changed model or mesh compiles afresh.
  """
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update(
      "jax_compilation_cache_dir", os.path.join(cache_dir(), "xla")
    )
  return jax.config.jax_compilation_cache_dir


def mesh_and_rules(config, devices=None):
  mesh = sharding_lib.make_mesh(dict(config.mesh), devices)
  rules = config.get("sharding_rules") or sharding_lib.DEFAULT_RULES
  return mesh, rules


def tokenizer(config) -> tokenizer_lib.Tokenizer:
  if config.model.tokenizer_dir:
    return tokenizer_lib.Tokenizer.from_dir(config.model.tokenizer_dir)
  if config.model.hf_dir:
    return tokenizer_lib.Tokenizer.from_dir(config.model.hf_dir)
  preset = config_lib.PRESETS.get(config.model.preset)
  listens = preset is not None and preset().audio is not None
  return tokenizer_lib.ensure_default(audio=listens)


def model_config(config, tok) -> config_lib.ModelConfig:
  """The preset, fitted to the tokenizer's vocabulary and special ids."""
  m = config.model
  if m.hf_dir:
    hf, path = importer.read_config(m.hf_dir)
    cfg = registry.for_architecture(
      hf["architectures"][0], path
    ).config_from_hf(hf, path)
  else:
    if m.preset not in config_lib.PRESETS:
      raise ValueError(
        f"config.model.preset={m.preset!r}; choose one of "
        f"{sorted(config_lib.PRESETS)}."
      )
    preset = config_lib.PRESETS[m.preset]
    cfg = (
      preset(vocab_size=tok.vocab_size)
      if m.preset.startswith("tiny")
      else preset()
    )
    cfg = cfg.replace(
      image_token_id=tok.image_pad_id,
      video_token_id=tok.token_id("<|video_pad|>"),
      vision_start_token_id=tok.vision_start_id,
      eos_token_ids=tuple(tok.eos_ids),
      pad_token_id=tok.pad_id,
    )
    if cfg.audio is not None:
      try:
        cfg = cfg.replace(audio_token_id=tok.audio_pad_id)
      except KeyError:
        raise ValueError(
          f"config.model.preset={m.preset!r} listens but the tokenizer "
          "has no <|AUDIO|> token; leave config.model.tokenizer_dir empty "
          "(emojax's default audio tokenizer) or point it at a "
          "Qwen2.5-Omni tokenizer."
        ) from None
  return cfg.replace(
    dtype=m.dtype,
    param_dtype=m.param_dtype,
    attention=m.attention,
    logprobs=m.logprobs,
    remat=m.remat,
  )


def runtime_choices(cfg: config_lib.ModelConfig) -> dict:
  """The fields that say how to compute, not what: a base model cached
  under other choices still fits."""
  names = ("dtype", "attention", "logprobs", "remat")
  return {name: getattr(cfg, name) for name in names}


def initial_params(config, cfg, mesh, rules, base_dir: str | None):
  """Params on their shardings: from HF, the base model, or random."""
  m = config.model
  if m.hf_dir:
    _, params = importer.load(
      m.hf_dir, mesh=mesh, dtype=m.param_dtype, rules=rules
    )
    return params
  if base_dir:
    base_cfg, params = checkpoint.load_params(base_dir, mesh, rules)
    if base_cfg.replace(**runtime_choices(cfg)) != cfg:
      raise ValueError(
        f"the base model in {base_dir} has a different architecture than "
        "config.model describes; delete that folder to rebuild it, or set "
        "config.model.base=''."
      )
    return params
  key = jax.random.key(config.seed)
  return params_lib.init(model_specs(cfg), key, mesh, rules)
