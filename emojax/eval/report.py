"""Writes an evaluation: metrics.json, report.md and PNG plots.

metrics.json is one flat object (`emotion/accuracy`, `au/macro_f1`, ...;
NaN is written as null). Plots: confusion.png (row-normalised, counts
printed), au_f1.png (per-AU F1 with gold support), reliability.png (only
when confidences exist).
"""

import json
import math
import os

import matplotlib

matplotlib.use("Agg")  # Files only; never a window.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emojax.data import facs  # noqa: E402
from emojax.eval import metrics  # noqa: E402
from emojax.eval.score import Evaluation  # noqa: E402

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
# Headline metrics in display order: key -> label.
HEADLINE = {
  "emotion/accuracy": "Emotion accuracy (WAR)",
  "emotion/uar": "Emotion UAR",
  "emotion/macro_f1": "Emotion macro F1",
  "emotion/weighted_f1": "Emotion weighted F1",
  "emotion/unparseable_rate": "Unparseable answers",
  "au/macro_f1": "AU macro F1",
  "au/micro_f1": "AU micro F1",
  "format/valid_rate": "Valid format",
  "facs/consistency": "FACS consistency",
  "reasoning/rouge_l": "Reasoning ROUGE-L",
  "confidence/ece": "ECE (10 bins)",
  "confidence/brier": "Brier",
  "confidence/auroc": "AUROC (conf. vs correct)",
  "ew/level1_f1": "EW F (level 1)",
  "ew/level2_f1": "EW F (level 2)",
}
_STYLE = {
  "figure.dpi": 110,
  "axes.spines.top": False,
  "axes.spines.right": False,
  "font.size": 10,
}


def _num(v: float) -> float | None:
  return None if isinstance(v, float) and math.isnan(v) else v


def write_metrics(path: str, scalars: dict[str, float]) -> None:
  """Flat, sorted JSON; NaN -> null."""
  with open(path, "w", encoding="utf-8") as f:
    json.dump({k: _num(scalars[k]) for k in sorted(scalars)}, f, indent=1)
    f.write("\n")


def fmt(v: float | None) -> str:
  if v is None or (isinstance(v, float) and math.isnan(v)):
    return "n/a"
  return f"{v:.3f}"


def plot_confusion(res: metrics.EmotionResult, path: str) -> None:
  """Rows: gold classes, normalised; extra columns: other answers."""
  cm = res.confusion_CK.astype(float)
  rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
  C, K = cm.shape
  with plt.rc_context(_STYLE):
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * K, 1.2 + 0.6 * C))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(C):
      for k in range(K):
        if cm[i, k]:
          dark = rates[i, k] > 0.55
          ax.text(
            k,
            i,
            f"{int(cm[i, k])}\n{rates[i, k]:.0%}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if dark else "#1b2a41",
          )
    names = [
      c if c != metrics.UNPARSEABLE else "(no answer)" for c in res.columns
    ]
    ax.set_xticks(range(K), names, rotation=35, ha="right")
    ax.set_yticks(
      range(C),
      [f"{c} ({n})" for c, n in zip(res.classes, res.support_C, strict=True)],
    )
    ax.axvline(C - 0.5, color="#888", lw=1, ls="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold (support)")
    ax.set_title(
      f"Emotion: accuracy {res.accuracy:.1%}, UAR {res.uar:.1%}, "
      f"macro F1 {res.macro_f1:.3f}",
      fontsize=10,
    )
    ax.spines[:].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_au_f1(res: metrics.AUResult, path: str) -> None:
  """Per-AU F1 for AUs with gold positives; macro F1 as a line."""
  keep = res.support_A > 0
  aus = [a for a, k in zip(res.aus, keep, strict=True) if k]
  f1 = res.f1_A[keep]
  support = res.support_A[keep]
  with plt.rc_context(_STYLE):
    fig, ax = plt.subplots(figsize=(max(4.5, 0.55 * len(aus) + 1.5), 4.2))
    colors = plt.cm.viridis(0.15 + 0.75 * f1)
    bars = ax.bar(range(len(aus)), f1, color=colors, width=0.7)
    for bar, n, f in zip(bars, support, f1, strict=True):
      ax.text(
        bar.get_x() + bar.get_width() / 2,
        f + 0.02,
        f"{f:.2f}\nn={n}",
        ha="center",
        va="bottom",
        fontsize=7,
      )
    ax.axhline(res.macro_f1, color="#d62728", lw=1.2, ls="--")
    ax.text(
      len(aus) - 0.5,
      res.macro_f1 + 0.01,
      f"macro {res.macro_f1:.3f}",
      color="#d62728",
      ha="right",
      va="bottom",
      fontsize=8,
    )
    names = [f"{a} {_au_name(a)}" for a in aus]
    ax.set_xticks(range(len(aus)), names, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("F1")
    ax.set_title(
      f"AU F1 (AUs from <think>): macro {res.macro_f1:.3f}, "
      f"micro {res.micro_f1:.3f}",
      fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _au_name(au: str) -> str:
  unit = facs.AUS.get(int(au[2:]))
  return "" if unit is None else unit.name


def plot_reliability(rel: metrics.Reliability, ece: float, path: str) -> None:
  """Accuracy per confidence bin against the diagonal; counts below."""
  width = np.diff(rel.edges)
  centers = rel.edges[:-1] + width / 2
  full = rel.count > 0
  with plt.rc_context(_STYLE):
    fig, (ax, axn) = plt.subplots(
      2,
      1,
      figsize=(4.6, 5.0),
      sharex=True,
      gridspec_kw={"height_ratios": [3, 1]},
    )
    ax.plot([0, 1], [0, 1], color="#888", ls="--", lw=1, label="perfect")
    ax.bar(
      centers[full],
      rel.accuracy[full],
      width=width[full] * 0.92,
      color="#4c72b0",
      label="accuracy",
    )
    lo = np.minimum(rel.confidence[full], rel.accuracy[full])
    ax.bar(
      centers[full],
      np.abs(rel.confidence[full] - rel.accuracy[full]),
      bottom=lo,
      width=width[full] * 0.92,
      facecolor="none",
      edgecolor="#c44e52",
      hatch="///",
      lw=0.8,
      label="gap to mean confidence",
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability: ECE {ece:.3f}", fontsize=10)
    ax.legend(loc="upper left", framealpha=0.9, fontsize=8)
    axn.bar(centers, rel.count, width=width * 0.92, color="#999")
    axn.set_ylabel("rows")
    axn.yaxis.get_major_locator().set_params(integer=True)
    axn.set_xlabel("confidence")
    axn.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(out_dir: str, ev: Evaluation) -> dict[str, str]:
  """The plots the evaluation allows: {name: file name in out_dir}."""
  written = {}
  if ev.emotion is not None:
    plot_confusion(ev.emotion, os.path.join(out_dir, "confusion.png"))
    written["confusion"] = "confusion.png"
  if ev.au is not None and (ev.au.support_A > 0).any():
    plot_au_f1(ev.au, os.path.join(out_dir, "au_f1.png"))
    written["au_f1"] = "au_f1.png"
  if ev.reliability is not None:
    ece = ev.scalars["confidence/ece"]
    plot_reliability(
      ev.reliability, ece, os.path.join(out_dir, "reliability.png")
    )
    written["reliability"] = "reliability.png"
  return written


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |"]
  lines.append("|" + "|".join("---" for _ in header) + "|")
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return lines


def markdown(ev: Evaluation, plots: dict[str, str], title: str) -> str:
  """report.md: headline table, per-class and per-AU tables, the plots."""
  s = ev.scalars
  lines = [f"# {title}", "", f"{int(s['count'])} completions scored.", ""]
  rows = [[label, fmt(s[k])] for k, label in HEADLINE.items() if k in s]
  lines += _table(["metric", "value"], rows) + [""]
  if ev.emotion is not None:
    e = ev.emotion
    lines += ["## Emotion", ""]
    rows = [
      [c, fmt(r), fmt(f), str(n)]
      for c, r, f, n in zip(
        e.classes, e.recall_C, e.f1_C, e.support_C, strict=True
      )
    ]
    lines += _table(["class", "recall", "F1", "support"], rows) + [""]
  if "confusion" in plots:
    lines += [f"![confusion matrix]({plots['confusion']})", ""]
  if ev.au is not None:
    a = ev.au
    lines += ["## Action units (named inside `<think>`)", ""]
    rows = [
      [au, fmt(f), str(n)]
      for au, f, n in zip(a.aus, a.f1_A, a.support_A, strict=True)
      if n
    ]
    lines += _table(["AU", "F1", "gold positives"], rows) + [""]
  if "au_f1" in plots:
    lines += [f"![per-AU F1]({plots['au_f1']})", ""]
  if "reliability" in plots:
    lines += [
      "## Confidence",
      "",
      f"![reliability]({plots['reliability']})",
      "",
    ]
  rewards = sorted(k for k in s if k.startswith("reward/"))
  lines += ["## Mean reward per part (as in training)", ""]
  lines += _table(["reward", "mean"], [[k[7:], fmt(s[k])] for k in rewards])
  lines += [
    "",
    "Every value: metrics.json. Every completion: completions.html.",
  ]
  return "\n".join(lines) + "\n"


def summary(scalars: dict[str, float], out_dir: str) -> str:
  """The one-screen summary printed at the end of a run."""
  width = max(len(v) for v in HEADLINE.values())
  lines = [f"emojax eval: {int(scalars['count'])} completions"]
  for k, label in HEADLINE.items():
    if k in scalars:
      lines.append(f"  {label:<{width}}  {fmt(scalars[k])}")
  lines.append(f"  report: {os.path.join(out_dir, REPORT_FILE)}")
  lines.append(f"  pages:  {os.path.join(out_dir, 'completions.html')}")
  return "\n".join(lines)


def write(
  out_dir: str, ev: Evaluation, title: str = "emojax evaluation"
) -> dict[str, str]:
  """metrics.json, report.md and the plots in out_dir; returns the plots."""
  os.makedirs(out_dir, exist_ok=True)
  write_metrics(os.path.join(out_dir, METRICS_FILE), ev.scalars)
  plots = write_plots(out_dir, ev)
  with open(os.path.join(out_dir, REPORT_FILE), "w", encoding="utf-8") as f:
    f.write(markdown(ev, plots, title))
  return plots
