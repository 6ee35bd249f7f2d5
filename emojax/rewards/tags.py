"""Tag structure of completions, the format reward, and span token masks.

Tags are counted, not matched by a lenient regex: peers' users found that
`re.fullmatch("<think>.*?</think>\\s*<answer>.*?</answer>")` passes repeated
or nested blocks (open-r1 PR #418).
"""

import re

import numpy as np

TAGS = ("think", "answer")
_ANY_TAG = re.compile(r"</?(?:think|answer|context|confidence)>")


def blocks(text: str, tag: str) -> list[tuple[int, int]]:
  """Character spans (start, end) of the contents of each `<tag>` block."""
  spans, pos = [], 0
  while (i := text.find(f"<{tag}>", pos)) >= 0:
    start = i + len(tag) + 2
    end = text.find(f"</{tag}>", start)
    if end < 0:
      break
    spans.append((start, end))
    pos = end + len(tag) + 3
  return spans


def contents(text: str, tag: str) -> list[str]:
  """The text inside each `<tag>...</tag>` block."""
  return [text[s:e] for s, e in blocks(text, tag)]


def think_span(text: str) -> tuple[int, int] | None:
  """Span of the first `<think>` block's contents (Facial-R1's AU scope)."""
  spans = blocks(text, "think")
  return spans[0] if spans else None


def answer_span(text: str) -> tuple[int, int] | None:
  """Span of the last `<answer>` block's contents."""
  spans = blocks(text, "answer")
  return spans[-1] if spans else None


def is_think_answer(text: str, tags: tuple[str, ...] = TAGS) -> bool:
  """Exactly `<t1>x</t1> <t2>y</t2> ...`: each tag once, in order, contents
  non-empty and tag-free, only whitespace between and around blocks."""
  pattern = r"\s*".join(
    rf"<{t}>(?P<{t}>(?:(?!</?{t}>).)*?)</{t}>" for t in tags
  )
  m = re.fullmatch(rf"\s*{pattern}\s*", text, re.DOTALL)
  if m is None:
    return False
  return all(
    m.group(t).strip() and not _ANY_TAG.search(m.group(t)) for t in tags
  )


def format_reward(completions: list[str], examples: dict) -> np.ndarray:
  """1 for one non-empty think block then one answer block, else 0."""
  del examples
  return np.array([float(is_think_answer(c)) for c in completions])


def format_context_reward(completions: list[str], examples: dict) -> np.ndarray:
  """HumanOmniV2's `<context>` `<think>` `<answer>` format, tag-counted."""
  del examples
  tags = ("context",) + TAGS
  return np.array([float(is_think_answer(c, tags)) for c in completions])


def span_token_mask(
  span: tuple[int, int] | None, offsets_T2: np.ndarray
) -> np.ndarray:
  """bool[T]: tokens whose character range overlaps `span`.

  offsets_T2 are each completion token's (start, end) character offsets in
  the decoded completion (tokenizers' `offsets`). The trainer builds one
  mask per reward (the think span for `au_f1`, all tokens for the others)
  and passes them to `emojax.rl.loss.per_reward_token_weights`.
  """
  if span is None:
    return np.zeros(len(offsets_T2), bool)
  start, end = span
  offsets_T2 = np.asarray(offsets_T2).reshape(-1, 2)
  return (offsets_T2[:, 0] < end) & (offsets_T2[:, 1] > start)
