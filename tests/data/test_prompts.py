"""Recipe prompts against straight transcriptions of the originals."""

import re

import pytest

from emojax.data import facs, prompts

BASIC7 = facs.LABEL_SETS["basic7"]

# RobitsG/Facial-R1 emotion_prompt.py GRPO_PROMPT, transcribed (before and
# after its AU definition list, which emojax builds from facs.AUS).
FACIAL_R1_HEAD = (
  "Question: {Question}\n"
  "First, output the thinking process in <think>...</think> tags, producing "
  "a concise and precise analysis by only describing the most decisive AUs "
  "and how these lead to your emotion inference.\n"
  "Seamlessly integrate only truly relevant AU numbers (in parentheses), "
  "directly tying each to your emotional reasoning—avoid uncertainty, "
  "negations, or mentioning unlikely emotions.\n"
  "After the thinking process, output only the final emotion—choose one from "
  "{Emotions}—as a single word in <answer>...</answer> tags.\n\n"
  "Use these AU definitions and their possible emotional associations:\n"
  "AU1: Inner brow raiser; AU2: Outer brow raiser; AU4: Brow lowerer; "
)
FACIAL_R1_TAIL = (
  "AU43: Eyes closed.\n\n"
  "Here is a sample of the required analysis style:\n"
  "<think>The man's eyebrows are pulled together and lowered (AU4), and the "
  "mouth corners are downturned (AU15). This combination of brow lowering "
  "(AU4) and mouth corner depression (AU15) is a strong indicator of "
  "sadness.</think>\n<answer>sadness</answer>"
)


def test_facial_r1_grpo_matches_transcription():
  text = prompts.facial_r1_grpo(BASIC7, question="How does she feel?")
  emotions = "[anger, happiness, sadness, neutral, disgust, surprise, fear]"
  head = FACIAL_R1_HEAD.format(Question="How does she feel?", Emotions=emotions)
  assert text.startswith(head)
  assert text.endswith(FACIAL_R1_TAIL)
  for n, au in facs.AUS.items():
    assert f"AU{n}: {au.name[0].upper()}{au.name[1:]};" in text or n == 43


def test_short_variant_keeps_the_rules():
  text = prompts.facial_r1_grpo(BASIC7, au_definitions=False)
  assert prompts.DEFAULT_QUESTION in text
  assert "[anger, happiness" in text and "(AU4)" in text
  assert "<think>...</think>" in text and "<answer>...</answer>" in text
  assert "AU43" not in text and len(text) < 400


def test_synthesis_ground_truth_and_retries():
  base = prompts.facial_r1_grpo(BASIC7)
  text = prompts.facial_r1_synthesis(
    BASIC7,
    ["AU4", "AU12", "AU4"],
    ["anger"],
    retries=[("<think>x</think>", ["The predicted AUs must be: ['AU4']"])],
  )
  assert text.startswith(base + "\n\n### Ground Truth\n")
  assert (
    "Your analysis MUST identify these specific Action Units: "
    "['AU12', 'AU4']\nAnd your final answer MUST be this exact emotion: "
    "['anger']\n\n### Previous Response Issues\nHere is your previous "
    "response:\n<think>x</think>\n\nYour previous response had the following "
    "issues:\nThe predicted AUs must be: ['AU4']\n\n" in text
  )
  assert text.endswith("5. Be concise and precise")
  only_label = prompts.facial_r1_synthesis(BASIC7, [], ["fear"])
  assert "Action Units: [" not in only_label
  assert only_label.endswith("exact emotion: ['fear']")
  assert prompts.facial_r1_synthesis(BASIC7, [], []) == base


def test_r1_omni_emocaliber_text_classifier():
  assert prompts.R1_OMNI.startswith("As an emotional recognition expert;")
  cal = prompts.emocaliber(["amusement", "anger"])
  for tag in ("think", "element", "human", "context", "interaction"):
    assert f"<{tag}>" in cal
  assert "<confidence>...</confidence>" in cal
  text = prompts.text_classifier("i feel great")
  assert text.startswith("Text: i feel great\n")
  assert "[sadness, joy, love, anger, fear, surprise]" in text


def test_messages_in_hf_chat_format():
  assert prompts.messages("hi") == [
    {
      "role": "user",
      "content": [{"type": "image"}, {"type": "text", "text": "hi"}],
    }
  ]
  msgs = prompts.messages("hi", image=False, system="sys")
  assert msgs == [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
  ]
  video = prompts.messages("hi", image=False, video=True)
  assert video[0]["content"] == [
    {"type": "video"},
    {"type": "text", "text": "hi"},
  ]


def test_emotion_list_rejects_non_labels():
  with pytest.raises(ValueError, match=re.escape("'happy'")):
    prompts.facial_r1_grpo(["happy", "anger"])
  with pytest.raises(ValueError, match="non-empty"):
    prompts.emotion_list([])
