"""The prosody rule judge and the trust reward built from `config.rl.trust`."""

import math

import numpy as np
import pytest

from configs import common
from emojax import rewards
from emojax.data import prosody
from emojax.rewards.prosody import ProsodyJudge, level_claims, quotes_transcript

CAPTION = (
  "speaker: female, elderly; pitch: high; energy: low; speed: fast; "
  "intonation: rising-falling; stressed: never"
)
TEXT = "I will never go back there."
RIGHT = (
  '<think>An elderly woman says "never go back". Her pitch is high while '
  "the energy stays low, and the pace is rapid; the intonation is "
  "rising-falling.</think><answer>fear</answer>"
)


@pytest.mark.parametrize(
  ("text", "claims"),
  [
    (
      "The pitch is high and the energy is low.",
      {("pitch", "high"), ("energy", "low")},
    ),
    (
      "A quick tempo. A rising-falling contour.",
      {("speed", "fast"), ("intonation", "rising-falling")},
    ),
    ("A female speaker, not male.", {("gender", "female"), ("gender", "male")}),
    ("A middle-aged man speaks.", {("gender", "male"), ("age", "middle-aged")}),
    ("High hopes, she said; the pitch stays normal.", {("pitch", "normal")}),
    ("Nothing about the voice.", set()),
  ],
)
def test_level_claims(text, claims):
  assert level_claims(text) == claims


def test_quotes_transcript():
  assert quotes_transcript('she says "never go back"', TEXT)
  assert not quotes_transcript('she says "never"', TEXT)  # One word.
  assert not quotes_transcript('she says "go home now"', TEXT)
  assert quotes_transcript("no quote", "")  # Nothing to quote.
  assert quotes_transcript('"Fine."', "fine")  # A one-word transcript.


def _judge(completions, caption=CAPTION, text=TEXT):
  n = len(completions)
  return ProsodyJudge()(
    completions, {"caption": [caption] * n, "text": [text] * n}
  )


def test_judge_scores_claims_f1_and_quote():
  wrong_pitch = RIGHT.replace("pitch is high", "pitch is low")
  no_quote = RIGHT.replace('"never go back"', "something")
  got = _judge(
    [RIGHT, wrong_pitch, no_quote, "<think> </think><answer>fear</answer>"]
  )
  gold = 6  # gender, age, pitch, energy, speed, intonation.
  # wrong pitch: 5 of 6 claims right, 1 wrong -> F1 = 2*5 / (6 + 6).
  np.testing.assert_allclose(got, [1.0, (10 / 12 + 1) / 2, 0.5, 0.0])
  assert gold == len(prosody.parse_caption(CAPTION).levels())


def test_claims_about_unlabelled_cues_are_not_counted():
  # The row has no intonation reading; a claim about it is not checked.
  caption = CAPTION.replace("; intonation: rising-falling", "")
  np.testing.assert_allclose(_judge([RIGHT], caption=caption), [1.0])


def test_trust_reward_follows_config_schedule_and_judge():
  rl = common.grpo_preset("emotion_thinker")
  rl.trust.start, rl.trust.horizon, rl.trust.scale = 10.0, 20.0, 0.5
  fn = rewards.configured(rl)["trust_reasoning"]
  wrong = RIGHT.replace("<answer>fear</answer>", "<answer>anger</answer>")
  no_quote = RIGHT.replace('"never go back"', "something")
  completions = [RIGHT, no_quote, wrong, wrong]
  ex = {
    "labels": [["fear"]] * 4,
    "caption": [CAPTION] * 4,
    "text": [TEXT] * 4,
    "group_size": 4,
  }
  assert not fn(completions, {**ex, "step": 10}).any()  # Ramp not begun.
  got = fn(completions, {**ex, "step": 20})  # Halfway up the ramp.
  # Correct rows' judge mean (0.75) is above the wrong rows' (0: the judge
  # runs only where the answer reward is >= 0.2), so trust is 1.
  np.testing.assert_allclose(got, 0.25 * np.array([1.0, 0.5, 0.0, 0.0]))
  assert math.isclose(fn(completions, {**ex, "step": 100})[0], 0.5)


def test_grpo_scoring_hands_the_rows_cues_to_the_judge():
  """grpo.score passes each prompt's caption and transcript to the reward
  table: a right answer whose reasoning matches scores the trust part."""
  import types

  from configs import emotion_thinker
  from emojax.train import grpo

  rl = emotion_thinker.get_config("").rl
  rl.group_size, rl.trust.start, rl.trust.horizon = 2, 0.0, 1.0
  prompts = {
    "input_ids": np.ones((2, 3), np.int32),
    "labels": [["fear"], ["fear"]],
    "AUs": [[], []],
    "text": [TEXT, "Another line entirely."],
    "caption": [CAPTION, CAPTION.replace("pitch: high", "pitch: low")],
  }
  texts = (RIGHT, RIGHT.replace("<answer>fear", "<answer>anger"), RIGHT, RIGHT)
  ro = types.SimpleNamespace(text=texts, lengths=np.full(4, 50))
  table = rewards.configured(rl)
  rewards_PGR, _ = grpo.score(prompts, ro, rl, 5, table, ("fear", "anger"))
  trust_PG = rewards_PGR[..., rl.reward_names.index("trust_reasoning")]
  # Prompt 1: the right row is judged 1, the wrong one not judged. Prompt
  # 2: its caption says low pitch (F1 10/12) and its transcript is not
  # quoted, so 0.5 * 10/12; both rows right, trust 1; w = 0.3 at the top.
  np.testing.assert_allclose(trust_PG, 0.3 * np.array([[1, 0], [5 / 12] * 2]))
