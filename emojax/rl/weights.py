"""Facial-R1's AU-rarity sample weights (host numpy, once per dataset)."""

from collections import Counter
from collections.abc import Sequence

import numpy as np

from emojax.data import facs


def au_rarity_weights(aus: Sequence[Sequence[str]]) -> np.ndarray:
  """One weight per sample, as Facial-R1's trainer computes them.

  w(AU) = 1 / (freq(AU) + 1e-6), normalised to sum to 1; a sample's weight
  is the sum of w over its AUs, min-max normalised over the dataset, x10.
  Literal consequence: the most common combination weighs 0. Samples
  without AUs weigh 1 (Facial-R1's code for them is broken). If every
  sample with AUs has the same sum, they all weigh 10.
  """
  rows = [sorted({facs.canonical_au(a) for a in row}) for row in aus]
  counts = Counter(a for row in rows for a in row)
  total = max(sum(counts.values()), 1)
  inv = {a: 1.0 / (c / total + 1e-6) for a, c in counts.items()}
  norm = sum(inv.values()) or 1.0
  sums = np.array([sum(inv[a] / norm for a in row) for row in rows])
  has = np.array([bool(row) for row in rows])
  out = np.ones(len(rows))
  if has.any():
    lo, hi = sums[has].min(), sums[has].max()
    scaled = (sums - lo) / (hi - lo) if hi > lo else np.ones_like(sums)
    out[has] = 10.0 * scaled[has]
  return out
