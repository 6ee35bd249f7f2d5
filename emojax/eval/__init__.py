"""Evaluation: the papers' metrics over completions, reports and pages.

  examples = predictions.read("preds.jsonl")     # or decode.decode(...)
  ev = score.evaluate(examples, label_set="basic7")
  plots = report.write(out_dir, ev)              # metrics.json, report.md
  html.write(out_dir, examples, ev, plots=plots) # completions.html

`launch/eval.py` wires these together (`--predictions`, `--checkpoint`,
`--compare`).
"""
