"""Procedural frontal faces whose geometry follows FACS action units.

Faces are drawn as PIL polygons at `supersample` times the target size in a
face frame (unit = half the face width, u to the subject's left on screen
right, v down, origin between the eyes' level and the nose), then rotated and
placed by the identity, downsized, lit, blurred and noised. Each rendered AU
moves or shades only its own region, in proportion to its intensity, so the
differences survive at 48-64 px. No assets, no per-pixel Python loops.
"""

import dataclasses
import functools
from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# AUs the renderer draws (others in facs.AUS have no geometry here).
RENDERED_AUS: tuple[int, ...] = (
  1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 43,
)  # fmt: skip

# FACS intensity letter -> drawing strength in (0, 1]. Trace (A) starts at 0.4
# rather than 0.2 so that it still moves a feature by a pixel at 64 px.
INTENSITY: dict[str, float] = {
  "A": 0.4, "B": 0.55, "C": 0.7, "D": 0.85, "E": 1.0,
}  # fmt: skip

_RGB = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Identity:
  """Who is drawn and how: everything about a face except its AUs.

  Positions are fractions of the image size; feature placements are in face
  units (half the face width); colours are RGB in [0, 255].
  """

  center_x: float = 0.5
  center_y: float = 0.47
  half_width: float = 0.32
  aspect: float = 1.3  # face height / width
  angle: float = 0.0  # degrees, counter-clockwise
  jaw_taper: float = 0.15
  eye_u: float = 0.4
  eye_v: float = -0.15
  eye_width: float = 0.2
  brow_gap: float = 0.28
  nose_v: float = 0.3
  mouth_v: float = 0.62
  mouth_width: float = 0.32
  lip_thickness: float = 0.07
  skin: _RGB = (224.0, 182.0, 150.0)
  hair: _RGB = (60.0, 40.0, 30.0)
  lip: _RGB = (175.0, 80.0, 80.0)
  iris: _RGB = (70.0, 50.0, 35.0)
  background: _RGB = (150.0, 170.0, 190.0)
  light_angle: float = 0.0  # radians; direction light comes from
  light_strength: float = 0.0  # 0 = flat lighting
  noise: float = 0.0  # Gaussian noise std on the 0-255 scale
  blur: float = 0.0  # Gaussian blur radius in output pixels


_SKIN_TONES = np.array(
  [
    (255, 224, 196),
    (234, 192, 160),
    (214, 162, 124),
    (176, 122, 88),
    (125, 84, 58),
    (88, 58, 40),
  ],
  dtype=np.float64,
)
_HAIR = np.array(
  [(20, 18, 18), (60, 40, 28), (110, 72, 40), (190, 150, 90), (140, 60, 30)],
  dtype=np.float64,
)


def _pick(rng: np.random.Generator, table: np.ndarray) -> _RGB:
  """Blends two neighbouring rows of `table`, so tones vary continuously."""
  t = rng.uniform(0, len(table) - 1)
  i = min(int(t), len(table) - 2)
  c = table[i] * (1 - (t - i)) + table[i + 1] * (t - i)
  return tuple(float(x) for x in c)


def sample_identity(
  rng: np.random.Generator, *, max_angle: float = 8.0
) -> Identity:
  """Random face shape, tone, spacing, size, position, pose and imaging."""
  u = rng.uniform
  skin = _pick(rng, _SKIN_TONES)
  lip_base = np.array([180.0, 70.0, 75.0])
  lip = 0.55 * lip_base + 0.45 * np.array(skin) * np.array([0.9, 0.6, 0.6])
  return Identity(
    center_x=u(0.45, 0.55),
    center_y=u(0.44, 0.5),
    half_width=u(0.29, 0.34),
    aspect=u(1.18, 1.36),
    angle=u(-max_angle, max_angle),
    jaw_taper=u(0.05, 0.3),
    eye_u=u(0.36, 0.44),
    eye_v=u(-0.2, -0.1),
    eye_width=u(0.17, 0.22),
    brow_gap=u(0.25, 0.32),
    nose_v=u(0.25, 0.34),
    mouth_v=u(0.58, 0.68),
    mouth_width=u(0.28, 0.36),
    lip_thickness=u(0.055, 0.085),
    skin=skin,
    hair=_pick(rng, _HAIR),
    lip=tuple(float(x) for x in lip),
    iris=_pick(rng, _HAIR[:3]),
    background=tuple(float(x) for x in rng.uniform(40, 230, 3)),
    light_angle=u(0, 2 * np.pi),
    light_strength=u(0.0, 0.25),
    noise=u(0.0, 6.0),
    blur=u(0.0, 0.6),
  )


def _scale(c: _RGB, k: float) -> tuple[int, int, int]:
  return tuple(int(round(min(255.0, max(0.0, x * k)))) for x in c)


def _mix(a: _RGB, b: _RGB, t: float) -> tuple[int, int, int]:
  return tuple(
    int(round(x * (1 - t) + y * t)) for x, y in zip(a, b, strict=True)
  )


_T16 = np.linspace(0, 2 * np.pi, 17)[:-1]
_T32 = np.linspace(0, 2 * np.pi, 33)[:-1]
_X9 = np.linspace(-1.0, 1.0, 9)


def _ellipse(cu, cv, ru, rv, t=_T16) -> np.ndarray:
  return np.stack([cu + ru * np.cos(t), cv + rv * np.sin(t)], -1)


_T7 = np.linspace(0, 1, 7)
_BEZIER_73 = np.stack([(1 - _T7) ** 2, 2 * (1 - _T7) * _T7, _T7**2], -1)


def _bezier(p0, p1, p2) -> np.ndarray:
  """Quadratic Bezier from p0 to p2 pulled towards p1, as [7, 2]."""
  return _BEZIER_73 @ np.array([p0, p1, p2], dtype=np.float64)


def _thick(line: np.ndarray, width: np.ndarray | float) -> np.ndarray:
  """Polygon of a centreline offset by +-width/2 along its normal."""
  d = np.empty_like(line)
  d[1:-1] = line[2:] - line[:-2]
  d[0], d[-1] = line[1] - line[0], line[-1] - line[-2]
  n = np.stack([-d[:, 1], d[:, 0]], -1)
  n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-9
  half = np.broadcast_to(np.asarray(width, dtype=np.float64) / 2, len(line))
  return np.concatenate(
    [line + n * half[:, None], (line - n * half[:, None])[::-1]]
  )


class _Canvas:
  """Draws face-frame polygons onto a PIL image through the pose transform."""

  def __init__(self, ident: Identity, size: int):
    self.image = Image.new("RGB", (size, size), _scale(ident.background, 1))
    self.draw = ImageDraw.Draw(self.image)
    self.px = ident.half_width * size
    a = np.deg2rad(ident.angle)
    # Screen y points down, so a counter-clockwise turn is [[c, s], [-s, c]].
    self.rot = self.px * np.array(
      [[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]
    )
    self.origin = np.array([ident.center_x * size, ident.center_y * size])

  def _xy(self, pts: np.ndarray) -> list[float]:
    return (pts @ self.rot.T + self.origin).ravel().tolist()

  def poly(self, pts: np.ndarray, fill) -> None:
    self.draw.polygon(self._xy(pts), fill=fill)

  def line(self, pts: np.ndarray, fill, width: float) -> None:
    """A polyline `width` face units wide (at least one pixel)."""
    px = max(1, round(width * self.px))
    self.draw.line(self._xy(pts), fill=fill, width=px, joint="curve")


def _get(aus: Mapping[int, float], n: int) -> float:
  return float(aus.get(n, 0.0))


def _head(c: _Canvas, ident: Identity, aus: Mapping[int, float]) -> None:
  skin, asp = ident.skin, ident.aspect
  jaw = 0.25 * _get(aus, 26)
  c.poly(_ellipse(0, -0.3 * asp, 1.14, asp * 0.82, _T32), _scale(ident.hair, 1))
  neck = np.array([[-0.42, 0.4 * asp], [0.42, 0.4 * asp], [0.5, 3], [-0.5, 3]])
  c.poly(neck, _scale(skin, 0.8))
  for s in (-1, 1):
    c.poly(_ellipse(s * 0.98, 0.05, 0.13, 0.24), _scale(skin, 0.9))
  sin = np.sin(_T32)
  low = np.maximum(sin, 0) ** 2
  outline = np.stack(
    [np.cos(_T32) * (1 - ident.jaw_taper * low), asp * sin + jaw * low], -1
  )
  c.poly(outline, _scale(skin, 1))


def _brows(c: _Canvas, ident: Identity, aus: Mapping[int, float]) -> None:
  a1, a2, a4 = _get(aus, 1), _get(aus, 2), _get(aus, 4)
  base = ident.eye_v - ident.brow_gap
  inner_u = ident.eye_u - 0.2 - 0.09 * a4
  outer_u = ident.eye_u + 0.24
  inner_v = base - 0.24 * a1 + 0.12 * a4
  outer_v = base + 0.03 - 0.24 * a2 + 0.03 * a4
  mid_v = base - 0.07 - 0.09 * a1 - 0.1 * a2 + 0.07 * a4
  # At least as dark as half the skin tone, so blond brows still show.
  color = tuple(
    min(a, b)
    for a, b in zip(
      _scale(ident.hair, 0.8), _scale(ident.skin, 0.5), strict=True
    )
  )
  width = np.linspace(0.1, 0.06, 7)
  for s in (-1, 1):
    line = _bezier(
      (s * inner_u, inner_v), (s * (inner_u + outer_u) / 2, mid_v),
      (s * outer_u, outer_v),
    )  # fmt: skip
    c.poly(_thick(line, width), color)
  crease = _scale(ident.skin, 1 - 0.35 * max(a1, a2))
  if a1 or a2:
    # Forehead lines: central for the inner raiser, lateral for the outer.
    span = 0.12 + 0.25 * (a2 > 0) + 0.1 * (a1 > 0)
    for k in range(2):
      v = base - 0.32 - 0.1 * k
      c.line(_bezier((-span, v), (0, v - 0.04), (span, v)), crease, 0.03)
  if a4:
    # Vertical furrows between the lowered brows.
    furrow = _scale(ident.skin, 1 - 0.4 * a4)
    for s in (-1, 1):
      u = s * (inner_u - 0.05)
      line = np.array([[u, inner_v - 0.12 * a4], [u * 0.8, inner_v + 0.08]])
      c.line(line, furrow, 0.035)


def _eyes(c: _Canvas, ident: Identity, aus: Mapping[int, float]) -> None:
  a5, a6, a7 = _get(aus, 5), _get(aus, 6), _get(aus, 7)
  a43 = _get(aus, 43)
  up = (0.085 + 0.08 * a5) * (1 - 0.3 * a7)
  lo = 0.06 * (1 - 0.65 * a7) * (1 - 0.5 * a6)
  open_ = 1 - 0.95 * a43
  w = ident.eye_width
  shape = 1 - _X9**2
  for s in (-1, 1):
    cu, cv = s * ident.eye_u, ident.eye_v
    if a43:
      # The closing lid covers the open eye's area in shaded skin.
      lid_top = np.stack([cu + w * _X9, cv - up * shape], -1)
      lid_bottom = np.stack([cu + w * _X9, cv + lo * shape], -1)
      c.poly(
        np.concatenate([lid_top, lid_bottom[::-1]]),
        _scale(ident.skin, 1 - 0.25 * a43),
      )
    up_o, lo_o = up * open_, lo * open_
    top = np.stack([cu + w * _X9, cv - up_o * shape], -1)
    bottom = np.stack([cu + w * _X9, cv + lo_o * shape], -1)
    c.poly(np.concatenate([top, bottom[::-1]]), (240, 238, 232))
    # Iris clipped to the lid opening, so narrowing lids cover it.
    iris = _ellipse(cu, cv, 0.085, 0.085)
    xn = np.clip((iris[:, 0] - cu) / w, -1, 1)
    iris[:, 1] = np.clip(
      iris[:, 1], cv - up_o * (1 - xn**2), cv + lo_o * (1 - xn**2)
    )
    c.poly(iris, _scale(ident.iris, 1))
    lid = np.stack([cu + 1.1 * w * _X9, cv - up_o * shape - 0.01], -1)
    c.line(lid, (35, 25, 25), 0.045 * (1 - 0.5 * a43))
    c.line(bottom, _scale(ident.skin, 0.72), 0.02 + 0.03 * a7)
    if a7:
      # Tensed lower lid: a bulge line just below it.
      c.line(bottom + [0, 0.05], _scale(ident.skin, 1 - 0.3 * a7), 0.03)


def _cheeks(c: _Canvas, ident: Identity, aus: Mapping[int, float]) -> None:
  a6 = _get(aus, 6)
  if not a6:
    return
  rose = (205.0, 95.0, 95.0)
  for s in (-1, 1):
    cu = s * (ident.eye_u + 0.08)
    cv = ident.eye_v + 0.32 - 0.1 * a6
    c.poly(
      _ellipse(cu, cv, 0.2, 0.11 + 0.03 * a6), _mix(ident.skin, rose, 0.35 * a6)
    )
    # Crow's feet at the outer eye corner.
    corner = np.array([s * (ident.eye_u + ident.eye_width + 0.05), ident.eye_v])
    wrinkle = _scale(ident.skin, 1 - 0.4 * a6)
    for dv in (-0.05, 0.0, 0.05):
      line = np.array([corner, corner + [s * 0.1, dv * 1.6]])
      c.line(line, wrinkle, 0.025)


def _nose(c: _Canvas, ident: Identity, aus: Mapping[int, float]) -> None:
  a9, a10 = _get(aus, 9), _get(aus, 10)
  nv = ident.nose_v - 0.06 * a9 - 0.03 * a10
  shade = _scale(ident.skin, 0.86)
  bridge = np.array([[0.06, ident.eye_v + 0.05], [0.1, nv - 0.06]])
  c.line(bridge, shade, 0.03)
  c.poly(_ellipse(0, nv, 0.14, 0.075), shade)
  flare = 1 + 0.4 * a9 + 0.2 * a10
  for s in (-1, 1):
    c.poly(_ellipse(s * 0.075, nv + 0.03, 0.045 * flare, 0.026), (70, 40, 35))
  if a9:
    # Wrinkles across the bridge.
    wrinkle = _scale(ident.skin, 1 - 0.45 * a9)
    for k in range(3):
      v = ident.eye_v + 0.1 + 0.06 * k
      c.line(_bezier((-0.11, v), (0, v - 0.04), (0.11, v)), wrinkle, 0.025)


def _mouth(c: _Canvas, ident: Identity, aus: Mapping[int, float]) -> None:
  """Lips, opening, teeth, nasolabial folds, dimples and chin."""
  g = functools.partial(_get, aus)
  corner_u = ident.mouth_width * (
    1 + 0.25 * g(12) - 0.12 * g(14) + 0.4 * g(20) - 0.25 * g(23) - 0.08 * g(24)
  )
  corner_v = -0.14 * g(12) - 0.03 * g(14) + 0.15 * g(15) + 0.02 * g(20)
  # Chin raiser pushes the lower lip up, bowing the lip line upward.
  center_v = -0.06 * g(17)
  jaw = 0.25 * g(26)
  thick = ident.lip_thickness * (
    (1 - 0.3 * g(20)) * (1 - 0.5 * g(23)) * (1 - 0.65 * g(24))
  )
  gap_up = 0.035 * g(25) + 0.07 * g(10)
  gap_lo = 0.035 * g(25) + 0.8 * jaw + 0.07 * g(16)
  x = _X9 * corner_u
  shape = 1 - _X9**2
  mid = ident.mouth_v + corner_v * _X9**2 + center_v * shape
  # Upper lip lifts with the upper-lip raiser; lower lip drops with jaw/16.
  lip_up = mid - gap_up * shape**0.6
  lip_lo = mid + gap_lo * shape**0.6
  top = lip_up - thick * (0.7 + 0.5 * shape) * (shape**0.3)
  bottom = lip_lo + thick * (0.9 + 0.6 * shape) * (shape**0.3)

  fold = _scale(ident.skin, 0.88 - 0.12 * max(g(12), g(10), g(9)))
  for s in (-1, 1):
    line = _bezier(
      (s * 0.17, ident.nose_v + 0.04),
      (s * (corner_u + 0.12), ident.mouth_v - 0.15),
      (s * (corner_u + 0.07), ident.mouth_v + corner_v + 0.05),
    )  # fmt: skip
    c.line(line, fold, 0.03)

  if g(17):
    # Chin boss and the crease above it rise with the chin raiser.
    chin_v = ident.mouth_v + 0.42 + jaw - 0.08 * g(17)
    c.poly(_ellipse(0, chin_v, 0.22, 0.1), _scale(ident.skin, 1 - 0.12 * g(17)))
    crease = _bezier(
      (-0.18, chin_v - 0.12), (0, chin_v - 0.2), (0.18, chin_v - 0.12)
    )
    c.line(crease, _scale(ident.skin, 1 - 0.35 * g(17)), 0.035)

  lips = np.concatenate(
    [np.stack([x, top], -1), np.stack([x, bottom], -1)[::-1]]
  )
  c.poly(lips, _scale(ident.lip, 1 - 0.15 * g(23)))
  if gap_up + gap_lo > 0:
    inner_top = np.stack([x * 0.92, lip_up], -1)
    inner_bot = np.stack([x * 0.92, lip_lo], -1)
    c.poly(np.concatenate([inner_top, inner_bot[::-1]]), (60, 20, 25))
    teeth = (238, 236, 224)
    if g(10) or g(25):
      band = np.stack(
        [x * 0.6, lip_up + np.minimum(gap_up + 0.02, 0.05) * shape], -1
      )
      c.poly(
        np.concatenate([inner_top[2:-2] * [0.65, 1], band[::-1][2:-2]]), teeth
      )
    if g(16) or jaw:
      band = np.stack([x * 0.6, lip_lo - np.minimum(gap_lo, 0.05) * shape], -1)
      c.poly(
        np.concatenate([inner_bot[2:-2] * [0.65, 1], band[::-1][2:-2]]), teeth
      )
  line_w = 0.02 + 0.03 * g(24)
  c.line(np.stack([x, mid], -1), _scale(ident.lip, 0.5 - 0.2 * g(24)), line_w)
  if g(14):
    dimple = _scale(ident.skin, 1 - 0.45 * g(14))
    for s in (-1, 1):
      u = s * (corner_u + 0.06)
      v = ident.mouth_v + corner_v
      c.line(
        _bezier((u, v - 0.08), (u + s * 0.04, v), (u, v + 0.08)), dimple, 0.03
      )


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
  t = np.linspace(-1.0, 1.0, size, dtype=np.float32)
  return t[None, :, None], t[:, None, None]


def _check(aus: Mapping[int, float]) -> None:
  for n, i in aus.items():
    if n not in RENDERED_AUS:
      raise ValueError(
        f"AU{n} has no drawing; render only faces.RENDERED_AUS "
        f"({', '.join(f'AU{a}' for a in RENDERED_AUS)})."
      )
    if not 0.0 <= i <= 1.0:
      raise ValueError(
        f"AU{n} intensity {i} is outside [0, 1]; map letters A-E through "
        "faces.INTENSITY."
      )


def render(
  aus: Mapping[int, float],
  identity: Identity = Identity(),
  *,
  size: int = 64,
  seed: int = 0,
  supersample: int = 2,
) -> np.ndarray:
  """Draws one face; returns uint8 [size, size, 3].

  `aus` maps AU number -> strength in [0, 1] (see INTENSITY). Only the
  imaging noise is random, drawn from `seed`, so equal inputs give equal
  pixels.
  """
  _check(aus)
  c = _Canvas(identity, size * supersample)
  for part in (_head, _cheeks, _brows, _eyes, _nose, _mouth):
    part(c, identity, aus)
  image = c.image.resize((size, size), Image.Resampling.BOX)
  if identity.blur > 0:
    image = image.filter(ImageFilter.GaussianBlur(identity.blur))
  pixels = np.asarray(image, dtype=np.float32)
  if identity.light_strength:
    gx, gy = _grid(size)
    a = identity.light_angle
    pixels = pixels * (
      1 + identity.light_strength * (gx * np.cos(a) + gy * np.sin(a))
    )
  if identity.noise:
    rng = np.random.default_rng(seed)
    pixels = pixels + rng.normal(0, identity.noise, pixels.shape).astype(
      np.float32
    )
  return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
