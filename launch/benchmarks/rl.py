r"""Rewards/s on 1,024 completions and GRPO loss+grad time, beside references.

  python launch/benchmark.py rl [--rows=1024] [--loss_b=128] [--loss_t=512]

References, in the same run: Facial-R1's own reward code (regex format,
last-answer exact match, `AU\d+` F1), transcribed; and the GRPO loss as
TRL writes it, in torch with autograd on the same inputs.
"""

import argparse
import re
import time

import jax
import numpy as np
import torch

from benchmarks import _common
from emojax.rewards import REWARDS
from emojax.rl import loss as rl_loss

_FAMILIES = ["format", "emotion", "au_f1", "facs_consistency", "set_f1"]
_FAMILIES += ["ew_f1", "confidence"]


def _completions(n, seed=0):
  rng = np.random.default_rng(seed)
  feats = ["(AU1)", "(AU4)", "(AU6)", "(AU12)", "(AU15)", "(AU25)", "(AU26)"]
  words = ["happiness", "sadness", "anger", "fear", "happy, sad", ""]
  out = []
  for _ in range(n):
    k = rng.integers(1, 5)
    think = " ".join(f"feature {f}" for f in rng.choice(feats, k))
    out.append(
      f"<think>{think} and more words here</think>"
      f"<answer>{rng.choice(words)}</answer>"
    )
  return out


def _facial_r1_rewards(completions, labels, aus):
  """Facial-R1 grpo_jsonl.py's three rewards, transcribed (METHODS.md 1)."""
  out = []
  for c, lab, gt in zip(completions, labels, aus, strict=True):
    fmt = re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", c, re.S)
    answers = re.findall(r"<answer>(.*?)</answer>", c, re.S)
    acc = float(bool(answers) and answers[-1].strip() == lab[0])
    think = re.search(r"<think>(.*?)</think>", c, re.S)
    pred = set(re.findall(r"AU\d+", think.group(1).upper())) if think else set()
    g = set(gt)
    if not g:
      au = 0.0
    elif not pred:
      au = -1.0
    else:
      hits = len(pred & g)
      p, r = hits / len(pred), hits / len(g)
      au = 2 * (2 * p * r / (p + r) if hits else 0.0) - 1
    out.append(float(bool(fmt)) + acc + au)
  return np.array(out)


def _rate(fn, n, repeats=3):
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return n / best


def _bench_rewards(rows):
  comps = _completions(rows)
  ex = {
    "labels": [["happiness"]] * rows,
    "AUs": [["AU6", "AU12"]] * rows,
    "label_set": "basic7",
  }
  ref = _rate(lambda: _facial_r1_rewards(comps, ex["labels"], ex["AUs"]), rows)
  print(f"rewards on {rows} completions (completions/s, best of 3):")
  print(f"  Facial-R1 reference (format+accuracy+au): {ref:12,.0f}")
  ours = _rate(
    lambda: [REWARDS[n](comps, ex) for n in ("format", "emotion", "au_f1")],
    rows,
  )
  print(f"  emojax format+emotion+au_f1:              {ours:12,.0f}"
        f"  ({ours / ref:.2f}x the reference)")  # fmt: skip
  for name in _FAMILIES:
    rate = _rate(lambda name=name: REWARDS[name](comps, ex), rows)
    print(f"  emojax {name:<20s}              {rate:12,.0f}")


def _torch_trl_loss(logp, old, ref, adv, mask, beta=0.04, eps=0.2):
  coef_1 = torch.exp(logp - old)
  coef_2 = torch.clamp(coef_1, 1 - eps, 1 + eps)
  per_token_loss = -torch.min(coef_1 * adv[:, None], coef_2 * adv[:, None])
  per_token_loss = per_token_loss + beta * (
    torch.exp(ref - logp) - (ref - logp) - 1
  )
  return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def _time(fn, repeats=5):
  fn()  # Warm-up (compiles for jax).
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def _bench_loss(b, t):
  rng = np.random.default_rng(0)
  logp = -rng.gamma(2.0, 0.5, (b, t)).astype(np.float32)
  old = (logp + 0.1 * rng.standard_normal((b, t))).astype(np.float32)
  ref = (logp + 0.1 * rng.standard_normal((b, t))).astype(np.float32)
  adv = rng.standard_normal(b).astype(np.float32)
  mask = (np.arange(t)[None] < rng.integers(1, t, (b, 1))).astype(np.float32)
  cfg = dict(loss_type="grpo", beta=0.04, epsilon=0.2)
  grad = jax.jit(
    jax.grad(lambda lp: rl_loss.grpo_loss(lp, old, ref, adv, mask, cfg)[0])
  )
  ours = _time(lambda: grad(logp).block_until_ready())
  tensors = [torch.tensor(a) for a in (logp, old, ref, adv, mask)]

  def torch_step():
    lp = tensors[0].clone().requires_grad_(True)
    _torch_trl_loss(lp, *tensors[1:]).backward()

  # One torch thread: on a shared 2-core machine torch's 2-thread pool
  # stalls ~100x on small elementwise ops, which would flatter jax.
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  theirs = _time(torch_step)
  torch.set_num_threads(threads)
  print(f"GRPO loss+grad, B={b} T={t}, 'grpo' + k3 KL (median of 5):")
  print(f"  TRL formulas in torch, 1 thread:  {theirs * 1e3:8.2f} ms")
  print(f"  emojax grpo_loss (jax.jit):       {ours * 1e3:8.2f} ms"
        f"  ({theirs / ours:.2f}x faster)")  # fmt: skip


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="benchmark.py rl")
  parser.add_argument("--rows", type=int, default=1024)
  parser.add_argument("--loss_b", type=int, default=128)
  parser.add_argument("--loss_t", type=int, default=512)
  args = parser.parse_args(argv[1:])
  print("machine:", _common.describe())
  _bench_rewards(args.rows)
  _bench_loss(args.loss_b, args.loss_t)
  return 0
