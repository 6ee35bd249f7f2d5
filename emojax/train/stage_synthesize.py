"""The synthesis stage (Facial-R1 stage 3): the model writes its own data.

For each of the first `num_examples` train rows (label-only), the current
model is prompted with the ground-truth AUs and label, decodes greedily,
and the output is verified (`synthesis.issues`). Failures are retried with
the previous response and its issues appended, up to `max_retry` times
(a row whose grown prompt passes `max_prompt_len` stops retrying and is
counted in `prompt_too_long`).
Verified outputs become new SFT rows (`description`), written as JSONL with
their provenance (train row index, attempts) for the next SFT stage.
"""

from __future__ import annotations

import os

from emojax import multihost
from emojax.data import prompts
from emojax.train import data, generation, synthesis
from emojax.train.run import Run, Stage


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def _prompt(run: Run, row: dict, retries) -> str:
  d = run.config.data
  return prompts.facial_r1_synthesis(
    d.emotions,
    [_text(a) for a in row["AUs"]],
    [_text(w) for w in row["labels"]],
    retries=retries,
    au_definitions=d.au_definitions,
  )


def _decode(run: Run, params, rows: list[dict]) -> list[str | None]:
  """Greedy completions for rows that carry their own `prompt`; None for a
  row whose prompt (grown by retry feedback) exceeds `max_prompt_len`."""
  sc = run.config.synthesize
  data_cfg = run.config.data.copy_and_resolve_references()
  data_cfg.on_bad_example = "skip"  # too long: that row stops retrying
  texts = generation.greedy_texts(
    run,
    params,
    rows,
    batch_size=len(rows),
    max_new_tokens=sc.max_new_tokens,
    data_cfg=data_cfg,
    max_len=sc.max_prompt_len,
  )
  return [texts.get(generation.row_key(r)) for r in rows]


def build(run: Run, index: int, params, restored) -> Stage:
  sc = run.config.synthesize
  source = run.data.as_data_source("train")
  n = min(sc.num_examples, len(source))
  num_steps = -(-n // sc.batch_size)
  kept = (
    []
    if restored is None
    else [data.SynthRow(**r) for r in restored[1]["kept"]]
  )

  def step(i: int) -> dict:
    todo = {
      j: [] for j in range(i * sc.batch_size, min((i + 1) * sc.batch_size, n))
    }
    passed = too_long = 0
    for attempt in range(sc.max_retry + 1):
      if not todo:
        break
      rows = []
      for j, retries in todo.items():
        row = dict(source[j])
        row["prompt"] = _prompt(run, row, retries)
        rows.append(row)
      texts = _decode(run, params, rows)
      for (j, retries), row, text in zip(
        list(todo.items()), rows, texts, strict=True
      ):
        if text is None:
          too_long += 1
          del todo[j]
          continue
        problems = synthesis.issues(
          text,
          [_text(a) for a in row["AUs"]],
          [_text(w) for w in row["labels"]],
        )
        if not problems:
          kept.append(data.SynthRow(j, text, attempt + 1))
          passed += 1
          del todo[j]
        else:
          todo[j] = retries + [(text, problems)]
    size = min((i + 1) * sc.batch_size, n) - i * sc.batch_size
    return {
      "pass_rate": passed / size,
      "kept": float(len(kept)),
      "prompt_too_long": float(too_long),
    }

  def progress():
    return {"kept": [r.__dict__ for r in kept], "data": None}

  return Stage(
    index=index,
    name="synthesize",
    num_steps=num_steps,
    step=step,
    state=lambda: {"params": params},
    progress=progress,
    finish=lambda: _finish(run, index, kept),
  )


def _finish(run: Run, index: int, kept) -> str:
  folder = os.path.join(run.workdir, "synthesized")
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f"stage{index}.jsonl")
  multihost.leader_only(
    f"emojax_synth_{index}", lambda: data.write_synth(path, kept)
  )
  run.history.setdefault("synthesized", []).append(path)
  return path
