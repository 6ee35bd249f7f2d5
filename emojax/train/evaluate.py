"""End-of-stage evaluation on the test split, through `emojax.eval`.

Decodes greedily with the same prompt the stage trained on, scores with the
reward code's parsers, and writes metrics.json, report.md, plots and
completions.html under `<workdir>/eval/<index>-<stage>/`.
"""

from __future__ import annotations

import os

from emojax import multihost
from emojax.data import examples as examples_lib
from emojax.eval import html, metrics, report, score
from emojax.train import generation
from emojax.train.run import Run


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def evaluate(run: Run, params, name: str) -> dict[str, float]:
  """Scores `params` on the first `eval.num_examples` test rows."""
  ec = run.config.eval
  source = run.data.as_data_source("test")
  rows = [source[i] for i in range(min(ec.num_examples, len(source)))]
  texts = generation.greedy_texts(
    run,
    params,
    rows,
    batch_size=ec.batch_size,
    max_new_tokens=ec.max_new_tokens,
  )
  examples = [
    score.Example(
      completion=texts[generation.row_key(row)],
      labels=tuple(_text(w) for w in row["labels"]),
      aus=tuple(_text(a) for a in row["AUs"]),
      description=_text(row["description"]),
      image=examples_lib.preview_image(row),
      where=f"{_text(row['source'])}:{int(row['line'])}",
    )
    for row in rows
  ]
  ev = score.evaluate(examples, label_set=tuple(run.config.data.emotions))
  out_dir = os.path.join(run.workdir, "eval", name)

  def write():
    report.write(out_dir, ev, title=f"emojax: {name}")
    html.write(out_dir, examples, ev)

  multihost.leader_only(f"emojax_eval_{name}", write)
  return ev.scalars


def evaluate_captions(run: Run, params, num_examples: int) -> dict[str, float]:
  """How well `params` describe held-out faces (the base model's check).

  Greedy captions of the first `num_examples` test rows, scored per region
  against the rendered truth (`metrics.caption_regions`).
  """
  source = run.data.as_data_source("test")
  rows = [source[i] for i in range(min(num_examples, len(source)))]
  texts = generation.greedy_texts(
    run,
    params,
    rows,
    batch_size=run.config.eval.batch_size,
    max_new_tokens=run.config.eval.max_new_tokens,
    prompt="caption",
  )
  return metrics.caption_regions(
    [texts[generation.row_key(r)] for r in rows],
    [_text(r["caption"]) for r in rows],
  )
