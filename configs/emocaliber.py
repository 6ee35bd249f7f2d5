r"""EmoCaliber: structured reasoning with a verbalised, calibrated confidence.

  python launch/train.py --config=configs/emocaliber.py              # embedded
  python launch/train.py --config=configs/emocaliber.py:smoke        # seconds
  python launch/train.py --config=configs/emocaliber.py:qwen2_5_vl_7b \
      --config.model.hf_dir=/ckpt/Qwen2.5-VL-7B-Instruct \
      --config.data.manual_dir=/data/vec-cot

METHODS.md section 6. The completion is `<think>` holding five tagged parts
(`<element>`, `<human>`, `<context>`, `<interaction>`, `<analysis>`), then
`<answer>`, then `<confidence>c</confidence>` (prompt kind `emocaliber`).
The `confidence` reward is EmoCaliber's: with every tag present once and
0 < c < 1, 1 + i + 2 (i ln c + (1 - i) ln(1 - c)) where i says the answer is
right; else -5. GRPO is its verl setting (preset `emocaliber`: no std in
the advantage, token-mean loss, k3 KL loss at 0.01). Each evaluation
reports `confidence/ece` (10 bins), Brier and AUROC beside accuracy.

The default is the embedded CPU run, Facial-R1's (`configs/facial_r1.py`)
data and model with this recipe's prompt and reward: synthetic FACS faces,
the tiny VLM from the project's cached base model, SFT then GRPO. It runs
the whole path (prompt, reward, ECE) but cannot show calibration gains:
facs_synth's SFT reasoning is Facial-R1's, without the five sub-tags or a
confidence, so nearly every early completion scores -5 and GRPO groups
have little reward variance. EmoCaliber's own SFT data fills that gap.

`:qwen2_5_vl_7b` is the real recipe: point `model.hf_dir` at
Qwen2.5-VL-7B-Instruct and `data.manual_dir` at VEC-CoT converted to
Facial-R1's JSONL layout (`emojax/data/tfds/facial_r1.py`: `image`,
`labels`, `description`): `sft.jsonl` from `stage1_86k` and
`stage2_43k_w_conf` (targets carry the tags and the confidence),
`train.jsonl` from `stage3_14k`, `test.jsonl` from VECBench. Differences
from EmoCaliber: its two SFT runs (lr 1e-5, then 4e-6 on the confidence
data) are one SFT here at 1e-5 over both (emojax has one `sft` config per
run; run stage 2 separately to match); verl takes two optimiser steps of
32 prompts per 64-prompt rollout, emojax one step per 32-prompt rollout
(same prompts per update, fully on-policy). VEC's Mikels labels
(amusement, awe, contentment, excitement) are unknown to
`emojax.data.facs`, so evaluation reads those answers as unparseable (and
ECE with them) until facs gains that label set; the reward compares words
itself and is unaffected.
"""

import ml_collections

from configs import facial_r1


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Variants: '' (embedded default), 'smoke', 'qwen2_5_vl_7b'."""
  c = facial_r1.get_config()
  c.stages = ("sft", "grpo")
  c.data.prompt = "emocaliber"
  c.data.max_len = 384  # Prompt, image and the longest sft row: 364.
  c.rl = facial_r1.grpo("emocaliber")  # The confidence reward alone.

  variant = arg or ""
  if variant == "smoke":
    facial_r1.smoke(c)
  elif variant == "qwen2_5_vl_7b":
    _qwen2_5_vl_7b(c)
  elif variant:
    raise ValueError(
      f"configs/emocaliber.py: unknown variant {variant!r}; use '', 'smoke' "
      "or 'qwen2_5_vl_7b'."
    )
  return c


def _qwen2_5_vl_7b(c) -> None:
  """EmoCaliber's run: Qwen2.5-VL-7B-Instruct on VEC-CoT, 8 GPUs/TPU."""
  facial_r1.qwen2_5_vl_7b(c)
  c.data.dataset = "facial_r1"  # VEC-CoT as Facial-R1 JSONL (docstring).
  c.data.emotions = (
    "amusement",
    "anger",
    "awe",
    "contentment",
    "disgust",
    "excitement",
    "fear",
    "sadness",
  )  # Mikels' eight (EmoSet, FI); VECBench sets vary per benchmark.
  c.sft.steps = 1010  # 1 epoch of 86k + 43k rows at 128 per step.
  c.sft.batch_size, c.sft.micro_batch_size = 128, 8  # 8 x 8 GPUs x accum 2.
  c.sft.optim.lr, c.sft.optim.warmup_steps = 1e-5, 50  # Warmup ratio 0.05.
  c.sft.optim.final_lr_ratio = 0.0  # ms-swift's cosine to 0: UNVERIFIED.
  c.rl.steps = 437  # 1 epoch of stage3_14k at 32 prompts per step.
  c.rl.prompts_per_step, c.rl.group_size = 32, 8  # ppo_mini 32, n 8.
  c.rl.max_completion_length = 2048  # (Its max_prompt_length: 4096.)
  c.rl.micro_batch_size = 32  # 4 per GPU x 8.
  c.rl.optim.lr, c.rl.optim.warmup_steps = 1e-6, 0
  # verl's actor optimiser defaults (UNVERIFIED that stage 3 keeps them).
  c.rl.optim.schedule, c.rl.optim.weight_decay = "constant", 0.01
  c.rl.log_completions_every = 20
  c.eval.num_examples, c.eval.batch_size = 100000, 64  # All of test.jsonl.
  c.eval.max_new_tokens = 2048
  c.checkpoint_every = 100
  c.keep_checkpoints = 3
  c.export_hf = True
