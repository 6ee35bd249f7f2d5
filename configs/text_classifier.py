r"""Reasoning-infused text emotion classifier on dair-ai/emotion (text only).

  python launch/train.py --config=configs/text_classifier.py \
      --config.data.manual_dir=/data/dair-ai-emotion           # tiny model
  python launch/train.py --config=configs/text_classifier.py:smoke \
      --config.data.manual_dir=/data/dair-ai-emotion           # seconds
  python launch/train.py --config=configs/text_classifier.py:qwen2_5_1_5b \
      --config.model.hf_dir=/ckpt/Qwen2.5-1.5B-Instruct \
      --config.data.manual_dir=/data/dair-ai-emotion

METHODS.md section 11 (arXiv 2507.00214): a text model answers Q -> R + A,
reasoning in `<think>` before one of dair-ai/emotion's six labels in
`<answer>` (prompt kind `text_classifier`). Data: the tfds builder
`emojax/data/tfds/dair_emotion.py`; put the dataset's split files
(`train`, `validation`, `test` as .csv, .jsonl or .parquet with `text` and
`label`, e.g. the Hub's `split/*.parquet`; parquet needs pyarrow) in one
folder and pass it as `data.manual_dir`. There is no embedded copy of
dair-ai/emotion (the project ships no text corpus), so every variant
fails at start with a ConfigError until `data.manual_dir` is set.

The default is the CPU-sized run: the tiny text model (`tiny_text`, random
init, the project's tokenizer), GRPO on the train split with accuracy +
format rewards, evaluated on the test split. `:qwen2_5_1_5b` is the real
size: point `model.hf_dir` at Qwen2.5-1.5B-Instruct.

How this differs from the paper, which is SFT only: it distils reasoning R
offline from a generator (Llama-R-Gen, fine-tuned on syvai/reasoning-gen)
and fine-tunes Llama-3.2-1B-Instruct on Q -> R + A (+8.7 pp accuracy over
Q -> A; hyper-parameters UNVERIFIED). Here the reasoning is learnt R1-style
by GRPO from the labels instead, because (1) the dair_emotion builder reads
no reasoning column, so there is no SFT target (adding an optional
`description` column there, and `--config.data.splits.sft=train
--config.stages="('sft','grpo')"`, would give the paper's SFT stage), and
(2) emojax converts only Qwen2 / Qwen2.5-VL checkpoints, not Llama
(`emojax/hf/registry.py`), hence Qwen2.5-1.5B-Instruct as the stand-in.
"""

import ml_collections

from configs import facial_r1
from emojax.data import facs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Variants: '' (tiny model), 'smoke', 'qwen2_5_1_5b'."""
  c = facial_r1.get_config()
  c.stages = ("grpo",)  # Reasoning from labels (docstring: why not SFT).
  c.data.dataset = "dair_emotion"
  c.data.manual_dir = ""  # Set: --config.data.manual_dir=/data/dair-...
  c.data.prompt = "text_classifier"
  c.data.emotions = facs.LABEL_SETS["dair_emotion"]
  c.data.max_len = 512  # Prompt tokens: a 300-character tweet is ~340.
  c.model.preset = "tiny_text"
  c.model.base = ""  # No text base model: random init.
  c.model.freeze_vision = False  # No vision tower.
  c.rl = facial_r1.grpo("facial_r1")
  c.rl.reward_names = ["emotion", "format"]  # No AUs in text.
  c.rl.reward_weights = [1.0, 1.0]
  c.rl.token_masks = None
  c.rl.au_rarity_weights = False
  c.rl.steps = 200
  c.rl.optim.lr, c.rl.optim.warmup_steps = 1e-3, 10  # From scratch.
  c.eval.num_examples = 500

  variant = arg or ""
  if variant == "smoke":
    facial_r1.smoke(c)
  elif variant == "qwen2_5_1_5b":
    _qwen2_5_1_5b(c)
  elif variant:
    raise ValueError(
      f"configs/text_classifier.py: unknown variant {variant!r}; use '', "
      "'smoke' or 'qwen2_5_1_5b'."
    )
  return c


def _qwen2_5_1_5b(c) -> None:
  """Qwen2.5-1.5B-Instruct from `model.hf_dir`; one GPU or a small slice."""
  c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
  c.data.max_len = 1024
  c.model.preset = "qwen2_5_1_5b"
  c.model.hf_dir = ""  # Set: --config.model.hf_dir=/ckpt/Qwen2.5-1.5B-...
  c.model.dtype = "bfloat16"
  c.model.attention = "cudnn"  # On TPU: 'pallas'.
  c.rl.steps = 500  # 16k train rows at 32 prompts per step: UNVERIFIED.
  c.rl.prompts_per_step, c.rl.group_size = 32, 8  # UNVERIFIED.
  c.rl.max_completion_length = 512  # UNVERIFIED.
  c.rl.micro_batch_size = 32
  c.rl.optim.lr, c.rl.optim.warmup_steps = 1e-6, 0  # TRL default.
  c.eval.num_examples, c.eval.batch_size = 2000, 64  # All of test.
  c.eval.max_new_tokens = 512
  c.checkpoint_every = 100
  c.export_hf = True
