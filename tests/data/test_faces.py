"""The FACS face renderer: determinism, AU locality, intensity order."""

import numpy as np
import pytest

from emojax.data import faces

SIZE = 64
IDENT = faces.Identity()  # frontal, centred, no noise, blur or lighting


def _band(au: int) -> tuple[float, float]:
  """Rows (in face units, v down) where an AU is allowed to change pixels."""
  i = IDENT
  brows = i.eye_v - i.brow_gap
  bands = {
    (1, 2, 4): (brows - 0.8, i.eye_v + 0.05),
    (5, 7, 43): (i.eye_v - 0.2, i.eye_v + 0.2),
    (6,): (i.eye_v - 0.15, i.eye_v + 0.5),
    (9,): (i.eye_v, i.nose_v + 0.15),
    (10, 12, 14, 15, 16, 20, 23, 24, 25): (i.nose_v - 0.1, i.mouth_v + 0.35),
    (17, 26): (i.mouth_v - 0.2, i.aspect + 0.4),
  }
  return next(b for aus, b in bands.items() if au in aus)


def _changed(aus: dict[int, float]) -> np.ndarray:
  base = faces.render({}, IDENT, size=SIZE).astype(np.int32)
  moved = faces.render(aus, IDENT, size=SIZE).astype(np.int32)
  return np.abs(moved - base).max(-1)


def test_same_inputs_same_pixels_and_identity_stream():
  a = faces.sample_identity(np.random.default_rng(5))
  b = faces.sample_identity(np.random.default_rng(5))
  assert a == b
  x = faces.render({12: 0.7, 6: 0.55}, a, size=SIZE, seed=9)
  y = faces.render({12: 0.7, 6: 0.55}, b, size=SIZE, seed=9)
  assert x.dtype == np.uint8 and x.shape == (SIZE, SIZE, 3)
  np.testing.assert_array_equal(x, y)
  noisy = faces.Identity(noise=5.0)
  assert not np.array_equal(
    faces.render({}, noisy, seed=1), faces.render({}, noisy, seed=2)
  )


def test_identities_vary():
  rng = np.random.default_rng(0)
  images = [faces.render({}, faces.sample_identity(rng)) for _ in range(4)]
  for k in range(1, 4):
    assert np.abs(images[0].astype(int) - images[k]).mean() > 5


@pytest.mark.parametrize("au", faces.RENDERED_AUS)
def test_each_au_changes_its_own_region(au):
  diff = _changed({au: 1.0})
  changed = diff > 24
  assert changed.sum() >= 6, f"AU{au} barely changes the face"
  top, bottom = _band(au)
  to_row = lambda v: (IDENT.center_y + v * IDENT.half_width) * SIZE
  rows = np.nonzero(changed)[0]
  inside = (rows >= to_row(top) - 1) & (rows <= to_row(bottom) + 1)
  assert inside.mean() >= 0.9, (
    f"AU{au}: {1 - inside.mean():.0%} of changed pixels outside rows "
    f"{to_row(top):.0f}-{to_row(bottom):.0f}: {sorted(set(rows[~inside]))}"
  )


@pytest.mark.parametrize("au", faces.RENDERED_AUS)
def test_stronger_intensity_changes_more(au):
  totals = [_changed({au: faces.INTENSITY[k]}).sum() for k in ("A", "C", "E")]
  assert totals[0] > 0
  assert totals[0] < totals[1] < totals[2], totals


def test_bad_input_names_the_au_and_fix():
  with pytest.raises(ValueError, match=r"AU99 .*RENDERED_AUS"):
    faces.render({99: 1.0})
  with pytest.raises(ValueError, match=r"AU12 intensity 1.5 .*INTENSITY"):
    faces.render({12: 1.5})
