"""End-of-stage evaluation on the test split, through `emojax.eval`.

Decodes greedily with the same prompt the stage trained on, scores with the
reward code's parsers, and writes metrics.json, report.md, plots and
completions.html under `<workdir>/eval/<index>-<stage>/`.
"""

from __future__ import annotations

import os

from emojax.eval import html, report, score
from emojax.train import batching, data, generation
from emojax.train.run import Run


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def evaluate(run: Run, params, name: str) -> dict[str, float]:
  """Scores `params` on the first `eval.num_examples` test rows."""
  ec, cfg = run.config.eval, run.model_cfg
  source = run.data.as_data_source("test")
  rows = [source[i] for i in range(min(ec.num_examples, len(source)))]
  batches = data.iterator(
    rows,
    run.tokenizer,
    cfg,
    run.config.data,
    mode="rollout",
    batch_size=ec.batch_size,
    seed=0,
    epochs=1,
    shuffle=False,
  )
  by_line = {(_text(r["source"]), int(r["line"])): r for r in rows}
  examples = []
  for batch in batches:
    n = len(batch["labels"])
    rows_n = batching.take_rows(cfg, batch, range(n))  # drop pad rows
    ro = generation.generate(
      run,
      params,
      rows_n,
      run.key(0),
      max_new_tokens=ec.max_new_tokens,
      greedy=True,
    )
    for p in range(n):
      row = by_line[(batch["source"][p], int(batch["line"][p]))]
      examples.append(
        score.Example(
          completion=ro.text[p],
          labels=tuple(_text(w) for w in row["labels"]),
          aus=tuple(_text(a) for a in row["AUs"]),
          description=_text(row["description"]),
          image=bytes(row["image"]) or None,
          where=f"{_text(row['source'])}:{int(row['line'])}",
        )
      )
  ev = score.evaluate(examples, label_set=tuple(run.config.data.emotions))
  out_dir = os.path.join(run.workdir, "eval", name)
  report.write(out_dir, ev, title=f"emojax: {name}")
  html.write(out_dir, examples, ev)
  return ev.scalars
