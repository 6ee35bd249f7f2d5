"""`--compare`: runs or stages side by side, and their training curves.

Each directory is an eval output (its metrics.json joins the table and the
bar plot) and/or a training workdir (its TensorBoard event files, read with
tensorboard's event reader, give the reward, KL, entropy and completion
length curves; each folder holding event files is one stage, e.g.
`workdir/sft`, `workdir/grpo`). Curves are matched by tag substring, so
clu's `train/reward_mean` and TRL-style `reward` both count.
"""

import collections
import json
import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # Files only; never a window.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboard.backend.event_processing import event_file_loader  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

from emojax.eval import report  # noqa: E402

# Curve panel -> tag substrings (lower case) that feed it, first match wins.
CURVES = {
  "reward": ("reward",),
  "KL": ("kl",),
  "entropy": ("entropy",),
  "completion length": ("completion_length", "completion_len", "length"),
}
TABLE_FILE = "compare.md"


def load_metrics(folder: str) -> dict[str, float] | None:
  path = os.path.join(folder, report.METRICS_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    raw = json.load(f)
  return {k: (float("nan") if v is None else float(v)) for k, v in raw.items()}


def _scalar(value) -> float | None:
  if value.HasField("simple_value"):
    return float(value.simple_value)
  if value.HasField("tensor"):
    arr = tensor_util.make_ndarray(value.tensor)
    if arr.size == 1 and np.issubdtype(arr.dtype, np.number):
      return float(arr.reshape(()))
  return None


def read_scalars(folder: str) -> dict[str, list[tuple[int, float]]]:
  """tag -> [(step, value)] from the event files directly in `folder`."""
  out = collections.defaultdict(list)
  files = sorted(f for f in os.listdir(folder) if "tfevents" in f)
  for name in files:
    loader = event_file_loader.EventFileLoader(os.path.join(folder, name))
    for event in loader.Load():
      for value in event.summary.value:
        v = _scalar(value)
        if v is not None:
          out[value.tag].append((int(event.step), v))
  return {tag: sorted(points) for tag, points in out.items()}


def _started(folder: str) -> float:
  """When the folder's first event file was opened: the name's timestamp
  (`events.out.tfevents.<seconds>.<host>...`), as writers name them."""
  times = []
  for name in os.listdir(folder):
    parts = name.split(".")
    if "tfevents" in parts and parts.index("tfevents") + 1 < len(parts):
      stamp = parts[parts.index("tfevents") + 1]
      times.append(float(stamp) if stamp.isdigit() else float("inf"))
  return min(times, default=float("inf"))


def stages(workdir: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
  """stage name (folder relative to workdir, '.' for itself) -> scalars,
  in the order the stages started."""
  found = [
    (_started(root), os.path.relpath(root, workdir), root)
    for root, _, files in os.walk(workdir)
    if any("tfevents" in f for f in files)
  ]
  return {name: read_scalars(root) for _, name, root in sorted(found)}


def _match(tags: Sequence[str], keys: Sequence[str]) -> str | None:
  for key in keys:
    for tag in sorted(tags):
      if key in tag.lower():
        return tag
  return None


def plot_curves(runs: dict[str, dict], path: str) -> bool:
  """2x2 panels (reward, KL, entropy, length), a line per run and stage.

  Stages run one after another, so each stage's steps continue where the
  previous stage of the same run ended. False when there is nothing to plot.
  """
  fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
  drawn = False
  for (panel, keys), ax in zip(CURVES.items(), axes.flat, strict=True):
    for run, run_stages in runs.items():
      offset = 0
      for stage, scalars in run_stages.items():
        tag = _match(list(scalars), keys)
        if tag is None:
          continue
        steps, values = zip(*scalars[tag], strict=True)
        label = run if stage == "." else f"{run}/{stage}"
        ax.plot(np.array(steps) + offset, values, lw=1.4, label=label)
        offset += max(steps)
        drawn = True
    ax.set_title(panel)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if ax.lines:
      ax.legend(fontsize=7, frameon=False)
  fig.tight_layout()
  if drawn:
    fig.savefig(path)
  plt.close(fig)
  return drawn


def plot_bars(table: dict[str, dict[str, float]], path: str) -> None:
  """Grouped bars: headline metrics (x) per run (colour)."""
  keys = [k for k in report.HEADLINE if any(k in m for m in table.values())]
  runs = list(table)
  width = 0.8 / len(runs)
  fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(keys) + 2), 3.8))
  x = np.arange(len(keys))
  for r, run in enumerate(runs):
    vals = [table[run].get(k, np.nan) for k in keys]
    bars = ax.bar(x + (r - (len(runs) - 1) / 2) * width, vals, width, label=run)
    ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
  ax.set_xticks(x, [report.HEADLINE[k] for k in keys], rotation=30, ha="right")
  ax.set_ylabel("value")
  ax.spines[["top", "right"]].set_visible(False)
  ax.legend(fontsize=8, frameon=False)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def markdown_table(table: dict[str, dict[str, float]]) -> str:
  """Rows: headline metrics; columns: runs; best value in bold."""
  runs = list(table)
  lines = ["| metric | " + " | ".join(runs) + " |"]
  lines.append("|---" * (len(runs) + 1) + "|")
  lower_better = (
    "confidence/ece",
    "confidence/brier",
    "emotion/unparseable_rate",
  )
  for key, label in report.HEADLINE.items():
    vals = [table[r].get(key) for r in runs]
    if all(v is None for v in vals):
      continue
    finite = [v for v in vals if v is not None and np.isfinite(v)]
    best = (min if key in lower_better else max)(finite) if finite else None
    cells = [
      f"**{report.fmt(v)}**"
      if v is not None and v == best and len(runs) > 1
      else report.fmt(v)
      for v in vals
    ]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _name(folder: str, taken: set[str]) -> str:
  name = os.path.basename(os.path.normpath(folder)) or folder
  while name in taken:
    name = (
      os.path.basename(os.path.dirname(os.path.normpath(folder))) + "/" + name
    )
    if name in taken:
      name = folder
      break
  return name


def compare(folders: Sequence[str], out_dir: str) -> dict[str, str]:
  """Writes compare.md, compare.png and curves.png (where data allow);
  returns {kind: path}."""
  if not folders:
    raise ValueError("--compare needs at least one folder: --compare DIR1 DIR2")
  table, curves, names = {}, {}, set()
  for folder in folders:
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"--compare: {folder} is not a folder.")
    name = _name(folder, names)
    names.add(name)
    if (m := load_metrics(folder)) is not None:
      table[name] = m
    if found := stages(folder):
      curves[name] = found
  if not table and not curves:
    raise FileNotFoundError(
      f"--compare {' '.join(folders)}: no metrics.json (an eval --out folder) "
      "and no TensorBoard event files (a training workdir) in any of them."
    )
  os.makedirs(out_dir, exist_ok=True)
  written = {}
  if table:
    written["table"] = os.path.join(out_dir, TABLE_FILE)
    with open(written["table"], "w", encoding="utf-8") as f:
      f.write("# Runs compared\n\n" + markdown_table(table))
    written["bars"] = os.path.join(out_dir, "compare.png")
    plot_bars(table, written["bars"])
  curves_path = os.path.join(out_dir, "curves.png")
  if curves and plot_curves(curves, curves_path):
    written["curves"] = curves_path
  return written
