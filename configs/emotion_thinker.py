r"""EmotionThinker: SFT on EmotionCoT reasoning, then GRPO-PTR (speech as text).

  python launch/train.py --config=configs/emotion_thinker.py      # tiny model
  python launch/train.py --config=configs/emotion_thinker.py:smoke  # seconds
  python launch/train.py --config=configs/emotion_thinker.py:qwen2_5_7b \
      --config.model.hf_dir=/ckpt/Qwen2.5-7B-Instruct \
      --config.data.manual_dir=/data/EmotionCoT

METHODS.md section 5 (arXiv 2601.15668): a speech LLM reasons about the
prosody it hears in `<think>` and names one of nine classes in `<answer>`
(system turn: the R1 template, as its HF model card). Stages: SFT on
EmotionCoT's reasoning (EmotionThinker-Base), then GRPO-PTR with
R = format + outcome + w(step) * trust * R_reason (preset
`emotion_thinker`): `trust_reasoning` with the `prosody` judge
(`emojax.rewards.prosody`: the reasoning's pitch / energy / speed /
intonation / speaker claims against the clip's labels, and a quote of the
transcript) and the reasoning weight ramped up over training
(`rl.trust.schedule='progressive'`).

Speech arrives as text. The model side of listening is in emojax
(Qwen2.5-Omni's thinker: its Whisper-style audio tower in
`emojax.model.audio`, its log-mel features in `emojax.data.audio_features`,
its checkpoints in `emojax.hf`), but the recipe's data path does not feed
clips yet (no wav decoding in the builders, no features in the training
batches), so each clip is its transcript plus EmotionCoT's prosody labels
in the prompt (`emojax.data.prosody`): a cascade stand-in. It trains the
recipe's reasoning, rewards and schedule, not listening: a model trained
here needs those labels at test time too. Data: the default is
`prosody_synth` (generated EmotionCoT-layout records, no audio: neutral
transcripts, so only the cues tell the classes apart); `:qwen2_5_7b`
reads EmotionCoT's JSONL (`emojax/data/tfds/emotion_cot.py`; the audio
files are not needed). Labels are facs nouns: `contempt or disgust` is
`disgust` (facs labels are one word).

UNVERIFIED (the paper's RL code is not public): the judge (a rule stand-in
for its reward model), the ramp's start and length, G, beta and the
learning rates; the 7B variant's are TRL defaults. Qwen2.5-7B-Instruct
stands in for Qwen2.5-Omni-7B's thinker (which `emojax.hf.load` reads,
but without clips in the batches its audio tower would sit idle).
"""

import ml_collections

from configs import common, facial_r1
from emojax.data import facs, prompts


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Variants: '' (tiny model), 'smoke', 'qwen2_5_7b'."""
  c = facial_r1.get_config()
  c.stages = ("sft", "grpo")  # EmotionThinker-Base, then GRPO-PTR.
  c.data.dataset = "prosody_synth"
  c.data.num_train, c.data.num_sft, c.data.num_test = 2000, 400, 400
  c.data.prompt = "emotion_thinker"
  c.data.system = prompts.R1_SYSTEM
  c.data.emotions = facs.LABEL_SETS["emotion_thinker"]
  c.data.max_len = 512  # System + cues + transcript: ~250 tiny tokens.
  c.model.preset = "tiny_text"
  c.model.base = ""  # No speech base model: random init.
  c.model.freeze_vision = False  # No vision tower.
  c.sft.steps = 600  # Loss 0.07 (200 steps left it at 0.9).
  c.rl = facial_r1.grpo("emotion_thinker")
  c.rl.max_completion_length = 160  # Synthetic reasoning: <= 132 tokens.
  c.rl.steps = 40
  c.rl.trust.start = 5.0  # Ramp the reasoning reward in over 5..25.
  c.rl.trust.horizon = 20.0
  c.eval.max_new_tokens = 160

  variant = arg or ""
  if variant == "smoke":
    facial_r1.smoke(c)
    c.rl.trust.start, c.rl.trust.horizon = 0.0, 1.0
  elif variant == "qwen2_5_7b":
    _qwen2_5_7b(c)
  elif variant:
    raise ValueError(
      f"configs/emotion_thinker.py: unknown variant {variant!r}; use '', "
      "'smoke' or 'qwen2_5_7b'."
    )
  return c


def _qwen2_5_7b(c) -> None:
  """Qwen2.5-7B-Instruct on EmotionCoT, FSDP over 8 GPUs or a TPU slice."""
  c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
  c.data.dataset = "emotion_cot"
  c.data.manual_dir = ""  # Set: --config.data.manual_dir=/data/EmotionCoT
  c.data.splits.sft = "train"  # EmotionCoT's rows all carry reasoning.
  c.data.max_len = 1024
  c.model.preset = "qwen2_5_7b"
  c.model.hf_dir = ""  # Set: --config.model.hf_dir=/ckpt/Qwen2.5-7B-...
  c.model.dtype = "bfloat16"
  c.model.attention = "cudnn"  # On TPU: 'pallas'.
  c.model.remat = True
  c.sft.steps = 1100  # ~1 epoch of 35k rows at 32 per step: UNVERIFIED.
  c.sft.batch_size, c.sft.micro_batch_size = 32, 4
  c.sft.optim.lr, c.sft.optim.warmup_steps = 1e-5, 30  # UNVERIFIED.
  facial_r1.hf_trainer_schedule(c.sft.optim)
  c.rl.prompts_per_step = common.grpo_preset("emotion_thinker").prompts_per_step
  c.rl.steps = 1000  # UNVERIFIED.
  c.rl.trust.start, c.rl.trust.horizon = 100.0, 400.0  # UNVERIFIED.
  c.rl.micro_batch_size = 8
  c.rl.max_completion_length = 1024  # UNVERIFIED.
  c.rl.optim.lr, c.rl.optim.warmup_steps = 1e-6, 0  # TRL default.
  facial_r1.hf_trainer_schedule(c.rl.optim)
  c.eval.num_examples, c.eval.batch_size = 2000, 64
  c.eval.max_new_tokens = 1024
  c.checkpoint_every = 100
  c.export_hf = True
