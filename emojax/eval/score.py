"""Scores completions: parse with the reward code, then compute the metrics.

Answers, AUs (inside `<think>`), format and FACS consistency are read by
`emojax.rewards`' own parsers, so an evaluation number means what the
training reward meant. Every metric lands in one flat dict (`scalars`)
with keys like `emotion/accuracy`; `rows` keeps each row's parse and reward
scores for the HTML page.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from emojax.data import facs, wheel
from emojax.eval import metrics
from emojax.rewards import REWARDS, tags, wheel_f1
from emojax.rewards.au import think_aus
from emojax.rewards.emotion import predicted_label, single_answer, split_labels

# Rewards shown per row (and averaged as `reward/<name>`); "confidence" is
# added when any completion verbalises one. The FACS ones are left out when
# no row has gold AUs and no completion names one (a speech or text recipe):
# there `facs_consistency` would only count neutral answers, the empty AU
# set fitting the neutral prototype.
ROW_REWARDS = ("format", "emotion", "au_f1", "facs_consistency", "ew_f1")
FACS_REWARDS = ("au_f1", "facs_consistency")


@dataclasses.dataclass(frozen=True)
class Example:
  """One completion and its gold fields (Facial-R1's JSONL names)."""

  completion: str
  labels: tuple[str, ...] = ()
  aus: tuple[str, ...] = ()
  confidence: float | None = None  # Else read from `<confidence>`, if any.
  description: str = ""  # Reference reasoning, for ROUGE-L.
  image: str | bytes | None = None  # A path or encoded bytes, for the HTML.
  where: str = ""  # "file:line", for messages.


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """Flat scalars, the structured results behind the plots, per-row info."""

  scalars: dict[str, float]
  emotion: metrics.EmotionResult | None
  au: metrics.AUResult | None
  reliability: metrics.Reliability | None
  rows: list[dict]


def verbal_confidence(text: str) -> float | None:
  """The number in the only `<confidence>` block (EmoCaliber), if in [0, 1]."""
  found = tags.contents(text, "confidence")
  if len(found) != 1:
    return None
  try:
    c = float(found[0].strip())
  except ValueError:
    return None
  return c if 0.0 <= c <= 1.0 and math.isfinite(c) else None


def _gold_label(ex: Example) -> str | None:
  words = [w for w in ex.labels if w.strip()]
  return facs.normalize_label(words[0]) if words else None


def _allowed(label_set: str | Sequence[str] | None) -> frozenset[str] | None:
  if label_set is None:
    return None
  words = (
    facs.LABEL_SETS[label_set] if isinstance(label_set, str) else label_set
  )
  return frozenset(facs.normalize_label(w) or w for w in words)


def _reward_table(
  examples: Sequence[Example],
  label_set,
  wheels,
  with_confidence: bool,
  about_aus: bool,
) -> dict[str, np.ndarray]:
  completions = [ex.completion for ex in examples]
  batch = {
    "labels": [list(ex.labels) for ex in examples],
    "AUs": [list(ex.aus) for ex in examples],
  }
  if label_set is not None:  # rewards take a set name, or one set per row
    batch["label_set"] = (
      label_set
      if isinstance(label_set, str)
      else [tuple(label_set)] * len(examples)
    )
  table = dict(REWARDS)
  if wheels is not None:
    table["ew_f1"] = wheel_f1.make_ew_reward(wheels=wheels)
  names = ROW_REWARDS + (("confidence",) if with_confidence else ())
  if not about_aus:
    names = tuple(n for n in names if n not in FACS_REWARDS)
  return {n: np.asarray(table[n](completions, batch), float) for n in names}


def evaluate(
  examples: Sequence[Example],
  label_set: str | Sequence[str] | None = None,
  wheels: wheel.Wheels | None = None,
  n_bins: int = 10,
) -> Evaluation:
  """All metrics that the rows' fields allow.

  `label_set` (a facs.LABEL_SETS key or words) restricts valid answers, as
  the reward's `label_set` does; answers outside it are unparseable.
  """
  if not examples:
    raise ValueError("no predictions to score.")
  allowed = _allowed(label_set)
  texts = [ex.completion for ex in examples]
  confs = [
    ex.confidence if ex.confidence is not None else verbal_confidence(t)
    for ex, t in zip(examples, texts, strict=True)
  ]
  with_conf = any("<confidence>" in t for t in texts)
  named_aus = [think_aus(t) for t in texts]
  about_aus = any(ex.aus for ex in examples) or any(named_aus)
  rewards = _reward_table(examples, label_set, wheels, with_conf, about_aus)
  rows = []
  for i, (ex, text) in enumerate(zip(examples, texts, strict=True)):
    gold = _gold_label(ex)
    pred = predicted_label(text, allowed)
    rows.append(
      {
        "gold_label": gold,
        "pred_label": pred,
        "correct": None if gold is None else pred == gold,
        "gold_aus": sorted(
          {facs.canonical_au(a) for a in ex.aus}, key=lambda a: int(a[2:])
        ),
        "pred_aus": sorted(named_aus[i], key=lambda a: int(a[2:])),
        "format_ok": bool(rewards["format"][i] > 0),
        "confidence": confs[i],
        "rewards": {n: float(r[i]) for n, r in rewards.items()},
      }
    )
  s: dict[str, float] = {"count": float(len(examples))}
  s.update({f"reward/{n}": float(r.mean()) for n, r in rewards.items()})
  s["format/valid_rate"] = float(rewards["format"].mean())
  if "facs_consistency" in rewards:
    s["facs/consistency"] = float(rewards["facs_consistency"].mean())
  emotion = _emotion(rows, s)
  au = _au(rows, s)
  rel = _confidence(rows, s, n_bins)
  _reasoning(examples, s)
  _open_vocab(examples, texts, wheels, s)
  return Evaluation(s, emotion, au, rel, rows)


def _emotion(rows: list[dict], s: dict) -> metrics.EmotionResult | None:
  scored = [r for r in rows if r["gold_label"] is not None]
  if not scored:
    return None
  res = metrics.emotion_metrics(
    [r["pred_label"] for r in scored], [r["gold_label"] for r in scored]
  )
  s["emotion/count"] = float(len(scored))
  for k in ("accuracy", "uar", "macro_f1", "weighted_f1", "unparseable_rate"):
    s[f"emotion/{k}"] = getattr(res, k)
  for c, rec, f in zip(res.classes, res.recall_C, res.f1_C, strict=True):
    s[f"emotion/recall/{c}"] = float(rec)
    s[f"emotion/f1/{c}"] = float(f)
  return res


def _au(rows: list[dict], s: dict) -> metrics.AUResult | None:
  # An empty gold AU list means "not annotated" (as the au_f1 reward reads
  # it: no signal), so those rows are left out rather than scored as
  # "no AU active".
  scored = [r for r in rows if r["gold_aus"]]
  if not scored:
    return None
  res = metrics.au_metrics(
    [set(r["pred_aus"]) for r in scored], [set(r["gold_aus"]) for r in scored]
  )
  s["au/count"] = float(len(scored))
  s["au/macro_f1"], s["au/micro_f1"] = res.macro_f1, res.micro_f1
  for a, f, n in zip(res.aus, res.f1_A, res.support_A, strict=True):
    if n:
      s[f"au/f1/{a}"] = float(f)
  return res


def _confidence(rows, s, n_bins) -> metrics.Reliability | None:
  scored = [
    r for r in rows if r["confidence"] is not None and r["correct"] is not None
  ]
  if not scored:
    return None
  conf = [r["confidence"] for r in scored]
  correct = [float(r["correct"]) for r in scored]
  s["confidence/coverage"] = len(scored) / len(rows)
  s["confidence/ece"] = metrics.ece(conf, correct, n_bins)
  s["confidence/brier"] = metrics.brier(conf, correct)
  s["confidence/auroc"] = metrics.auroc(conf, correct)
  s["confidence/mean"] = float(np.mean(conf))
  return metrics.reliability(conf, correct, n_bins)


def _reasoning(examples: Sequence[Example], s: dict) -> None:
  pairs = [(ex.completion, ex.description) for ex in examples if ex.description]
  if pairs:
    hyps, refs = zip(*pairs, strict=True)
    s["reasoning/count"] = float(len(pairs))
    s["reasoning/rouge_l"] = metrics.rouge_l(hyps, refs)


def _open_vocab(examples, texts, wheels, s: dict) -> None:
  golds = [[w for w in ex.labels if w.strip()] for ex in examples]
  preds = [
    split_labels(a) if (a := single_answer(t)) is not None else []
    for t in texts
  ]
  keep = [i for i, g in enumerate(golds) if g]
  if keep:
    ew = metrics.ew_metrics(
      [preds[i] for i in keep], [golds[i] for i in keep], wheels
    )
    s.update({f"ew/{k}": v for k, v in ew.items()})
