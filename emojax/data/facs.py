"""FACS knowledge: action units, emotion prototypes, label sets, AU parsing.

Provenance of every table is in third_party/README.md. AU names follow the
Facial-R1 prompt (FACS names); `ActionUnit.emotions` lists the emotions an AU
takes part in per py-feat's AU reference, completed with the EMFACS
prototypes below.
"""

import dataclasses
import re
import string
import unicodedata
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class ActionUnit:
  """One FACS action unit; `appearance` says what it looks like."""

  number: int
  name: str
  appearance: str
  emotions: tuple[str, ...]


def _au(number, name, appearance, *emotions):
  return number, ActionUnit(number, name, appearance, tuple(emotions))


# fmt: off
AUS: dict[int, ActionUnit] = dict(
  [
    _au(1, "inner brow raiser", "inner corners of the eyebrows lifted",
        "sadness", "surprise", "fear"),
    _au(2, "outer brow raiser", "outer parts of the eyebrows lifted",
        "surprise", "fear"),
    _au(4, "brow lowerer", "eyebrows lowered and pulled together",
        "sadness", "fear", "anger"),
    _au(5, "upper lid raiser", "upper eyelids raised, eyes widened",
        "surprise", "fear", "anger"),
    _au(6, "cheek raiser", "cheeks lifted, crow's feet around the eyes",
        "happiness", "disgust", "contempt"),
    _au(7, "lid tightener", "eyelids tensed and narrowed",
        "fear", "anger"),
    _au(9, "nose wrinkler", "skin along the nose wrinkled upward",
        "disgust"),
    _au(10, "upper lip raiser", "upper lip raised",
        "disgust"),
    _au(11, "nasolabial deepener", "furrow from nose to lip corners deepened",
        "disgust", "fear"),
    _au(12, "lip corner puller", "lip corners pulled up and back",
        "happiness", "contempt"),
    _au(13, "sharp lip puller", "lip corners pulled up sharply, cheeks puffed",
        ),
    _au(14, "dimpler", "lip corners tightened inward, dimples formed",
        "contempt"),
    _au(15, "lip corner depressor", "lip corners pulled down",
        "sadness", "disgust"),
    _au(16, "lower lip depressor", "lower lip pulled down",
        "disgust"),
    _au(17, "chin raiser", "chin boss pushed up, lower lip raised",
        "disgust"),
    _au(18, "lip pucker", "lips pushed forward into a pucker"),
    _au(19, "tongue show", "tongue shown"),
    _au(20, "lip stretcher", "lips stretched sideways",
        "fear"),
    _au(22, "lip funneler", "lips funnelled outward"),
    _au(23, "lip tightener", "lips tightened and narrowed",
        "anger"),
    _au(24, "lip pressor", "lips pressed together",
        "anger"),
    _au(25, "lips part", "lips parted",
        "happiness", "surprise", "fear"),
    _au(26, "jaw drop", "jaw dropped, mouth open",
        "surprise", "fear"),
    _au(27, "mouth stretch", "mouth stretched wide open"),
    _au(28, "lip suck", "lips sucked into the mouth"),
    _au(29, "jaw thrust", "jaw pushed forward"),
    _au(30, "jaw sideways", "jaw moved to one side"),
    _au(31, "jaw clencher", "jaw clenched, cheeks bulging"),
    _au(32, "lip bite", "lip bitten by the teeth"),
    _au(43, "eyes closed", "eyes closed"),
  ]
)
# fmt: on

INTENSITIES = "ABCDE"  # FACS intensity, trace (A) to maximum (E).
SIDES = "LR"  # Unilateral prefixes: left, right.

# Prototype AU combinations per emotion. Sides and intensities are dropped
# (EMFACS writes contempt as R12A+R14A, surprise's 5 as 5B).
PROTOTYPE_VARIANTS: dict[str, dict[str, tuple[int, ...]]] = {
  # EMFACS-derived table (Wikipedia FACS table, Ekman & Friesen).
  "emfacs": {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15, 16),
    "contempt": (12, 14),
  },
  # "Most intense" combinations, FACS Table 11-1 (via MPR-online).
  "intense": {
    "happiness": (6, 12, 25),
    "sadness": (1, 4, 15),
    "disgust": (4, 10, 17),
    "anger": (4, 5, 7, 24),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 20, 25),
  },
  # UNVERIFIED: Du, Tao & Martinez, PNAS 2014, Table 1 (AUs in >70% of
  # subjects), transcribed from memory; check against the paper before use.
  "du2014": {
    "happiness": (12, 25),
    "sadness": (4, 15),
    "fear": (1, 4, 20, 25),
    "anger": (4, 7, 24),
    "surprise": (1, 2, 25, 26),
    "disgust": (9, 10, 17),
  },
}
PROTOTYPES: dict[str, tuple[int, ...]] = PROTOTYPE_VARIANTS["emfacs"]

# Label sets in each dataset's own order (index = the dataset's class id,
# counted from 0 even where the dataset counts from 1).
# fmt: off
LABEL_SETS: dict[str, tuple[str, ...]] = {
  # Facial-R1's default emotion list, in its prompt order.
  "basic7": (
    "anger", "happiness", "sadness", "neutral", "disgust", "surprise", "fear",
  ),
  # Facial-R1's AffectNet list: basic7 plus contempt.
  "affectnet8": (
    "anger", "happiness", "sadness", "neutral", "disgust", "surprise", "fear",
    "contempt",
  ),
  # AffectNet's expression ids 0..7.
  "affectnet_ids": (
    "neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger",
    "contempt",
  ),
  # RAF-DB basic, labels 1..7.
  "raf_db": (
    "surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral",
  ),
  # FER2013 ids 0..6.
  "fer2013": (
    "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral",
  ),
  # DFEW labels 1..7.
  "dfew": (
    "happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear",
  ),
  # MAFW's 11 single-label classes.
  "mafw": (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    "contempt", "anxiety", "helplessness", "disappointment",
  ),
  # dair-ai/emotion ids 0..5.
  "dair_emotion": ("sadness", "joy", "love", "anger", "fear", "surprise"),
  # EmotionThinker's 9 speech classes in its prompt order, as label nouns
  # ("contempt or disgust" -> disgust; "whisper" is a speaking style).
  "emotion_thinker": (
    "neutral", "happiness", "sadness", "anger", "disgust", "confusion",
    "whisper", "surprise", "fear",
  ),
}
# fmt: on

# Word forms -> label noun. Keys are lowercase ASCII; each label maps to
# itself implicitly. Plurals are handled by `normalize_label`.
_FORMS: dict[str, str] = {
  "angry": "anger",
  "angered": "anger",
  "angrily": "anger",
  "happy": "happiness",
  "happily": "happiness",
  "sad": "sadness",
  "saddened": "sadness",
  "sadly": "sadness",
  "surprised": "surprise",
  "surprising": "surprise",
  "disgusted": "disgust",
  "disgusting": "disgust",
  "fearful": "fear",
  "scared": "fear",
  "afraid": "fear",
  "frightened": "fear",
  "contemptuous": "contempt",
  "contemptful": "contempt",
  "neutrality": "neutral",
  "joyful": "joy",
  "joyous": "joy",
  "loving": "love",
  "loved": "love",
  "anxious": "anxiety",
  "helpless": "helplessness",
  "disappointed": "disappointment",
  "confused": "confusion",
}
_LABELS = frozenset(w for ls in LABEL_SETS.values() for w in ls) | {"confusion"}
_VOCAB: dict[str, str] = {**{w: w for w in _LABELS}, **_FORMS}
_STRIP = string.punctuation + string.whitespace


def normalize_label(word: str) -> str | None:
  """Maps an emotion word to its label noun, or None if it is not one.

  Case, surrounding whitespace/punctuation, plurals and adjective forms are
  normalised. The input is NFKC-normalised and must then be one run of ASCII
  letters, so look-alikes (Cyrillic 'а', zero-width spaces) and phrases
  ("happy or sad") give None.
  """
  w = unicodedata.normalize("NFKC", word).strip(_STRIP).lower()
  if not w.isascii() or not w.isalpha():
    return None
  for stem in (w, w[:-2] if w.endswith("es") else "", w[:-1]):
    if stem in _VOCAB:
      return _VOCAB[stem]
  return None


@dataclasses.dataclass(frozen=True)
class AUMention:
  """One AU named in text; intensity in A-E, side 'L'/'R', or None."""

  number: int
  intensity: str | None
  side: str | None

  @property
  def name(self) -> str:
    return f"AU{self.number}"


# `AU` written out, optional side before or after it, optional intensity
# letter, optional "(intensity N)" with N in 1-5 or A-E.
_INTENSITY_NOTE = (
  r"(?i:[ \t]*\([ \t]*intensity[ \t]*[:=]?[ \t]*(?P<note>[1-5a-e])[ \t]*\))?"
)
_AU_RE = re.compile(
  r"(?<![A-Za-z0-9])(?:(?P<side1>[LR])[ \t-]?)?AU[ \t-]?(?P<side2>[LR])?"
  r"(?P<num>\d+)(?P<int>[A-E])?(?![A-Za-z0-9])" + _INTENSITY_NOTE,
  re.IGNORECASE,
)
# A bare side-prefixed number (`L12`, `R14A`) is an AU only with an upper-case
# L/R and a catalogued AU number; `r2`, `L99` stay text.
_SIDE_RE = re.compile(
  r"(?<![A-Za-z0-9])(?P<side>[LR])(?P<num>\d{1,2})(?P<int>[A-E])?"
  r"(?![A-Za-z0-9])" + _INTENSITY_NOTE
)


def _mention(m: re.Match, side: str | None) -> AUMention:
  intensity = m.group("int") or m.group("note")
  if intensity is not None:
    intensity = intensity.upper()
    if intensity.isdigit():
      intensity = INTENSITIES[int(intensity) - 1]
  return AUMention(int(m.group("num")), intensity, side and side.upper())


def parse_aus(text: str) -> list[AUMention]:
  """AU mentions in `text`, in order of appearance (repeats kept)."""
  found, covered = [], set()
  for m in _AU_RE.finditer(text):
    side = m.group("side1") or m.group("side2")
    found.append((m.start(), _mention(m, side)))
    covered.update(range(*m.span()))
  for m in _SIDE_RE.finditer(text):
    if int(m.group("num")) in AUS and m.start() not in covered:
      found.append((m.start(), _mention(m, m.group("side"))))
  return [mention for _, mention in sorted(found, key=lambda p: p[0])]


def au_set(text: str) -> frozenset[str]:
  """Canonical names ("AU6") of the AUs mentioned in `text`."""
  return frozenset(m.name for m in parse_aus(text))


def canonical_au(s: str) -> str:
  """'AU06', 'au6', 'AU 6', 'AU6B', 'R12' or '6' -> 'AU6'."""
  text = s.strip()
  if text.isdigit():
    return f"AU{int(text)}"
  mentions = parse_aus(text)
  m = _AU_RE.fullmatch(text) or _SIDE_RE.fullmatch(text)
  if m is None or len(mentions) != 1:
    raise ValueError(
      f"{s!r} is not an action unit; write one AU like 'AU6', 'AU06', "
      "'AU12B' or 'R12'."
    )
  return mentions[0].name


def _au_number(s: str) -> int:
  return int(canonical_au(s)[2:])


def consistent(
  emotion: str, aus: Iterable[str], variant: str = "emfacs"
) -> float:
  """How well the named AUs fit `emotion`'s prototype, in [0, 1].

  Only diagnostic AUs count: those in some prototype of `variant` (so AU25 or
  AU43 neither help nor hurt). With D the named diagnostic AUs and P the
  emotion's prototype, the score is F1(D, P): naming every AU (low
  precision) or none (zero recall) both score low. 'neutral' scores 1 when
  no diagnostic AU is named, else 0. An emotion with no prototype in
  `variant` (or not an emotion word) scores 0.
  """
  table = PROTOTYPE_VARIANTS[variant]
  diagnostic = {n for proto in table.values() for n in proto}
  named = {_au_number(a) for a in aus} & diagnostic
  label = normalize_label(emotion)
  if label == "neutral":
    return 0.0 if named else 1.0
  if label not in table or not named:
    return 0.0
  hits = len(named & set(table[label]))
  return 2.0 * hits / (len(named) + len(table[label]))
