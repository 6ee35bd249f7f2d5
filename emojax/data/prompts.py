"""The recipes' prompts (METHODS.md) and HF chat messages around them.

Facial-R1 texts are transcribed from RobitsG/Facial-R1
(`src/open-r1-multimodal/src/open_r1/prompts/emotion_prompt.py` GRPO_PROMPT,
`src/eval/infer_emotion.py` Ground Truth and retry blocks); R1-Omni's from
HumanMLLM/R1-Omni; EmotionThinker's system turn and question from
dingdongwang/EmotionThinker. EmoCaliber's, HumanOmniV2's, AffectGPT-R1's
open-vocabulary one and the reasoning-text classifier's are emojax's
wording of the formats their papers describe (their prompts ship inside
their data, not their code, or no code is public). Facial-R1 formats the
emotion list with Python's `dict.keys()` repr; emojax writes it as
`[anger, happiness, ...]`, the form of Facial-R1's own commented-out short
prompt.
"""

import re
from collections.abc import Iterable, Sequence

from emojax.data import facs

DEFAULT_QUESTION = "What is the emotion of this face?"
CAPTION_QUESTION = (
  "Describe what the brows, eyes, nose, mouth and jaw of this face are doing."
)

# Facial-R1 GRPO_PROMPT, with {Question}, {Emotions} and {AUs} slots (the
# AU list is written out in the original; here it is built from facs.AUS).
_FACIAL_R1_HEAD = (
  "Question: {Question}\n"
  "First, output the thinking process in <think>...</think> tags, "
  "producing a concise and precise analysis by only describing the most "
  "decisive AUs and how these lead to your emotion inference.\n"
  "Seamlessly integrate only truly relevant AU numbers (in parentheses), "
  "directly tying each to your emotional reasoning\u2014avoid uncertainty, "
  "negations, or mentioning unlikely emotions.\n"
  "After the thinking process, output only the final emotion\u2014choose one "
  "from {Emotions}\u2014as a single word in <answer>...</answer> tags."
)
_FACIAL_R1_AUS = (
  "\n\nUse these AU definitions and their possible emotional associations:\n"
  "{AUs}"
)
_FACIAL_R1_EXAMPLE = (
  "\n\nHere is a sample of the required analysis style:\n"
  "<think>The man's eyebrows are pulled together and lowered (AU4), and the "
  "mouth corners are downturned (AU15). This combination of brow lowering "
  "(AU4) and mouth corner depression (AU15) is a strong indicator of "
  "sadness.</think>\n"
  "<answer>sadness</answer>"
)
# The short variant for the tiny model keeps the rules and the example.
_FACIAL_R1_SHORT = (
  "Question: {Question}\n"
  "Think in <think>...</think>: name the visible facial features with AU "
  "numbers in parentheses, e.g. 'brows pulled together (AU4)'; no negations "
  "or hedges; be concise. Then give one word from {Emotions} in "
  "<answer>...</answer>."
)

# Facial-R1 infer_emotion.py retry block, verbatim.
_RETRY = """### Previous Response Issues
Here is your previous response:
{prev_response}

Your previous response had the following issues:
{issues}

Please correct these issues in your new response. Make sure to:
1. Include all required Action Units in your analysis
2. Provide the correct emotion in your answer
3. Use proper <think>...</think> and <answer>...</answer> tags
4. Avoid negative expressions like "no", "not", "without"
5. Be concise and precise"""

# R1-Omni instruction (README demo and eval scripts), verbatim.
R1_OMNI = (
  "As an emotional recognition expert; throughout the video, which emotion "
  "conveyed by the characters is the most obvious to you?  Output the "
  "thinking process in <think> </think> and final emotion in <answer> "
  "</answer> tags."
)

_EMOCALIBER = (
  "{Question}\n"
  "Reason inside <think>...</think> with five tagged parts: "
  "<element>the visual elements</element>, <human>the people and their "
  "expressions</human>, <context>the scene</context>, <interaction>how "
  "people and elements relate</interaction> and <analysis>what this means "
  "for the evoked emotion</analysis>. Then give one word from {Emotions} in "
  "<answer>...</answer>, and your confidence that the answer is right, a "
  "number strictly between 0 and 1, in <confidence>...</confidence>."
)

# HumanOmniV2's format (METHODS.md section 3): context, then reasoning.
_HUMAN_OMNI_V2 = (
  "{Question}\n"
  "First summarise what you see that matters (the person, their expression "
  "and the scene) in <context>...</context>, then reason from that context "
  "in <think>...</think>, then give one word from {Emotions} in "
  "<answer>...</answer>."
)

# AffectGPT-R1's open-vocabulary task (METHODS.md section 4): any number
# of free-form emotion words, scored by the emotion wheel.
_OPEN_VOCABULARY = (
  "{Context}Which emotions does the person express? Reason about the cues "
  "in <think>...</think>, then list every emotion word that applies, comma "
  "separated (as few as are true), in <answer>...</answer>."
)

_TEXT_CLASSIFIER = (
  "Text: {Text}\n"
  "Which emotion does the writer of this text express? First reason about "
  "the words and what they reveal in <think>...</think>, then give one word "
  "from {Emotions} in <answer>...</answer>."
)


# EmotionThinker's system turn (HF model card ddwang2000/EmotionThinker and
# its `scripts/emotionthinker_infer.py`), verbatim: DeepSeek-R1's template.
R1_SYSTEM = (
  "A conversation between User and Assistant. The user asks a question, and "
  "the Assistant solves it. The assistant first thinks about the reasoning "
  "process in the mind and then provides the user with the answer. The "
  "reasoning process and answer are enclosed within <think> </think> and "
  "<answer> </answer> tags, respectively, i.e., <think> reasoning process "
  "here </think><answer> answer here </answer>."
)
# EmotionThinker's question (same script), asked after the clip by a model
# that hears it; the options are emojax's label nouns.
_EMOTION_THINKER_LISTEN = (
  "What is the emotion expressed in this audio clip? Please choose one from "
  "the following options: {Emotions}."
)
# The text stand-in: the clip arrives as its transcript and the prosody
# cues EmotionCoT labels it with, then the same question.
_EMOTION_THINKER = (
  'Transcript: "{Text}"\nHow it sounds: {Cues}\n' + _EMOTION_THINKER_LISTEN
)


def emotion_list(emotions: Iterable[str]) -> str:
  """['anger', 'fear'] -> '[anger, fear]'.

  Words must be single lowercase words, and label nouns where facs knows
  the word ('happiness', not 'happy'); open vocabularies pass through.
  """
  words = list(emotions)
  bad = [
    w
    for w in words
    if not re.fullmatch(r"[a-z]+", w)
    or facs.normalize_label(w) not in (None, w)
  ]
  if not words or bad:
    raise ValueError(
      f"emotion list {words!r} must be non-empty lowercase words; fix "
      f"{bad!r} (use label nouns as in facs.LABEL_SETS, e.g. 'happiness' "
      "rather than 'happy')."
    )
  return "[" + ", ".join(words) + "]"


def au_definition_list() -> str:
  """Facial-R1's definition list: 'AU1: Inner brow raiser; ...; AU43: ...'."""
  items = [
    f"AU{n}: {au.name[0].upper()}{au.name[1:]}" for n, au in facs.AUS.items()
  ]
  return "; ".join(items) + "."


def facial_r1_grpo(
  emotions: Iterable[str],
  *,
  question: str = DEFAULT_QUESTION,
  au_definitions: bool = True,
) -> str:
  """Facial-R1's GRPO prompt; `au_definitions=False` gives the short form."""
  names = emotion_list(emotions)
  if not au_definitions:
    return _FACIAL_R1_SHORT.format(Question=question, Emotions=names)
  return (
    _FACIAL_R1_HEAD.format(Question=question, Emotions=names)
    + _FACIAL_R1_AUS.format(AUs=au_definition_list())
    + _FACIAL_R1_EXAMPLE
  )


def facial_r1_synthesis(
  emotions: Iterable[str],
  aus: Iterable[str],
  labels: Iterable[str],
  *,
  question: str = DEFAULT_QUESTION,
  retries: Sequence[tuple[str, Sequence[str]]] = (),
  au_definitions: bool = True,
) -> str:
  """The stage-3 prompt: GRPO prompt + Ground Truth + one block per retry.

  `aus`/`labels` are the ground truth (a part is left out when empty, as in
  Facial-R1); `retries` holds (previous response, its issues) in order.
  Lists print as Python lists of sorted unique strings, as the original does.
  """
  text = facial_r1_grpo(
    emotions, question=question, au_definitions=au_definitions
  )
  gold_aus, gold_labels = sorted(set(aus)), sorted(set(labels))
  parts = []
  if gold_aus:
    parts.append(
      f"Your analysis MUST identify these specific Action Units: {gold_aus}"
    )
  if gold_labels:
    parts.append(
      f"And your final answer MUST be this exact emotion: {gold_labels}"
    )
  if parts:
    text += "\n\n### Ground Truth\n" + "\n".join(parts)
  for response, issues in retries:
    text += "\n\n" + _RETRY.format(
      prev_response=response, issues=", ".join(issues)
    )
  return text


def emocaliber(
  emotions: Iterable[str], *, question: str = DEFAULT_QUESTION
) -> str:
  """EmoCaliber's tagged reasoning format with a verbalised confidence."""
  return _EMOCALIBER.format(Question=question, Emotions=emotion_list(emotions))


def human_omni_v2(
  emotions: Iterable[str], *, question: str = DEFAULT_QUESTION
) -> str:
  """HumanOmniV2's `<context>` `<think>` `<answer>` format."""
  return _HUMAN_OMNI_V2.format(
    Question=question, Emotions=emotion_list(emotions)
  )


def open_vocabulary(*, text: str = "") -> str:
  """AffectGPT-R1's open-vocabulary question; `text` (a subtitle) is quoted
  before it when given."""
  context = f'The person says: "{text}"\n' if text else ""
  return _OPEN_VOCABULARY.format(Context=context)


def text_classifier(
  text: str, emotions: Iterable[str] = facs.LABEL_SETS["dair_emotion"]
) -> str:
  """Reasoning-infused text classification (dair-ai/emotion labels)."""
  return _TEXT_CLASSIFIER.format(Text=text, Emotions=emotion_list(emotions))


def emotion_thinker(
  text: str,
  cues: str,
  emotions: Iterable[str] = facs.LABEL_SETS["emotion_thinker"],
) -> str:
  """EmotionThinker's question over a clip's transcript and cue caption;
  the options are written as the model card's comma list."""
  emotion_list(emotions)  # Checks the words.
  return _EMOTION_THINKER.format(
    Text=text, Cues=cues or "unknown", Emotions=", ".join(emotions)
  )


def emotion_thinker_listen(
  emotions: Iterable[str] = facs.LABEL_SETS["emotion_thinker"],
) -> str:
  """EmotionThinker's question as its model card asks it after the clip
  (the model hears the prosody: no transcript, no cue labels)."""
  emotion_list(emotions)  # Checks the words.
  return _EMOTION_THINKER_LISTEN.format(Emotions=", ".join(emotions))


def messages(
  prompt_text: str,
  *,
  image: bool = True,
  video: bool = False,
  audio: bool = False,
  system: str | None = None,
) -> list[dict]:
  """One user turn in HF chat format: the image, video or audio clip, then
  the text."""
  content: list[dict] = [{"type": "image"}] if image else []
  content += [{"type": "video"}] if video else []
  content += [{"type": "audio"}] if audio else []
  content.append({"type": "text", "text": prompt_text})
  turns = [{"role": "system", "content": system}] if system else []
  return turns + [{"role": "user", "content": content}]
