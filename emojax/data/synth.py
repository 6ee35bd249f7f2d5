"""Synthetic FACS examples: emotion -> AUs -> face, caption and reasoning.

Every example is a pure function of (seed, index), so any worker can make
any index. Emotions come from `facs.PROTOTYPES` (only AUs the renderer draws)
with a controlled amount of ambiguity: a dropped prototype AU, an added
unrelated AU, and faint AUs on neutral faces, each at a configurable rate.
A clip (`make_clip`) is the same face moving from neutral to that
expression, as DFEW/MAFW clips do.
"""

import dataclasses
import os
from collections.abc import Iterator

import numpy as np
from PIL import Image

from emojax.data import faces, facs, prompts

LABEL_SET = "basic7"
CLIP_FRAMES = 8  # Frames per synthetic clip.
CLIP_FPS = 4.0  # Their rate: a 2-second clip.


@dataclasses.dataclass(frozen=True)
class SynthConfig:
  """Rates of the label ambiguity and the intensity ranges drawn."""

  drop_rate: float = 0.15  # P(one prototype AU left out), if >= 2 AUs
  extra_rate: float = 0.15  # P(one AU outside the prototype added)
  neutral_au_rate: float = 0.25  # P(a neutral face shows one faint AU)
  proto_intensities: str = "BCDE"  # letters drawn for prototype AUs
  extra_intensities: str = "ABC"  # letters drawn for added AUs
  neutral_intensities: str = "AB"  # letters drawn for a neutral face's AU
  max_angle: float = 8.0  # head roll, degrees


DEFAULT = SynthConfig()

# Pairs a face cannot show at once (the drawing would contradict itself).
_CONFLICTS = frozenset(
  frozenset(p)
  for p in ((5, 43), (7, 43), (6, 43), (12, 15), (24, 25), (24, 26), (23, 26))
)

# Plain-words phrases per AU, several phrasings each; no AU codes and no
# emotion words, so they serve both the captions and the reasoning.
_PHRASES: dict[int, tuple[str, ...]] = {
  1: ("the inner brows are raised", "the inner ends of the brows lift"),
  2: ("the outer brows are raised", "the outer ends of the brows lift"),
  4: ("the brows are lowered and drawn together", "the brows pull down"),
  5: ("the upper lids are raised", "the upper lids lift to widen the eyes"),
  6: ("the cheeks are lifted", "the cheeks rise under the eyes"),
  7: ("the lids are tightened", "the lower lids are tensed"),
  9: ("the nose is wrinkled", "the skin on the nose bunches up"),
  10: ("the upper lip is raised", "the upper lip lifts to show teeth"),
  12: ("the lip corners are pulled up", "the mouth corners turn up"),
  14: ("dimples form at the lip corners", "the lip corners tighten in"),
  15: ("the lip corners are pulled down", "the mouth corners turn down"),
  16: ("the lower lip is pulled down", "the lower lip drops to show teeth"),
  17: ("the chin is pushed up", "the chin boss rises"),
  20: ("the lips are stretched sideways", "the mouth is pulled wide"),
  23: ("the lips are tightened", "the lips narrow"),
  24: ("the lips are pressed together", "the lips press firmly"),
  25: ("the lips are parted", "the lips open slightly"),
  26: ("the jaw is dropped", "the jaw hangs low"),
  43: ("the eyes are closed", "the eyelids are shut"),
}
_REGIONS: tuple[tuple[tuple[int, ...], str], ...] = (
  ((1, 2, 4), "the brows are relaxed"),
  ((5, 6, 7, 43), "the eyes are open and calm"),
  ((9,), "the nose is smooth"),
  ((10, 12, 14, 15, 16, 20, 23, 24, 25), "the lips are relaxed"),
  ((17, 26), "the jaw is at rest"),
)
_STRENGTH = {"A": "slightly ", "B": "slightly ", "C": "", "D": "", "E": ""}


@dataclasses.dataclass(frozen=True)
class Face:
  """What one example shows, before rendering."""

  emotion: str
  aus: dict[int, str]  # AU number -> intensity letter A-E
  identity: faces.Identity
  noise_seed: int
  phrasing: int  # picks phrase variants and templates

  @property
  def au_names(self) -> list[str]:
    return [f"AU{n}" for n in sorted(self.aus)]


def _rng(seed: int, index: int) -> np.random.Generator:
  if index < 0 or seed < 0:
    raise ValueError(f"seed ({seed}) and index ({index}) must be >= 0.")
  return np.random.default_rng([seed, index])


def split_seed(seed: int, split: str) -> int:
  """A seed per split, so train/test/... draw disjoint example streams."""
  code = sum((i + 1) * ord(ch) for i, ch in enumerate(split))
  return seed * 1_000_003 + code


def _fits(n: int, chosen) -> bool:
  return all(frozenset((n, m)) not in _CONFLICTS for m in chosen)


def _letters(rng, letters: str, n: int) -> list[str]:
  return [letters[i] for i in rng.integers(len(letters), size=n)]


def sample_face(seed: int, index: int, config: SynthConfig = DEFAULT) -> Face:
  """The emotion, AUs with intensities and identity of example `index`."""
  rng = _rng(seed, index)
  labels = facs.LABEL_SETS[LABEL_SET]
  emotion = labels[rng.integers(len(labels))]
  identity = faces.sample_identity(rng, max_angle=config.max_angle)
  if emotion == "neutral":
    aus: dict[int, str] = {}
    if rng.random() < config.neutral_au_rate:
      n = int(rng.choice(faces.RENDERED_AUS))
      aus[n] = _letters(rng, config.neutral_intensities, 1)[0]
  else:
    proto = [a for a in facs.PROTOTYPES[emotion] if a in faces.RENDERED_AUS]
    if len(proto) >= 2 and rng.random() < config.drop_rate:
      proto.pop(rng.integers(len(proto)))
    aus = dict(
      zip(
        proto, _letters(rng, config.proto_intensities, len(proto)), strict=True
      )
    )
    if rng.random() < config.extra_rate:
      pool = [a for a in faces.RENDERED_AUS if a not in aus and _fits(a, aus)]
      n = int(rng.choice(pool))
      aus[n] = _letters(rng, config.extra_intensities, 1)[0]
  return Face(
    emotion=emotion,
    aus=aus,
    identity=identity,
    noise_seed=int(rng.integers(2**31)),
    phrasing=int(rng.integers(2**31)),
  )


def _phrase(face: Face, n: int, vary: bool = True) -> str:
  variants = _PHRASES[n]
  text = variants[(face.phrasing + n) % len(variants) if vary else 0]
  # The adverb goes before the verb phrase's participle or after "the X".
  return text.replace(" are ", f" are {_STRENGTH[face.aus[n]]}", 1)


def caption(face: Face) -> str:
  """What brows, eyes, nose, mouth and jaw do, in plain words.

  One phrasing per movement (intensity adverbs kept): the base model learns
  to see from captions, and phrasing variety is entropy no pixel explains.
  """
  parts = []
  for region, rest in _REGIONS:
    shown = [_phrase(face, n, vary=False) for n in region if n in face.aus]
    parts.append(_join(shown) if shown else rest)
  text = "; ".join(parts) + "."
  return text[0].upper() + text[1:]


def _join(items: list[str]) -> str:
  if len(items) == 1:
    return items[0]
  return ", ".join(items[:-1]) + " and " + items[-1]


_NEUTRAL_LINK = "The rest of the face is relaxed, so it reads as {label}."
_SINGLE_LINK = "This movement of the {names} indicates {label}."
_LINKS = (
  "Together these movements indicate {label}.",
  "This combination of {names} points to {label}.",
  "Taken together, {names} form the pattern of {label}.",
)
_OPENERS = ("", "In this face, ", "Looking at the face, ")
_CALM = (
  "The brows rest level, the eyes are open and calm and the mouth is closed "
  "and relaxed. This relaxed face indicates neutral."
)


def reasoning_text(face: Face) -> str:
  """Facial-R1 style `<think>...</think><answer>label</answer>`.

  Each visible feature names its AU in parentheses; the phrasing avoids the
  negations and hedges Facial-R1's prompt bans.
  """
  order = sorted(face.aus)
  if not order:
    think = _CALM
  else:
    shown = _join([f"{_phrase(face, n)} (AU{n})" for n in order])
    opener = _OPENERS[face.phrasing % len(_OPENERS)]
    shown = (opener + shown) if opener else shown[0].upper() + shown[1:]
    names = _join([f"{facs.AUS[n].name} (AU{n})" for n in order])
    if face.emotion == "neutral":
      link = _NEUTRAL_LINK
    elif len(order) == 1:
      link = _SINGLE_LINK
    else:
      link = _LINKS[(face.phrasing // 3) % len(_LINKS)]
    think = f"{shown}. " + link.format(names=names, label=face.emotion)
  return f"<think>{think}</think><answer>{face.emotion}</answer>"


def make_example(
  seed: int,
  index: int,
  *,
  size: int = 64,
  reasoning: bool = False,
  config: SynthConfig = DEFAULT,
) -> dict:
  """One example in the Facial-R1 JSONL fields, with the image inline.

  Keys: image (uint8 [size, size, 3]), labels ([emotion]), AUs (["AU6",
  ...] sorted by number), caption, and description when `reasoning`.
  """
  face = sample_face(seed, index, config)
  strengths = {n: faces.INTENSITY[k] for n, k in face.aus.items()}
  example = {
    "image": faces.render(
      strengths, face.identity, size=size, seed=face.noise_seed
    ),
    "labels": [face.emotion],
    "AUs": face.au_names,
    "caption": caption(face),
  }
  if reasoning:
    example["description"] = reasoning_text(face)
  return example


def apex_frame(frames: int) -> int:
  """The clip's first frame at the expression's apex (about 2/3 in)."""
  return round(2 * (frames - 1) / 3)


def frame_seed(noise_seed: int, frame: int, apex: int) -> int:
  """Frame `frame`'s imaging-noise seed: the face's own at the apex (so
  the apex frame is `make_example`'s image), offset by frame elsewhere."""
  return (noise_seed + frame - apex) % 2**31


def make_clip(
  seed: int,
  index: int,
  *,
  size: int = 64,
  frames: int = CLIP_FRAMES,
  reasoning: bool = False,
  config: SynthConfig = DEFAULT,
) -> dict:
  """Example `index` as a clip: `make_example`'s face, AUs and texts, the
  expression rising linearly from neutral at frame 0 to its apex at
  `apex_frame(frames)`, then held.

  Keys: frames (uint8 [frames, size, size, 3]), apex (its frame index),
  and make_example's labels, AUs, caption (and description).
  """
  if frames < 1:
    raise ValueError(f"frames={frames}: a clip has at least one frame.")
  face = sample_face(seed, index, config)
  apex = apex_frame(frames)
  frames_THWC = np.stack(
    [
      faces.render(
        _onset(face, min(1.0, f / apex) if apex else 1.0),
        face.identity,
        size=size,
        seed=frame_seed(face.noise_seed, f, apex),
      )
      for f in range(frames)
    ]
  )
  clip = {
    "frames": frames_THWC,
    "apex": apex,
    "labels": [face.emotion],
    "AUs": face.au_names,
    "caption": caption(face),
  }
  if reasoning:
    clip["description"] = reasoning_text(face)
  return clip


def _onset(face: Face, progress: float) -> dict[int, float]:
  """The face's AU strengths `progress` (0..1) of the way to the apex;
  absent at 0, so frame 0 is the neutral face."""
  if progress <= 0:
    return {}
  return {n: progress * faces.INTENSITY[k] for n, k in face.aus.items()}


def image_path(split: str, index: int) -> str:
  """Example `index` of `split`'s image, relative to its data set's folder."""
  return f"images/{split}/{index:06d}.png"


def write_example(
  root: str, seed: int, size: int, job: tuple[str, int, bool]
) -> tuple[str, dict, dict | None]:
  """Renders example job = (split, index, with reasoning) to its PNG under
  `root`; returns (split, its JSONL row, its SFT row or None). A module
  function, so `launch/make_data.py`'s spawned workers can import it."""
  split, index, with_reasoning = job
  ex = make_example(
    split_seed(seed, split), index, size=size, reasoning=with_reasoning
  )
  rel = image_path(split, index)
  Image.fromarray(ex["image"]).save(os.path.join(root, rel), optimize=False)
  row = {
    "image": rel,
    "labels": ex["labels"],
    "AUs": ex["AUs"],
    "caption": ex["caption"],
  }
  sft = {**row, "description": ex["description"]} if with_reasoning else None
  return split, row, sft


def video_path(split: str, index: int) -> str:
  """Example `index` of `split`'s frame folder (frames `000.png`, ...),
  relative to its data set's folder."""
  return f"videos/{split}/{index:06d}"


def write_clip_example(
  root: str,
  seed: int,
  size: int,
  frames: int,
  fps: float,
  job: tuple[str, int, bool],
) -> tuple[str, dict, dict | None]:
  """`write_example` for clips: renders job's clip to its frame folder
  under `root`; the rows name the folder and `fps`."""
  split, index, with_reasoning = job
  clip = make_clip(
    split_seed(seed, split),
    index,
    size=size,
    frames=frames,
    reasoning=with_reasoning,
  )
  rel = video_path(split, index)
  os.makedirs(os.path.join(root, rel))
  for f, frame in enumerate(clip["frames"]):
    path = os.path.join(root, rel, f"{f:03d}.png")
    Image.fromarray(frame).save(path, optimize=False)
  row = {
    "video": rel,
    "fps": fps,
    "labels": clip["labels"],
    "AUs": clip["AUs"],
    "caption": clip["caption"],
  }
  sft = {**row, "description": clip["description"]} if with_reasoning else None
  return split, row, sft


def text_corpus(seed: int, n: int) -> Iterator[str]:
  """Captions, reasoning texts and the recipe prompts, for tokenizer training.

  Draws faces only (no rendering), so it is cheap.
  """
  emotions = facs.LABEL_SETS[LABEL_SET]
  yield prompts.facial_r1_grpo(emotions)
  yield prompts.facial_r1_grpo(emotions, au_definitions=False)
  yield prompts.R1_OMNI
  yield prompts.CAPTION_QUESTION
  yield prompts.emocaliber(emotions)
  yield prompts.text_classifier("{Text}")
  yield " ".join(sorted({w for ls in facs.LABEL_SETS.values() for w in ls}))
  yield " ".join(f"{au.name}: {au.appearance}." for au in facs.AUS.values())
  for i in range(n):
    face = sample_face(seed, i)
    yield caption(face)
    yield reasoning_text(face)
