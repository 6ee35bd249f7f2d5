r"""AffectGPT-R1: open-vocabulary emotion words, rewarded by the emotion wheel.

  python launch/train.py --config=configs/affectgpt_r1.py            # embedded
  python launch/train.py --config=configs/affectgpt_r1.py:smoke      # seconds
  python launch/train.py --config=configs/affectgpt_r1.py:mer \
      --config.model.hf_dir=/ckpt/Qwen2.5-7B-Instruct \
      --config.data.manual_dir=/data/mer2025-dataset

METHODS.md section 4: a cold-start SFT on descriptive reasoning, then GRPO
on open-vocabulary labels. The answer is any number of comma-separated
emotion words (prompt kind `open_vocabulary`); the main reward `ew_f1` is
their emotion-wheel F1 against the gold words (mean of the 5 wheels at
level1 and level2, `emojax/data/wheel.py`) times the length penalty
P3 = log m / log n when the answer lists n > m gold words, against label
spamming; a format reward adds 0.2 (the third-party re-implementation's
weights; the paper's formulas are UNVERIFIED). Each evaluation reports the
`ew/...` metrics beside accuracy.

The default is the embedded CPU run, Facial-R1's (`configs/facial_r1.py`)
data and model with this recipe's prompt and rewards: synthetic FACS faces,
the tiny VLM starting from the project's cached base model, SFT on the
`sft` rows' reasoning, then GRPO on the label-only rows. facs_synth gives
one basic label per face, so "open vocabulary" here means the model may
answer any words: the wheel maps them ('joy' or 'glad' count as
'happiness'), and extra words cost P3.

`:mer` is the text part of the real recipe on MER2025's OV-MERD
(`emojax/data/tfds/mer.py`): point `data.manual_dir` at the folder with
`track2_train_ovmerd.csv` (labels), `track3_train_ovmerd.csv` (reasons,
the SFT targets; rows without one are skipped in SFT) and
`subtitle_chieng.csv` (the subtitle, quoted in the prompt), and
`model.hf_dir` at a Qwen2.5-7B-Instruct folder (AffectGPT's language
model; UNVERIFIED which size AffectGPT-R1 used). OV-MERD has one split:
90% trains and 10% is held out (tfds slices its prepared order, which tfds
shuffles by key: a fixed, disjoint 10%, not the file's last lines).
Missing for the real recipe: AffectGPT's video and audio encoders (emojax
reads the subtitle only), and three of its five rewards (the "dual" EW-F1
of labels an LLM extracts from `<think>`, weight 0.6, and think/answer
alignment, 0.4, need a judge model). G, batch, lengths and step counts are
UNVERIFIED.
"""

import ml_collections

from configs import facial_r1


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Variants: '' (embedded default), 'smoke', 'mer'."""
  c = facial_r1.get_config()
  c.stages = ("sft", "grpo")  # Cold start, then GRPO on open labels.
  c.data.prompt = "open_vocabulary"
  c.data.max_len = 320  # Prompt, image and the longest sft row: 287.
  c.rl = facial_r1.grpo("affectgpt_r1")  # ew_f1 (x P3) + 0.2 format.

  variant = arg or ""
  if variant == "smoke":
    facial_r1.smoke(c)
  elif variant == "mer":
    _mer(c)
  elif variant:
    raise ValueError(
      f"configs/affectgpt_r1.py: unknown variant {variant!r}; use '', "
      "'smoke' or 'mer'."
    )
  return c


def _mer(c) -> None:
  """OV-MERD subtitles -> open-vocabulary words, Qwen2.5-7B, 8 GPUs/TPU."""
  c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
  c.data.dataset = "mer"
  c.data.manual_dir = ""  # Set: --config.data.manual_dir=/data/mer2025-...
  c.data.splits = ml_collections.ConfigDict(
    {"train": "ovmerd[:90%]", "sft": "ovmerd[:90%]", "test": "ovmerd[90%:]"}
  )
  c.data.on_bad_example = "skip"  # SFT: rows without a reason.
  c.data.max_len = 2048
  c.model.preset = "qwen2_5_7b"
  c.model.hf_dir = ""  # Set: --config.model.hf_dir=/ckpt/Qwen2.5-7B-...
  c.model.base = ""
  c.model.dtype = "bfloat16"
  c.model.attention = "cudnn"  # On TPU: 'pallas'.
  c.model.remat = True
  c.sft.steps = 300  # UNVERIFIED.
  c.sft.batch_size, c.sft.micro_batch_size = 32, 4
  c.sft.optim.lr, c.sft.optim.warmup_steps = 1e-5, 10  # UNVERIFIED.
  c.rl.steps = 500  # UNVERIFIED.
  c.rl.prompts_per_step, c.rl.group_size = 8, 8  # UNVERIFIED.
  c.rl.max_completion_length = 1024  # UNVERIFIED.
  c.rl.micro_batch_size = 8
  c.rl.optim.lr, c.rl.optim.warmup_steps = 1e-6, 0  # 3rd-party config.
  c.rl.log_completions_every = 20
  c.eval.num_examples, c.eval.batch_size = 100000, 64  # The whole 10%.
  c.eval.max_new_tokens = 1024
  c.checkpoint_every = 100
  c.keep_checkpoints = 3
  c.export_hf = True
