"""config.rl.advantage_impl picks how the GRPO step turns rewards into
advantages: 'pallas' reaches the fused kernel (Pallas's interpreter on
CPU) and gives the RL core's values on the recipe's rewards."""

import types

import numpy as np
import pytest

from configs import common, facial_r1
from emojax import kernels
from emojax.train import grpo

G = 4
LABELS = ["happiness", "sadness"]
# Right, wrong, unformatted and AU-less answers: a spread in every group.
TEXTS = [
  "<think>AU6 and AU12: a smile.</think><answer>happiness</answer>",
  "<think>AU1 AU4 AU15.</think><answer>sadness</answer>",
  "happiness",
  "<think>AU12.</think><answer>fear</answer>",
  "<think>AU1 and AU4 and AU15.</think><answer>sadness</answer>",
  "<think>AU6.</think><answer>happiness</answer>",
  "<answer>sadness</answer>",
  "<think>nothing</think><answer>anger</answer>",
]


def _score(impl):
  c = facial_r1.get_config()
  rl = c.rl
  rl.group_size, rl.advantage_impl = G, impl
  prompts = {
    "input_ids": np.ones((2, 3), np.int32),
    "labels": [[x] for x in LABELS],
    "AUs": [["AU6", "AU12"], ["AU1", "AU4", "AU15"]],
    "text": ["", ""],
    "caption": ["", ""],
  }
  ro = types.SimpleNamespace(text=TEXTS, lengths=np.full(8, 12))
  return grpo.score(prompts, ro, rl, 0, None, c.data.emotions)


def test_pallas_reaches_the_kernel_and_matches_jnp(monkeypatch):
  rewards_PGR, want_PG = _score("jnp")
  calls = []
  impl = kernels.group_advantages
  monkeypatch.setattr(
    kernels,
    "group_advantages",
    lambda *a, **kw: calls.append(kw) or impl(*a, **kw),
  )
  got_rewards, got_PG = _score("pallas")
  # The recipe's clip and mode reach the kernel.
  assert calls == [dict(mode="grpo", eps=1e-4, ddof=1, reward_clip=10.0)]
  np.testing.assert_array_equal(got_rewards, rewards_PGR)
  assert np.ptp(want_PG) > 0.5
  np.testing.assert_allclose(got_PG, want_PG, atol=1e-5, rtol=1e-5)


def test_unknown_impl_names_the_field():
  rl = facial_r1.get_config().rl
  rl.advantage_impl = "triton"
  with pytest.raises(ValueError, match="rl.advantage_impl='triton'"):
    common.validate(rl)
