"""Per-token AU movement targets: which AU moves which image token."""

import numpy as np

from emojax.data import faces, grounding, synth

SIZE = 64


def _face(aus):
  return synth.Face(
    emotion="happiness",
    aus=aus,
    identity=faces.Identity(),
    noise_seed=3,
    phrasing=0,
  )


def test_movement_is_the_pixel_change_of_each_au_alone():
  face = _face({6: "D", 12: "D"})
  image, moved_AHW = grounding.movement_AHW(face, SIZE)
  np.testing.assert_array_equal(
    image, faces.render({6: 0.85, 12: 0.85}, face.identity, size=SIZE, seed=3)
  )
  without_12 = faces.render({6: 0.85}, face.identity, size=SIZE, seed=3)
  want = np.abs(image.astype(np.float32) - without_12).mean(-1)
  np.testing.assert_allclose(moved_AHW[grounding.AUS.index(12)], want)
  absent = [i for i, n in enumerate(grounding.AUS) if n not in (6, 12)]
  assert not moved_AHW[absent].any()
  # The lip corners move the lower half, the cheeks the middle rows.
  rows_12 = np.nonzero(moved_AHW[grounding.AUS.index(12)].sum(1))[0]
  assert rows_12.min() > SIZE // 2


def test_token_targets_equal_block_means_on_a_divisible_grid():
  rng = np.random.default_rng(0)
  moved_AHW = rng.exponential(1.0, (len(grounding.AUS), SIZE, SIZE))
  got = grounding.token_targets(moved_AHW, (4, 4), threshold=1.0)
  blocks_A44 = moved_AHW.reshape(-1, 4, 16, 4, 16).mean((2, 4))
  want = (blocks_A44 > 1.0).reshape(-1, 16).T  # raster order of tokens
  np.testing.assert_array_equal(got, want)


def test_token_targets_cover_every_pixel_on_an_odd_grid():
  moved_AHW = np.zeros((len(grounding.AUS), 60, 60), np.float32)
  moved_AHW[0, 59, 59] = 1000.0  # one bright pixel in the last token
  got = grounding.token_targets(moved_AHW, (4, 4), threshold=1.0)
  assert got.shape == (16, len(grounding.AUS))
  assert got[15, 0] == 1 and got.sum() == 1


def test_a_real_face_marks_the_mouth_tokens_for_a_mouth_au():
  face = _face({12: "E"})
  _, moved_AHW = grounding.movement_AHW(face, SIZE)
  tokens = grounding.token_targets(moved_AHW, (4, 4), threshold=1.0)
  marked = np.nonzero(tokens[:, grounding.AUS.index(12)])[0]
  assert len(marked) and (marked // 4 >= 2).all()  # lower two token rows
