"""The rollout engine on a pipeline batch, as every stage calls it."""

from __future__ import annotations

import functools

from emojax import rollout as rollout_lib
from emojax.model import vlm
from emojax.train import batching, data
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
  # The rules go in by argument: the engine traces its own program under
  # them (a `use_rules` block around this call would not reach it).
  return rollout_lib.generate(
    params,
    run.model_cfg,
    batch,
    rng,
    decode_fn=decode,
    suppress_ids=vlm.placeholder_ids(run.model_cfg),
    mesh=run.mesh,
    rules=run.rules,
    **sampling,
  )


def greedy_texts(
  run: Run,
  params,
  rows: list[dict],
  *,
  batch_size: int,
  max_new_tokens: int,
  prompt: str = "task",
  data_cfg=None,
  max_len: int | None = None,
) -> dict[tuple[str, int], str]:
  """Greedy completions of `rows`, keyed by (source, line).

  Rows the pipeline skips (`data_cfg.on_bad_example='skip'`) have no key.
  """
  batches = data.iterator(
    rows,
    run.tokenizer,
    run.model_cfg,
    data_cfg or run.config.data,
    mode="rollout",
    batch_size=batch_size,
    seed=0,
    epochs=1,
    shuffle=False,
    prompt=prompt,
    max_len=max_len,
  )
  out = {}
  for batch in batches:
    n = len(batch["labels"])
    ro = generate(
      run,
      params,
      batching.take_rows(run.model_cfg, batch, range(n)),  # drop pad rows
      run.key(0),
      max_new_tokens=max_new_tokens,
      greedy=True,
    )
    for p in range(n):
      out[(_text(batch["source"][p]), int(batch["line"][p]))] = ro.text[p]
  return out


def row_key(row) -> tuple[str, int]:
  """A pipeline row's (source, line): what `greedy_texts` keys by."""
  return _text(row["source"]), int(row["line"])


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)
