"""facs_consistency (ours): does the answer fit the AUs the reasoning names?

No peer has this. It checks the answered emotion against the prototype
table (`facs.consistent`, an F1 between the named diagnostic AUs and the
emotion's prototype), so reasoning and answer must agree with FACS even
where the row has no AU labels. It cannot be earned by AU spam: naming every
AU has low precision against any prototype.
"""

import functools

import numpy as np

from emojax.data import facs
from emojax.rewards.au import think_aus
from emojax.rewards.emotion import predicted_label


def consistency_reward(
  completions: list[str], examples: dict, variant: str = "emfacs"
) -> np.ndarray:
  """facs.consistent(answer, AUs in <think>, variant); 0 for a bad answer."""
  del examples
  out = np.zeros(len(completions))
  for i, text in enumerate(completions):
    label = predicted_label(text, None)
    if label is not None:
      out[i] = facs.consistent(label, think_aus(text), variant)
  return out


consistency_intense_reward = functools.partial(
  consistency_reward, variant="intense"
)
