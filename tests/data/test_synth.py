"""Synthetic FACS examples: determinism, labels vs prototypes, texts."""

import re

import numpy as np
import pytest

from emojax.data import faces, facs, synth

N = 600  # faces drawn (not rendered) for the rate checks
# Words that name each region, in caption order: brows, eyes, nose, mouth, jaw.
REGION_WORDS = (
  ("brow",), ("eye", "lid", "cheek"), ("nose",), ("lip", "mouth"),
  ("jaw", "chin"),
)  # fmt: skip
BANNED = {"no", "not", "without", "maybe", "perhaps", "might", "possibly"}


def _proto(emotion: str) -> set[int]:
  if emotion == "neutral":
    return set()
  return {a for a in facs.PROTOTYPES[emotion] if a in faces.RENDERED_AUS}


def test_same_seed_and_index_same_example():
  a = synth.make_example(3, 17, size=48, reasoning=True)
  b = synth.make_example(3, 17, size=48, reasoning=True)
  np.testing.assert_array_equal(a["image"], b["image"])
  assert {k: v for k, v in a.items() if k != "image"} == {
    k: v for k, v in b.items() if k != "image"
  }
  c = synth.make_example(3, 18, size=48)
  assert not np.array_equal(a["image"], c["image"])
  assert "description" not in c


def test_fields_and_types():
  for i in range(10):
    ex = synth.make_example(0, i)
    assert ex["image"].dtype == np.uint8 and ex["image"].shape == (64, 64, 3)
    assert len(ex["labels"]) == 1
    assert ex["labels"][0] in facs.LABEL_SETS["basic7"]
    numbers = [int(a[2:]) for a in ex["AUs"]]
    assert numbers == sorted(numbers)
    assert all(facs.canonical_au(a) == a for a in ex["AUs"])


def test_without_ambiguity_aus_are_the_prototype():
  config = synth.SynthConfig(drop_rate=0, extra_rate=0, neutral_au_rate=0)
  seen = set()
  for i in range(200):
    face = synth.sample_face(1, i, config)
    seen.add(face.emotion)
    assert set(face.aus) == _proto(face.emotion)
  assert seen == set(facs.LABEL_SETS["basic7"])


def test_ambiguity_follows_configured_rates():
  config = synth.SynthConfig(drop_rate=0.2, extra_rate=0.3, neutral_au_rate=0.4)
  dropped = added = emotional = droppable = neutral = faint = 0
  for i in range(N):
    face = synth.sample_face(2, i, config)
    proto, got = _proto(face.emotion), set(face.aus)
    assert len(proto - got) <= 1 and len(got - proto) <= 1
    if face.emotion == "neutral":
      neutral += 1
      faint += bool(got)
      assert all(face.aus[a] in config.neutral_intensities for a in got)
      continue
    emotional += 1
    droppable += len(proto) >= 2
    dropped += len(proto - got)
    added += len(got - proto)
  # Binomial 3-sigma bands around the configured rates.
  for hits, n, p in (
    (dropped, droppable, 0.2),
    (added, emotional, 0.3),
    (faint, neutral, 0.4),
  ):
    assert abs(hits / n - p) < 3 * np.sqrt(p * (1 - p) / n) + 0.01, (hits, n, p)


def test_captions_have_no_au_codes_or_emotion_words():
  for i in range(150):
    face = synth.sample_face(4, i)
    text = synth.caption(face)
    assert not facs.au_set(text) and not re.search(r"\bAU", text), text
    for word in re.findall(r"[A-Za-z]+", text):
      assert facs.normalize_label(word) is None, (word, text)
    clauses = text.split("; ")
    assert len(clauses) == len(REGION_WORDS), text
    for clause, words in zip(clauses, REGION_WORDS, strict=True):
      assert any(w in clause for w in words), (clause, words)


def test_captions_tell_every_au_apart():
  ident = synth.sample_face(0, 0).identity
  text = lambda aus: synth.caption(synth.Face("fear", aus, ident, 0, 0))
  singles = {au: text({au: "C"}) for au in faces.RENDERED_AUS}
  assert text({}) not in singles.values()
  assert len(set(singles.values())) == len(singles)


def test_reasoning_parses_back_to_the_examples_aus_and_label():
  fmt = re.compile(r"<think>(.+?)</think><answer>(.+?)</answer>", re.DOTALL)
  for i in range(150):
    ex = synth.make_example(5, i, size=16, reasoning=True)
    m = fmt.fullmatch(ex["description"])
    assert m, ex["description"]
    assert facs.au_set(m.group(1)) == set(ex["AUs"])
    assert [m.group(2)] == ex["labels"]
    words = set(re.findall(r"[a-z]+", m.group(1).lower()))
    assert not words & BANNED, ex["description"]


def test_text_corpus_is_deterministic_and_textual():
  a = list(synth.text_corpus(0, 20))
  assert a == list(synth.text_corpus(0, 20))
  assert all(isinstance(t, str) and t for t in a)
  assert any("<think>" in t for t in a)


def test_split_seeds_differ():
  seeds = {synth.split_seed(0, s) for s in ("train", "test", "sft")}
  assert len(seeds) == 3
  with pytest.raises(ValueError, match="must be >= 0"):
    synth.sample_face(0, -1)


def _expressive(seed: int) -> int:
  """An index whose face shows at least two AUs (so the onset shows)."""
  return next(i for i in range(100) if len(synth.sample_face(seed, i).aus) > 1)


def test_clip_rises_from_neutral_to_make_examples_face():
  index = _expressive(4)
  face = synth.sample_face(4, index)
  clip = synth.make_clip(4, index, size=48, frames=8, reasoning=True)
  frames = clip["frames"]
  assert frames.shape == (8, 48, 48, 3) and frames.dtype == np.uint8
  apex = clip["apex"]
  assert apex == 5  # about 2/3 of the way into 8 frames
  ex = synth.make_example(4, index, size=48, reasoning=True)
  for key in ("labels", "AUs", "caption", "description"):
    assert clip[key] == ex[key]
  # The apex frame is make_example's image (same strengths, same noise).
  np.testing.assert_array_equal(frames[apex], ex["image"])

  def seed(f):
    return synth.frame_seed(face.noise_seed, f, apex)

  # Frame 0 is the neutral face of the same person.
  neutral = faces.render({}, face.identity, size=48, seed=seed(0))
  np.testing.assert_array_equal(frames[0], neutral)
  # The apex holds to the end; only the imaging noise changes.
  full = {n: faces.INTENSITY[k] for n, k in face.aus.items()}
  last = faces.render(full, face.identity, size=48, seed=seed(7))
  np.testing.assert_array_equal(frames[7], last)
  # Frame 2 is 2/5 of the way up the onset: the AUs at 2/5 strength.
  rising = {n: 2 / 5 * s for n, s in full.items()}
  np.testing.assert_array_equal(
    frames[2], faces.render(rising, face.identity, size=48, seed=seed(2))
  )
  assert len({frames[f].tobytes() for f in range(8)}) == 8


def test_one_frame_clip_is_the_apex():
  clip = synth.make_clip(1, 3, size=32, frames=1)
  assert clip["apex"] == 0
  np.testing.assert_array_equal(
    clip["frames"][0], synth.make_example(1, 3, size=32)["image"]
  )
  with pytest.raises(ValueError, match="frames=0"):
    synth.make_clip(1, 3, frames=0)
