"""Seconds per GRPO step, split into rollout / rewards / logprobs / update.

  python launch/benchmark.py grpo_step                    # tiny VLM preset
  python launch/benchmark.py grpo_step --workload=peers   # PEERS.md's CPU run

`peers` is the workload of PEERS.md "A GRPO step on two CPU cores": a
random fp32 Qwen2 (vocab 1024, width 256, MLP 768, 4 layers, 8/2 heads,
untied, theta 1e4), P=16 prompts of 32 random ids in [10, 1000), G=8 at
temperature 1, exactly 64 new tokens (EOS off), reward = fraction of even
completion ids, (r - mean) / (std + 1e-4), beta 0.04 with a frozen
reference, mu=1, 'grpo' loss, AdamW lr 1e-5, one optimiser step on all 128
rows. TRL 1.16 took 4.54 s per step and Tunix 0.1.7 5.43 s on a 2-core
machine (their figures, not rerun here); the median of steps 3..7 is
printed with peak host memory.
"""

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks import _common
from emojax import rollout
from emojax.model import config as config_lib
from emojax.model import params as params_lib
from emojax.model import specs
from emojax.rl import advantages
from emojax.train import grpo, optim


def _rl() -> ml_collections.ConfigDict:
  rl = ml_collections.ConfigDict()
  rl.loss_type = "grpo"
  rl.epsilon = rl.epsilon_high = 0.2
  rl.delta = rl.dual_clip = None
  rl.importance_sampling_level = "token"
  rl.beta = 0.04
  rl.kl_estimator = "k3"
  rl.entropy_coef = 0.0
  rl.advantage = "grpo"
  rl.eps, rl.ddof = 1e-4, 1
  rl.temperature = 1.0  # Sampling temperature; logprobs use it too.
  return rl


def _optim() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
    dict(
      lr=1e-5,
      warmup_steps=0,
      final_lr_ratio=1.0,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      weight_decay=0.0,
      grad_clip=1e9,
    )
  )


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  jax.block_until_ready(out)
  return out, time.perf_counter() - start


def step(params, ref, state, apply, cfg, batch, key, rl, G, T):
  """One full step; returns the new state and the part timings."""
  ro, t_roll = _timed(
    lambda: rollout.generate(
      state.params,
      cfg,
      batch,
      key,
      num_generations=G,
      max_new_tokens=T,
      stop_token_ids=(),
    )
  )
  start = time.perf_counter()
  ids = np.asarray(ro.completion_ids)
  r_PG1 = (ids % 2 == 0).mean(1).reshape(-1, G, 1)
  adv = np.asarray(advantages.compute(jnp.asarray(r_PG1), rl)).reshape(-1)
  t_reward = time.perf_counter() - start
  # The trainer's layout: each prompt computed once for its G rows.
  rows = {
    "prompt": {
      "input_ids": np.asarray(ro.prompt_ids)[::G],
      "attention_mask": np.asarray(ro.prompt_mask)[::G],
    },
    "completion_ids": ids,
    "completion_mask": np.asarray(ro.completion_mask),
  }
  ref_logp, t_ref = _timed(lambda: grpo.policy_logprobs(ref, rows, cfg=cfg))
  inputs = {
    "adv": adv.astype(np.float32),
    "mask": np.asarray(ro.completion_mask, np.float32),
    "ref_logp": ref_logp,
    "kl_weight": np.float32(rl.beta),
    "denominator": np.float32(len(adv)),
  }

  def update():
    g, _, _ = grpo.grads(
      state.params, rows, inputs, cfg=cfg, rl_static=grpo.static_rl(rl)
    )
    return apply(state, g)

  (state, _), t_update = _timed(update)
  return state, dict(
    rollout=t_roll, rewards=t_reward, ref_logprobs=t_ref, update=t_update
  )


def main(argv) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workload", default="tiny", choices=("tiny", "peers"))
  parser.add_argument("--steps", type=int, default=8)
  args = parser.parse_args(argv[1:])
  P, G, T, prompt_len = 16, 8, 64, 32
  if args.workload == "peers":
    cfg = config_lib.ModelConfig(
      family="qwen2", eos_token_ids=(), pad_token_id=0, **_common.PEERS_QWEN2
    )
  else:
    cfg = config_lib.tiny_text(vocab_size=1024).replace(eos_token_ids=())
  params = params_lib.init(specs(cfg), jax.random.key(0))
  ref = jax.tree.map(jnp.copy, params)
  rl = _rl()
  tx = optim.make(_optim(), 1000)
  state = optim.init_state(params, tx)
  apply = jax.jit(lambda s, g: optim.update(s, g, tx=tx), donate_argnums=0)
  rng = np.random.RandomState(0)
  batch = {
    "input_ids": rng.randint(10, 1000, (P, prompt_len)),
    "attention_mask": np.ones((P, prompt_len), np.int32),
  }
  times = []
  for i in range(args.steps):
    start = time.perf_counter()
    state, parts = step(
      params, ref, state, apply, cfg, batch, jax.random.key(i), rl, G, T
    )
    parts["total"] = time.perf_counter() - start
    times.append(parts)
  window = times[2:7] if len(times) >= 7 else times[1:]
  med = {k: float(np.median([t[k] for t in window])) for k in times[0]}
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"machine: {_common.describe()}")
  print(f"workload: {args.workload}; P={P} G={G} new tokens={T}; fp32")
  for k, v in med.items():
    print(f"  {k:>13}: {v:6.3f} s")
  print(f"  peak host RSS: {peak:.2f} GiB")
  if args.workload == "peers":
    print(
      f"  vs TRL 1.16 (4.54 s, PEERS.md): {4.54 / med['total']:.2f}x; "
      f"vs Tunix 0.1.7 (5.43 s): {5.43 / med['total']:.2f}x; "
      "goal <= 3.3 s, generation <= 0.8 s"
    )
  return 0
