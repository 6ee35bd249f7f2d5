"""set_f1, ew_f1, confidence, length, trust_reasoning and span masks."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from emojax.rewards import REWARDS, confidence, length, tags, trust, wheel_f1


def _answer(a):
  return f"<think>x</think><answer>{a}</answer>"


def test_set_f1_matches_sklearn_on_multi_hot():
  vocab = ["anger", "sadness", "fear", "surprise", "happiness"]
  preds = [["angry", "sad"], ["fear"], ["Happy", "surprised", "sad"]]
  golds = [["anger"], ["fear", "sadness"], ["happiness"]]
  got = REWARDS["set_f1"](
    [_answer(", ".join(p)) for p in preds], {"labels": golds}
  )
  norm = {"angry": "anger", "sad": "sadness", "Happy": "happiness"}
  norm["surprised"] = "surprise"
  for g, p, gold in zip(got, preds, golds, strict=True):
    hot = lambda ws: [int(v in {norm.get(w, w) for w in ws}) for v in vocab]
    want = f1_score(hot(gold), hot(p), zero_division=0.0)
    assert math.isclose(g, want)


def test_set_f1_empty_and_spam():
  ex = {"labels": [["anger"]] * 2}
  got = REWARDS["set_f1"]([_answer(""), _answer("anger, fear, joy, love")], ex)
  np.testing.assert_allclose(got, [0.0, 2 / 5])


@pytest.mark.parametrize(
  "n, m, kind, want",
  [
    (3, 1, "p1", 1 / 3),
    (3, 1, "p2", 1 / 3),
    (4, 2, "p3", math.log(2) / math.log(4)),
    (3, 1, "p3", 0.0),
    (2, 2, "p3", 1.0),
    (1, 3, "p1", 1.0),
  ],
)
def test_length_penalties(n, m, kind, want):
  assert math.isclose(wheel_f1.length_penalty(n, m, kind), want)


def test_ew_f1_rewards_wheel_neighbours_and_penalises_spam():
  ex = {"labels": [["annoyed"]] * 3}
  got = REWARDS["ew_f1"](
    [
      _answer("irritated"),  # Same level-2 node (irritation): 1.
      _answer("furious"),  # Same root (anger), other level-2 node: 0.5.
      _answer("annoyed, sad, scared, happy"),  # Spam, P3 with m=1: 0.
    ],
    ex,
  )
  np.testing.assert_allclose(got, [1.0, 0.5, 0.0])


def test_confidence_reward_transcribes_emocaliber():
  body = "".join(f"<{t}>.</{t}>" for t in confidence.SUBTAGS)

  def make(answer, c):
    return f"<think>{body}</think><answer>{answer}</answer>" + (
      f"<confidence>{c}</confidence>"
    )

  ex = {"labels": [["Joy"]] * 6}
  got = REWARDS["confidence"](
    [
      make("joy", 0.8),
      make("sad", 0.8),
      make("joy", 1.0),
      make("joy joy", 0.5),
      make("joy", 0.8).replace("<human>.</human>", ""),
      make("joy", 0.8) + "<answer>sad</answer>",
    ],
    ex,
  )
  want = [
    1 + 1 + 2 * math.log(0.8),
    1 + 0 + 2 * math.log(0.2),
    -5.0,
    1 + 0 + 2 * math.log(0.5),
    -5.0,
    -5.0,
  ]
  np.testing.assert_allclose(got, want)


def test_overlong_is_dapo_and_counts_tokens():
  ex = {"completion_lengths": [10, 1536, 1792, 2048, 3000]}
  got = length.make_overlong_reward(2048, 512)(["x"] * 5, ex)
  np.testing.assert_allclose(got, [0.0, 0.0, -0.5, -1.0, -1.0])
  np.testing.assert_allclose(
    REWARDS["length"](["x", "y"], {"completion_lengths": [1024, 0]}),
    [-0.5, 0.0],
  )
  with pytest.raises(KeyError, match="completion_lengths"):
    REWARDS["overlong"](["x"], {})


def test_trust_weights_transcribe_sophiavl():
  answer = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
  think = np.array([0.2, 0.4, 0.9, 0.7, 0.5, 0.5, 0.5, 0.5])
  got = trust.trust_weights(answer, think, 4, 0.3)
  # Group 0: correct mean 0.3 < wrong mean 0.8, so 0.3 * e^-0.5.
  disc = 0.3 * math.exp(0.3 - 0.8)
  np.testing.assert_allclose(got[:4], disc * think[:4])
  np.testing.assert_allclose(got[4:], 0.3 * think[4:])


def test_trust_reward_runs_the_judge_only_on_passing_answers():
  calls = []

  def judge(completions, examples):
    calls.append(len(completions))
    return np.ones(len(completions))

  fn = trust.make_trust_reward(
    judge, schedule=trust.Schedule("anneal", 0.3, 100.0)
  )
  good = "<think>AU6 AU12</think><answer>happiness</answer>"
  bad = "<think>AU6 AU12</think><answer>sadness</answer>"
  ex = {
    "labels": [["happiness"]] * 4,
    "AUs": [["AU6", "AU12"]] * 4,
    "group_size": 2,
    "step": 100,
  }
  got = fn([good, bad, good, good], ex)
  assert calls == [3]
  np.testing.assert_allclose(got, 0.3 * math.exp(-1) * np.array([1, 0, 1, 1]))


def test_schedules_and_rule_judge():
  s = trust.Schedule("progressive", 0.3, 100.0, start=50.0)
  assert [s(0), s(100), s(1000)] == [0.0, 0.15, 0.3]
  judge = trust.RuleJudge()
  ex = {"AUs": [["AU6", "AU12"]] * 2}
  got = judge(
    [
      "<think>cheeks up (AU6), smile (AU12)</think><answer>happy</answer>",
      "<think>maybe not sad</think><answer>happy</answer>",
    ],
    ex,
  )
  np.testing.assert_allclose(got, [1.0, 1 / 3])


def test_span_token_mask_selects_think_tokens():
  text = "<think>AU6 up</think><answer>happy</answer>"
  # Tokens: "<think>", "AU6", " up", "</think>", "<answer>", ...
  offsets = [(0, 7), (7, 10), (10, 13), (13, 21), (21, 29), (29, 34)]
  mask = tags.span_token_mask(tags.think_span(text), offsets)
  np.testing.assert_array_equal(mask, [0, 1, 1, 0, 0, 0])
  assert not tags.span_token_mask(None, offsets).any()
