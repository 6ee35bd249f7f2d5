"""eval metrics against scikit-learn, rouge-score and numpy transcriptions."""

import numpy as np
import pytest
from rouge_score import rouge_scorer
from sklearn import metrics as skm
from sklearn.preprocessing import MultiLabelBinarizer

from emojax.data import facs
from emojax.eval import metrics, score

CLASSES = facs.LABEL_SETS["basic7"]
# Surface forms that normalise to each class, so parsing is exercised.
FORMS = {
  "anger": ["angry", "Anger"],
  "happiness": ["happy", "Happiness"],
  "sadness": ["sad", "SAD"],
  "neutral": ["neutral"],
  "disgust": ["disgusted"],
  "surprise": ["surprised", "Surprise"],
  "fear": ["fearful", "scared"],
}
# Completions from which no single label can be read.
UNPARSEABLE = [
  "",
  "happiness",
  "<think>brows down</think>",
  "<answer>happy or sad</answer>",
  "<answer>sad</answer><answer>happy</answer>",
  "<answer>banana</answer>",
  "<answer></answer>",
]


def _random_rows(rng, n):
  """(examples, intended pred labels, gold labels, pred AU sets)."""
  aus = ["AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU25", "AU26"]
  examples, preds, golds, pred_aus = [], [], [], []
  for i in range(n):
    gold = CLASSES[rng.integers(5)]  # Two classes never gold: extra columns.
    gold_aus = [a for a in aus if rng.random() < 0.3]
    named = sorted({a for a in aus if rng.random() < 0.3})
    kind = rng.random()
    if kind < 0.2:
      text, pred, named = UNPARSEABLE[i % len(UNPARSEABLE)], None, []
    else:
      pred = CLASSES[rng.integers(7)]
      word = FORMS[pred][rng.integers(len(FORMS[pred]))]
      think = " ".join(f"feature ({a})" for a in named) or "calm face"
      text = f"<think>{think}</think>\n<answer>{word}</answer>"
      if kind > 0.9:  # AUs outside <think> do not count.
        text += " AU9 AU10"
    examples.append(
      score.Example(
        completion=text,
        labels=(gold,),
        aus=tuple(gold_aus),
        description="the brows are raised and the mouth is open"
        if i % 3
        else "",
      )
    )
    preds.append(pred)
    golds.append(gold)
    pred_aus.append(named)
  return examples, preds, golds, pred_aus


@pytest.fixture(scope="module")
def scored():
  rng = np.random.default_rng(0)
  examples, preds, golds, pred_aus = _random_rows(rng, 300)
  return score.evaluate(examples), examples, preds, golds, pred_aus


def test_emotion_metrics_equal_sklearn(scored):
  ev, _, preds, golds, _ = scored
  y_pred = [p if p is not None else "<none>" for p in preds]
  labels = sorted(set(golds))
  s = ev.scalars
  assert s["emotion/accuracy"] == pytest.approx(
    skm.accuracy_score(golds, y_pred)
  )
  assert s["emotion/uar"] == pytest.approx(
    skm.recall_score(golds, y_pred, labels=labels, average="macro")
  )
  for avg in ("macro", "weighted"):
    assert s[f"emotion/{avg}_f1"] == pytest.approx(
      skm.f1_score(golds, y_pred, labels=labels, average=avg)
    )
  per_label = skm.f1_score(golds, y_pred, labels=labels, average=None)
  for c, f in zip(labels, per_label, strict=True):
    assert s[f"emotion/f1/{c}"] == pytest.approx(f)
  assert s["emotion/unparseable_rate"] == pytest.approx(
    np.mean([p is None for p in preds])
  )
  assert 0 < s["emotion/unparseable_rate"] < 1


def test_confusion_matrix_equals_sklearn(scored):
  ev, _, preds, golds, _ = scored
  res = ev.emotion
  y_pred = [p if p is not None else metrics.UNPARSEABLE for p in preds]
  cm = skm.confusion_matrix(golds, y_pred, labels=list(res.columns))
  np.testing.assert_array_equal(res.confusion_CK, cm[: len(res.classes)])
  assert res.columns[-1] == metrics.UNPARSEABLE
  assert {"surprise", "fear"} <= set(res.columns) - set(res.classes)


def test_au_metrics_equal_sklearn_on_think_aus(scored):
  ev, examples, _, _, pred_aus = scored
  keep = [i for i, ex in enumerate(examples) if ex.aus]
  gold = [set(examples[i].aus) for i in keep]
  pred = [set(pred_aus[i]) for i in keep]
  mlb = MultiLabelBinarizer().fit(gold + pred)
  y_true, y_pred = mlb.transform(gold), mlb.transform(pred)
  f1_each = skm.f1_score(y_true, y_pred, average=None, zero_division=0)
  positive = y_true.sum(0) > 0
  s = ev.scalars
  assert s["au/macro_f1"] == pytest.approx(f1_each[positive].mean())
  assert s["au/micro_f1"] == pytest.approx(
    skm.f1_score(y_true, y_pred, average="micro", zero_division=0)
  )
  for a, f, pos in zip(mlb.classes_, f1_each, positive, strict=True):
    assert s.get(f"au/f1/{a}") == (pytest.approx(f) if pos else None)
  assert "au/f1/AU9" not in s  # Named only outside <think>, never gold.


def test_au_macro_skips_aus_without_positives():
  res = metrics.au_metrics([{"AU1", "AU9"}, {"AU1"}], [{"AU1"}, {"AU1"}])
  assert res.aus == ("AU1", "AU9")
  assert res.macro_f1 == 1.0
  assert res.micro_f1 == pytest.approx(2 * 2 / (2 * 2 + 1))


def test_rouge_l_equals_rouge_score(scored):
  ev, examples, _, _, _ = scored
  scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
  want = [
    scorer.score(ex.description, ex.completion)["rougeL"].fmeasure
    for ex in examples
    if ex.description
  ]
  assert ev.scalars["reasoning/rouge_l"] == pytest.approx(np.mean(want))
  assert ev.scalars["reasoning/count"] == len(want)


def _ece_transcribed(conf, acc, n_bins=10):
  """EmoCaliber's calculate_ece, last bin closed at 1."""
  conf, acc = np.array(conf), np.array(acc)
  bounds = np.linspace(0, 1, n_bins + 1)
  ece = 0.0
  for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
    upper = conf <= hi if k == n_bins - 1 else conf < hi
    in_bin = np.logical_and(conf >= lo, upper)
    prop = np.mean(in_bin)
    if prop > 0:
      ece += np.abs(np.mean(acc[in_bin]) - np.mean(conf[in_bin])) * prop
  return ece


def test_confidence_metrics_equal_references():
  rng = np.random.default_rng(1)
  conf = rng.random(500)
  conf[:40] = np.round(conf[:40], 1)  # Bin edges and ties, 0.0 and 1.0.
  conf[40:44] = [0.0, 1.0, 1.0, 0.3]
  correct = (rng.random(500) < conf).astype(float)
  assert metrics.ece(conf, correct) == pytest.approx(
    _ece_transcribed(conf, correct)
  )
  assert metrics.brier(conf, correct) == pytest.approx(
    np.mean((conf - correct) ** 2)
  )
  assert metrics.auroc(conf, correct) == pytest.approx(
    skm.roc_auc_score(correct, conf)
  )
  assert np.isnan(metrics.auroc(conf, np.ones(500)))
  rel = metrics.reliability(conf, correct)
  assert rel.count.sum() == 500


def test_confidence_from_field_or_tag():
  tagged = "<think>x</think><answer>sad</answer><confidence>0.8</confidence>"
  examples = [
    score.Example("<answer>happy</answer>", ("happiness",), confidence=0.9),
    score.Example(tagged, ("sadness",)),
    score.Example("<answer>sad</answer>", ("anger",), confidence=0.4),
    score.Example("<answer>sad</answer>", ("anger",)),  # No confidence.
  ]
  ev = score.evaluate(examples)
  s = ev.scalars
  conf, right = [0.9, 0.8, 0.4], [1.0, 1.0, 0.0]
  assert s["confidence/coverage"] == 0.75
  assert s["confidence/brier"] == pytest.approx(
    np.mean((np.array(conf) - right) ** 2)
  )
  assert s["confidence/auroc"] == 1.0
  assert "reward/confidence" in s


def test_facs_metrics_only_where_rows_are_about_aus():
  # A speech recipe's rows: no gold AUs, no AU in any reasoning. The neutral
  # answer would score facs_consistency 1 (empty set = neutral prototype).
  speech = [
    score.Example(
      "<think>high pitch</think><answer>anger</answer>", ("anger",)
    ),
    score.Example("<think>flat</think><answer>neutral</answer>", ("neutral",)),
  ]
  ev = score.evaluate(speech)
  assert "facs/consistency" not in ev.scalars
  assert "reward/au_f1" not in ev.scalars
  assert set(ev.rows[0]["rewards"]) == {"format", "emotion", "ew_f1"}
  # One completion naming an AU brings them back, for every row.
  face = [*speech, score.Example("<think>AU12</think><answer>happy</answer>")]
  s = score.evaluate(face).scalars
  # AU12 alone against happiness's {AU6, AU12}: F1 2/3.
  assert s["facs/consistency"] == pytest.approx((0 + 1 + 2 / 3) / 3)
  assert "reward/au_f1" in s


def test_open_vocabulary_ew():
  examples = [
    score.Example("<think>a</think><answer>happy</answer>", ("happiness",)),
    score.Example("<think>a</think><answer>angry, sad</answer>", ("anger",)),
    score.Example("no answer", ("sadness",)),
  ]
  s = score.evaluate(examples).scalars
  for level in ("level1", "level2"):
    assert 0 < s[f"ew/{level}_f1"] < 1
    # Per-sample recall 1, 1, 0; precision 1, 1/2, 0 (Parrott's wheel).
    assert s[f"ew/{level}_recall"] == pytest.approx(2 / 3)
    assert s[f"ew/{level}_precision"] == pytest.approx(0.5)


def test_caption_regions_scores_each_region():
  truth = [
    "The brows pull down; the eyes are open and calm; the nose is smooth; "
    "the lips are relaxed; the jaw is at rest.",
  ] * 2
  pred = [
    truth[0],
    "The brows are relaxed; the eyes are open and calm; the nose is smooth.",
  ]
  got = metrics.caption_regions(pred, truth)
  # Row 2 matches regions 2 and 3 of 5 (a missing region is a miss).
  assert got["region_accuracy"] == pytest.approx((1.0 + 2 / 5) / 2)
  assert got["exact"] == 0.5 and got["distinct"] == 1.0
  blind = metrics.caption_regions([pred[1]] * 2, truth)
  assert blind["distinct"] == 0.5
  with pytest.raises(ValueError, match="equal"):
    metrics.caption_regions(pred, truth[:1])
