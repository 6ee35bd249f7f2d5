"""The rollout engine on a pipeline batch, as every stage calls it."""

from __future__ import annotations

import functools

from emojax import rollout as rollout_lib
from emojax import sharding
from emojax.train import batching
from emojax.train.run import Run


def generate(run: Run, params, host_batch, rng, **sampling):
  """`emojax.rollout.generate` with the run's model, mesh and tokenizer.

  Host-only fields are dropped and padding trimmed; the engine derives its
  own positions, so the VLM's are not passed. Image and video placeholder
  ids are never sampled: a completion holding one would be a second image
  slot without an image when the GRPO step re-reads the row.
  """
  batch = batching.device_batch(run.model_cfg, host_batch)
  batch.pop("position_ids", None)
  batch.pop(batching.vlm.LAYOUT_KEY, None)
  decode = functools.partial(run.tokenizer.decode, skip_special_tokens=True)
  with sharding.use_rules(run.mesh, run.rules):
    return rollout_lib.generate(
      params,
      run.model_cfg,
      batch,
      rng,
      decode_fn=decode,
      suppress_ids=placeholder_ids(run.model_cfg),
      **sampling,
    )


def placeholder_ids(cfg) -> tuple[int, ...]:
  """The VLM's image/video slot and vision start/end ids (none: text)."""
  if cfg.vision is None:
    return ()
  start = cfg.vision_start_token_id
  return (start, start + 1, cfg.image_token_id, cfg.video_token_id)
