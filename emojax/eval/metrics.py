"""The papers' evaluation metrics, as plain functions over parsed outputs.

Each function names the paper and code it follows. Inputs are already
parsed (labels, AU sets, confidences); `emojax.eval.score` does the parsing
with the reward code, so training rewards and these metrics agree.
"""

import dataclasses
from collections.abc import Sequence, Set

import numpy as np
from rouge_score import rouge_scorer

from emojax.data import facs, wheel

UNPARSEABLE = "<unparseable>"  # Column of answers no label could be read from.


@dataclasses.dataclass(frozen=True)
class EmotionResult:
  """Single-label emotion metrics; `classes` are the gold classes.

  confusion_CK counts gold class (row) against predicted column `columns`:
  the gold classes, then other predicted labels, then UNPARSEABLE.
  """

  accuracy: float
  uar: float
  macro_f1: float
  weighted_f1: float
  unparseable_rate: float
  classes: tuple[str, ...]
  recall_C: np.ndarray
  f1_C: np.ndarray
  support_C: np.ndarray
  columns: tuple[str, ...]
  confusion_CK: np.ndarray


def _class_order(labels: Set[str]) -> tuple[str, ...]:
  """Facial-R1's prompt order (affectnet8) first, the rest alphabetical."""
  known = facs.LABEL_SETS["affectnet8"]
  rank = {w: i for i, w in enumerate(known)}
  return tuple(sorted(labels, key=lambda w: (rank.get(w, len(known)), w)))


def f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
  """Per-class F1 = 2TP / (2TP + FP + FN), 0 where undefined (sklearn's
  zero_division=0)."""
  denom = 2 * tp + fp + fn
  return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def emotion_metrics(
  pred: Sequence[str | None], gold: Sequence[str]
) -> EmotionResult:
  """Accuracy (= R1-Omni's WAR), UAR, macro/weighted F1, confusion matrix.

  A None prediction is an unparseable answer and counts as wrong. Classes are
  the gold classes present: UAR is the mean recall over them (R1-Omni
  `humanomni/eval/eval_mafw_dfew.py`), macro F1 the mean F1 over them, and
  weighted F1 weights by gold support (EmoCaliber's sklearn
  `f1_score(average='weighted')`); predictions outside them count only as
  misses of their gold class. Equals sklearn with `labels=` the gold classes.
  """
  if len(pred) != len(gold):
    raise ValueError(f"{len(pred)} predictions for {len(gold)} gold labels.")
  if not gold:
    raise ValueError("no rows with a gold emotion label to score.")
  classes = _class_order(set(gold))
  others = sorted({p for p in pred if p is not None} - set(classes))
  columns = classes + tuple(others) + (UNPARSEABLE,)
  col = {c: k for k, c in enumerate(columns)}
  confusion_CK = np.zeros((len(classes), len(columns)), np.int64)
  for p, g in zip(pred, gold, strict=True):
    confusion_CK[col[g], col[UNPARSEABLE if p is None else p]] += 1
  C = len(classes)
  tp_C = np.diag(confusion_CK[:, :C]).astype(np.float64)
  support_C = confusion_CK.sum(1)
  fp_C = confusion_CK[:, :C].sum(0) - tp_C
  fn_C = support_C - tp_C
  recall_C = tp_C / support_C
  f1_C = f1(tp_C, fp_C, fn_C)
  return EmotionResult(
    accuracy=float(tp_C.sum() / len(gold)),
    uar=float(recall_C.mean()),
    macro_f1=float(f1_C.mean()),
    weighted_f1=float((f1_C * support_C).sum() / support_C.sum()),
    unparseable_rate=float(sum(p is None for p in pred) / len(pred)),
    classes=classes,
    recall_C=recall_C,
    f1_C=f1_C,
    support_C=support_C,
    columns=columns,
    confusion_CK=confusion_CK,
  )


@dataclasses.dataclass(frozen=True)
class AUResult:
  """Multi-label AU metrics over the vocabulary `aus` (gold + predicted)."""

  macro_f1: float
  micro_f1: float
  aus: tuple[str, ...]
  f1_A: np.ndarray
  support_A: np.ndarray  # Gold positives per AU; macro F1 skips zeros.


def au_metrics(pred: Sequence[Set[str]], gold: Sequence[Set[str]]) -> AUResult:
  """Facial-R1's AU F1 (`src/eval/eval_emotion.py`, `multilabel_metrics`).

  Rows are multi-hot over the union of gold and predicted AUs; macro F1 is
  the mean per-AU F1 over AUs with >= 1 gold positive, micro F1 pools every
  AU (so AUs that are only ever predicted add false positives). AU names are
  canonical ("AU6").
  """
  if len(pred) != len(gold):
    raise ValueError(f"{len(pred)} predictions for {len(gold)} gold AU sets.")
  vocab = set().union(*pred, *gold) if gold else set()
  aus = tuple(sorted(vocab, key=lambda a: int(a[2:])))
  index = {a: k for k, a in enumerate(aus)}

  def multi_hot(sets):
    y_BA = np.zeros((len(sets), len(aus)), bool)
    for b, s in enumerate(sets):
      y_BA[b, [index[a] for a in s]] = True
    return y_BA

  pred_BA, gold_BA = multi_hot(pred), multi_hot(gold)
  tp_A = (pred_BA & gold_BA).sum(0).astype(np.float64)
  fp_A = (pred_BA & ~gold_BA).sum(0)
  fn_A = (~pred_BA & gold_BA).sum(0)
  f1_A = f1(tp_A, fp_A, fn_A)
  support_A = gold_BA.sum(0)
  positive = support_A > 0
  micro = f1(tp_A.sum(), fp_A.sum(), fn_A.sum())
  return AUResult(
    macro_f1=float(f1_A[positive].mean()) if positive.any() else 0.0,
    micro_f1=float(micro),
    aus=aus,
    f1_A=f1_A,
    support_A=support_A,
  )


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
  """Mean ROUGE-L F of each completion against its reference reasoning.

  As Facial-R1's eval: `rouge_score` with the Porter stemmer, scored
  `score(reference, hypothesis)` on whole strings; a reference-less row
  has nothing to score, so callers pass only rows with a reference.
  """
  if len(hypotheses) != len(references):
    raise ValueError(
      f"{len(hypotheses)} hypotheses for {len(references)} references."
    )
  if not references:
    raise ValueError("no reference reasoning to score ROUGE-L against.")
  scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
  pairs = zip(hypotheses, references, strict=True)
  return float(
    np.mean([scorer.score(r, h)["rougeL"].fmeasure for h, r in pairs])
  )


def _confidence(conf_B, correct_B) -> tuple[np.ndarray, np.ndarray]:
  conf_B = np.asarray(conf_B, np.float64)
  correct_B = np.asarray(correct_B, np.float64)
  if conf_B.shape != correct_B.shape or conf_B.ndim != 1 or not len(conf_B):
    raise ValueError(
      f"confidences {conf_B.shape} and correctness {correct_B.shape} must be "
      "equal, non-empty 1-D."
    )
  return conf_B, correct_B


@dataclasses.dataclass(frozen=True)
class Reliability:
  """Per equal-width bin: mean confidence, accuracy, count (NaN if empty)."""

  edges: np.ndarray
  confidence: np.ndarray
  accuracy: np.ndarray
  count: np.ndarray


def reliability(conf_B, correct_B, n_bins: int = 10) -> Reliability:
  """EmoCaliber's bins (`calculate_ece`): [lo, hi) of `linspace(0, 1,
  n_bins + 1)`, except that the last bin also holds c = 1 (EmoCaliber's
  code drops such rows, which we consider a bug)."""
  conf_B, correct_B = _confidence(conf_B, correct_B)
  edges = np.linspace(0, 1, n_bins + 1)
  bin_B = np.clip(
    np.searchsorted(edges, conf_B, side="right") - 1, 0, n_bins - 1
  )
  count = np.bincount(bin_B, minlength=n_bins)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean_conf = np.bincount(bin_B, conf_B, n_bins) / count
    accuracy = np.bincount(bin_B, correct_B, n_bins) / count
  return Reliability(edges, mean_conf, accuracy, count)


def ece(conf_B, correct_B, n_bins: int = 10) -> float:
  """Expected calibration error with equal-width bins (EmoCaliber
  `inference/evaluate_multi_task_conf_from_merged.py`): the sum over bins of
  |accuracy - mean confidence| times the bin's share of rows."""
  r = reliability(conf_B, correct_B, n_bins)
  full = r.count > 0
  gap = np.abs(r.accuracy[full] - r.confidence[full])
  return float((gap * r.count[full]).sum() / r.count.sum())


def brier(conf_B, correct_B) -> float:
  """Mean (c - correct)^2 with c clipped to [0, 1] (EmoCaliber)."""
  conf_B, correct_B = _confidence(conf_B, correct_B)
  return float(np.mean((np.clip(conf_B, 0, 1) - correct_B) ** 2))


def auroc(conf_B, correct_B) -> float:
  """ROC AUC of confidence as a score for correctness (EmoCaliber uses
  sklearn `roc_auc_score`): the Mann-Whitney U over average ranks, so ties
  count half. NaN when all rows are right or all wrong."""
  conf_B, correct_B = _confidence(conf_B, correct_B)
  pos = correct_B > 0.5
  n_pos, n_neg = int(pos.sum()), int((~pos).sum())
  if not n_pos or not n_neg:
    return float("nan")
  order = np.argsort(conf_B, kind="mergesort")
  sorted_c = conf_B[order]
  ranks = np.empty(len(conf_B))
  ranks[order] = np.arange(1, len(conf_B) + 1)
  # Average the ranks of tied confidences.
  _, first, counts = np.unique(sorted_c, return_index=True, return_counts=True)
  for start, n in zip(first, counts, strict=True):
    if n > 1:
      ranks[order[start : start + n]] = start + (n + 1) / 2
  u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2
  return float(u / (n_pos * n_neg))


def ew_metrics(
  pred: Sequence[Sequence[str]],
  gold: Sequence[Sequence[str]],
  wheels: wheel.Wheels | None = None,
) -> dict[str, float]:
  """AffectGPT's EW precision/recall/F at level 1 and 2, averaged over the
  wheels (`wheel.ew_dataset`, after AffectGPT `evaluation/wheel.py`).

  Keys like `level1_f1`.
  """
  out = {}
  for level in wheel.LEVELS:
    scores = wheel.ew_dataset(pred, gold, level, wheels)
    out.update({f"{level}_{k}": v for k, v in scores.items()})
  return out


def caption_regions(
  pred: Sequence[str], truth: Sequence[str]
) -> dict[str, float]:
  """Synthetic-face captions scored region by region.

  Captions list five regions (brows; eyes; nose; mouth; jaw) separated by
  "; ". Returns the fraction of regions matched exactly, the fraction of
  whole captions matched, and the fraction of distinct predicted captions
  (a blind model says one thing for every face).
  """
  if len(pred) != len(truth) or not truth:
    raise ValueError(f"need equal, non-zero counts ({len(pred)}, {len(truth)})")

  def regions(text: str) -> list[str]:
    return text.strip().rstrip(".").split("; ")

  hits = []
  for p, t in zip(pred, truth, strict=True):
    pr, tr = regions(p), regions(t)
    hits.append(np.mean([i < len(pr) and pr[i] == x for i, x in enumerate(tr)]))
  return {
    "region_accuracy": float(np.mean(hits)),
    "exact": float(
      np.mean(
        [p.strip() == t.strip() for p, t in zip(pred, truth, strict=True)]
      )
    ),
    "distinct": len(set(pred)) / len(pred),
  }
