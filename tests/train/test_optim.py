"""The learning-rate schedules against their formulas (the HF Trainer's
linear one as transformers computes it)."""

import ml_collections
import numpy as np
import pytest
import torch
import transformers

from emojax.train import optim


def _cfg(schedule, warmup, final=0.0):
  return ml_collections.ConfigDict(
    dict(lr=1e-3, warmup_steps=warmup, schedule=schedule, final_lr_ratio=final)
  )


@pytest.mark.parametrize("warmup", [0, 3])
def test_linear_is_the_hf_trainers(warmup):
  total = 20
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=1e-3)
  hf = transformers.get_linear_schedule_with_warmup(opt, warmup, total)
  want = []
  for _ in range(total):
    want.append(opt.param_groups[0]["lr"])
    opt.step()
    hf.step()
  fn = optim.schedule(_cfg("linear", warmup), total)
  got = [float(fn(i)) for i in range(total)]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_constant_and_cosine_ends():
  const = optim.schedule(_cfg("constant", 2), 10)
  assert [float(const(i)) for i in (0, 1, 2, 9)] == pytest.approx(
    [0.0, 5e-4, 1e-3, 1e-3]
  )
  cos = optim.schedule(_cfg("cosine", 0, final=0.1), 10)
  assert float(cos(0)) == pytest.approx(1e-3)
  assert float(cos(10)) == pytest.approx(1e-4)
  assert float(cos(5)) == pytest.approx(1e-4 + 0.5 * 9e-4)


def test_unknown_schedule_names_the_field():
  with pytest.raises(ValueError, match="optim.schedule='step'"):
    optim.schedule(_cfg("step", 0), 10)
