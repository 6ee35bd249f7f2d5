"""FACS tables, label normalisation and the AU parser."""

import re

import pytest

from emojax.data import facs
from emojax.data.facs import AUMention


def test_catalogue_covers_facial_r1_prompt_aus():
  numbers = [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
  numbers += [22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 43]
  assert sorted(facs.AUS) == numbers
  for n, au in facs.AUS.items():
    assert au.number == n and au.name and au.appearance


def test_prototypes_match_methods_table():
  assert facs.PROTOTYPES == {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15, 16),
    "contempt": (12, 14),
  }
  for variant in facs.PROTOTYPE_VARIANTS.values():
    for emotion, aus in variant.items():
      assert all(n in facs.AUS for n in aus)
      # Each prototype AU lists the emotion it takes part in.
      if variant is facs.PROTOTYPES:
        assert all(emotion in facs.AUS[n].emotions for n in aus)


def test_label_sets():
  assert facs.LABEL_SETS["basic7"] == (
    "anger", "happiness", "sadness", "neutral", "disgust", "surprise", "fear"
  )  # fmt: skip
  assert facs.LABEL_SETS["affectnet8"][-1] == "contempt"
  assert facs.LABEL_SETS["raf_db"][0] == "surprise"
  for labels in facs.LABEL_SETS.values():
    assert all(facs.normalize_label(w) == w for w in labels)


@pytest.mark.parametrize(
  "word, label",
  [
    ("angry", "anger"),
    ("Happy", "happiness"),
    ("  SAD. ", "sadness"),
    ("surprised", "surprise"),
    ("disgusted", "disgust"),
    ("fearful", "fear"),
    ("scared!", "fear"),
    ("contemptuous", "contempt"),
    ("neutrality", "neutral"),
    ("fears", "fear"),
    ("Surprises", "surprise"),
    ("happinesses", "happiness"),
    ("joyful", "joy"),
    ("\uff48\uff41\uff50\uff50\uff59", "happiness"),  # Fullwidth: NFKC.
    ("h\u0430ppy", None),  # Cyrillic a.
    ("hap\u200bpy", None),  # Zero-width space.
    ("happy or sad", None),
    ("happy, sad", None),
    ("", None),
    ("banana", None),
    ("un-happy", None),
  ],
)
def test_normalize_label(word, label):
  assert facs.normalize_label(word) == label


@pytest.mark.parametrize(
  "text, mentions",
  [
    ("AU6", [(6, None, None)]),
    ("cheeks up (AU06)", [(6, None, None)]),
    ("au12B and AU 4", [(12, "B", None), (4, None, None)]),
    ("L12 R14A", [(12, None, "L"), (14, "A", "R")]),
    ("AU12 (intensity 3)", [(12, "C", None)]),
    ("AU12 (Intensity e)", [(12, "E", None)]),
    ("AU R12", [(12, None, "R")]),
    ("R-AU14", [(14, None, "R")]),
    ("r2 is high, L99 and R2D2", []),
    ("FAU12 AU12x", []),
    ("AU4+AU5", [(4, None, None), (5, None, None)]),
  ],
)
def test_parse_aus(text, mentions):
  assert facs.parse_aus(text) == [AUMention(*m) for m in mentions]


def test_au_set_agrees_with_facial_r1_regex_on_plain_mentions():
  text = "brows down (AU4), lids tight (AU7), lips pressed (AU24), AU4 again"
  reference = {f"AU{int(x[2:])}" for x in re.findall(r"AU\d+", text.upper())}
  assert facs.au_set(text) == reference == {"AU4", "AU7", "AU24"}


@pytest.mark.parametrize("s", ["AU06", "au6", "AU 6", "AU6B", "R6", "6"])
def test_canonical_au(s):
  assert facs.canonical_au(s) == "AU6"


@pytest.mark.parametrize("s", ["", "junk", "AU", "AU6 AU7", "happy AU6"])
def test_canonical_au_rejects_junk(s):
  with pytest.raises(ValueError, match="not an action unit"):
    facs.canonical_au(s)


def test_consistent():
  assert facs.consistent("happy", ["AU6", "AU12"]) == 1.0
  # Non-diagnostic AUs (25, 43) do not count.
  assert facs.consistent("happiness", ["AU6", "AU12", "AU25", "AU43"]) == 1.0
  # F1 of named {6, 12, 4} vs prototype {6, 12}: 2*2 / (3 + 2).
  assert facs.consistent("happiness", ["AU6", "AU12", "AU4"]) == 0.8
  every = [f"AU{n}" for n in facs.AUS]
  assert facs.consistent("happiness", every) < 0.3
  assert facs.consistent("anger", ["AU6", "AU12"]) == 0.0
  assert facs.consistent("anger", []) == 0.0
  assert facs.consistent("neutral", ["AU25"]) == 1.0
  assert facs.consistent("neutral", ["AU12"]) == 0.0
  assert facs.consistent("love", ["AU12"]) == 0.0
  assert facs.consistent("disgust", ["AU4", "AU10", "AU17"], "intense") == 1.0
