"""Placeholder runs in prompts: images' `<|image_pad|>`, videos'
`<|video_pad|>`, clips' `<|AUDIO|>`.

A prompt holds one run of a placeholder token per image, video or clip, as
many tokens as the item's features. Every modality expands and checks its
runs the same way, on the host before any compute; only the nouns in the
messages differ (`Kind`; `VISUAL` checks images and videos as one stream).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Kind:
  """What the messages call the items, their token and their fixes."""

  noun: str  # 'image' | 'audio'
  token: str  # '<|image_pad|>' | '<|AUDIO|>'
  expand: str  # the expanding function, named in a hint
  items: str  # 'images' | 'clips'
  short_hint: str  # the hint for a run of the wrong (not 1) length


IMAGE = Kind(
  "image",
  "<|image_pad|>",
  "vlm.expand_image_placeholders",
  "images",
  "Was the prompt truncated, or the image resized after tokenisation?",
)
VIDEO = Kind(
  "video",
  "<|video_pad|>",
  "vlm.expand_video_placeholders",
  "videos",
  "Was the prompt truncated, or the video resized after tokenisation?",
)
# Images and videos share one stream (vlm's module docstring).
VISUAL = Kind(
  "visual",
  "<|image_pad|> or <|video_pad|>",
  "vlm.expand_image_placeholders (videos: vlm.expand_video_placeholders)",
  "visuals",
  "Was the prompt truncated, or the visual resized after tokenisation?",
)
AUDIO = Kind(
  "audio",
  "<|AUDIO|>",
  "audio_lm.expand_audio_placeholders",
  "clips",
  "Was the prompt truncated through the clip?",
)


def valid_mask(input_ids_BT, attention_mask_BT) -> np.ndarray:
  if attention_mask_BT is None:
    return np.ones(np.shape(input_ids_BT), bool)
  return np.asarray(attention_mask_BT) > 0


def runs(is_slot: np.ndarray) -> list[tuple[int, int]]:
  """[start, end) of each run of True."""
  edges = np.diff(np.concatenate([[0], is_slot.astype(np.int8), [0]]))
  starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
  return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def expand(
  kind: Kind, input_ids: Sequence[int], token_id: int, counts: Sequence[int]
) -> list[int]:
  """Repeats the i-th single placeholder by counts[i] (one prompt)."""
  ids = [int(i) for i in input_ids]
  n = sum(i == token_id for i in ids)
  if n != len(counts):
    raise ValueError(
      f"the prompt has {n} {kind.noun} placeholders (id {token_id}) but "
      f"{len(counts)} {kind.items} were given; put one {kind.token} per "
      f"item in the prompt (or drop the extra {kind.items})."
    )
  out, it = [], iter(counts)
  for i in ids:
    out.extend([i] * int(next(it)) if i == token_id else [i])
  return out


def check(
  kind: Kind,
  input_ids_BT,
  attention_mask_BT,
  token_id: int,
  need: Sequence[int],
  describe: Callable[[int], str],
  *,
  open_ids: tuple[int, ...] = (),
  count_fix: str = "",
) -> None:
  """Raises, naming the row and the fix, unless the rows' runs of
  `token_id` (in order across rows) have the lengths `need`.

  `describe(j)` names item j in a message; a valid row ending on one of
  `open_ids` (the placeholder, the run's start token) was truncated.
  """
  ids_BT = np.asarray(input_ids_BT)
  valid_BT = valid_mask(ids_BT, attention_mask_BT)
  found = []
  for b in range(ids_BT.shape[0]):
    if np.any(ids_BT[b][~valid_BT[b]] == token_id):
      raise ValueError(
        f"row {b}: {kind.noun} placeholders sit in the padding "
        f"(attention_mask 0); the mask must cover every {kind.noun} token."
      )
    row = ids_BT[b][valid_BT[b]]
    if len(row) and row[-1] in open_ids:
      raise ValueError(
        f"row {b}: the prompt ends inside its {kind.noun} run (last token id "
        f"{row[-1]}); it was truncated through its {kind.noun} tokens. "
        f"Raise the maximum prompt length or shorten the text, never the "
        f"{kind.noun} run."
      )
    found += [(b, s, e) for s, e in runs(row == token_id)]
  if len(found) != len(need):
    per_row = [sum(r[0] == b for r in found) for b in range(len(ids_BT))]
    raise ValueError(
      f"the batch has {len(found)} {kind.noun} placeholder runs (per row: "
      f"{per_row}) but {len(need)} {kind.items}. Each needs exactly one "
      f"{kind.token} run in its row, in order{count_fix}."
    )
  for j, ((b, s, e), n) in enumerate(zip(found, need, strict=True)):
    if e - s != n:
      hint = (
        f"Expand placeholders with {kind.expand}."
        if e - s == 1
        else kind.short_hint
      )
      raise ValueError(
        f"row {b}: the {kind.noun} run at valid tokens [{s}, {e}) has "
        f"{e - s} placeholders but {describe(j)} needs {n}. {hint}"
      )
