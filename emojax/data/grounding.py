"""Where each AU moves a synthetic face: per-image-token AU targets.

The base model's vision tower learns to see from these (the `ground`
stage). Pooled objectives (captions, bags of words over the whole image)
taught the tiny tower almost nothing in the time a CPU allows: Qwen2.5-VL's
tower has 2-D RoPE and no absolute positions, so its merged tokens must
carry "what moved here" in their content, and a per-token target says that
directly (grounded captioning, as in Kosmos-2 or Qwen-VL's box data).

A token's target for an AU is 1 when rendering the face without that AU
(same identity, same noise) changes the token's pixels by more than a
threshold on average: the renderer is its own ground truth.
"""

from __future__ import annotations

import numpy as np

from emojax.data import faces, synth

AUS: tuple[int, ...] = tuple(faces.RENDERED_AUS)


def _render(face: synth.Face, aus: dict[int, str], size: int) -> np.ndarray:
  strengths = {n: faces.INTENSITY[k] for n, k in aus.items()}
  return faces.render(strengths, face.identity, size=size, seed=face.noise_seed)


def movement_AHW(face: synth.Face, size: int) -> tuple[np.ndarray, np.ndarray]:
  """The face's image and, per rendered AU, the mean |pixel change| it causes.

  Returns (image uint8 [size, size, 3], moved float32 [A, size, size]) with
  A = len(AUS); AUs the face does not show are zero.
  """
  image = _render(face, face.aus, size)
  moved_AHW = np.zeros((len(AUS), size, size), np.float32)
  for n in face.aus:
    without = {m: k for m, k in face.aus.items() if m != n}
    diff = np.abs(
      image.astype(np.float32) - _render(face, without, size).astype(np.float32)
    )
    moved_AHW[AUS.index(n)] = diff.mean(-1)
  return image, moved_AHW


def token_targets(
  moved_AHW: np.ndarray, grid_hw: tuple[int, int], threshold: float
) -> np.ndarray:
  """`[h * w, A]` 0/1 targets for a `grid_hw` of merged tokens, raster order.

  Each token covers an equal share of the image (the processor keeps the
  aspect ratio); its target is 1 where the AU's mean change there exceeds
  `threshold` (pixel levels, 0-255).
  """
  a, height, width = moved_AHW.shape
  h, w = grid_hw
  rows = np.linspace(0, height, h + 1).round().astype(int)
  cols = np.linspace(0, width, w + 1).round().astype(int)
  out_HWA = np.zeros((h, w, a), np.float32)
  for i in range(h):
    for j in range(w):
      cell = moved_AHW[:, rows[i] : rows[i + 1], cols[j] : cols[j + 1]]
      out_HWA[i, j] = cell.mean((1, 2)) > threshold
  return out_HWA.reshape(h * w, a)
