r"""EmotionThinker: SFT on EmotionCoT reasoning, then GRPO-PTR, hearing the
clips (`:listen`) or reading their transcript and prosody labels.

  python launch/train.py --config=configs/emotion_thinker.py      # tiny model
  python launch/train.py --config=configs/emotion_thinker.py:smoke  # seconds
  python launch/train.py --config=configs/emotion_thinker.py:listen  # hears
  python launch/train.py --config=configs/emotion_thinker.py:qwen2_5_7b \
      --config.model.hf_dir=/ckpt/Qwen2.5-7B-Instruct \
      --config.data.manual_dir=/data/EmotionCoT
  python launch/train.py --config=configs/emotion_thinker.py:qwen2_5_7b,listen \
      --config.model.hf_dir=/ckpt/Qwen2.5-Omni-7B \
      --config.data.manual_dir=/data/EmotionCoT   # with its clips

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

Two ways in. `:listen` is EmotionThinker's: the model hears each clip
(Qwen2.5-Omni's thinker: `emojax.model.audio` for the tower,
`emojax.data.audio_features` for its Whisper features) and the prompt is
the model card's question after the audio, with no transcript and no cue
labels; `config.data.audio` keeps every row's clip as WAV (`emotion_cot` reads
`audio_path` relative to the JSONL, `prosody_synth` speaks its records
with `emojax.data.voice`). The tiny model is `tiny_audio` (the tiny text
decoder plus a 2-layer audio tower, random init); `:qwen2_5_7b,listen`
starts from Qwen2.5-Omni-7B (the released folder, `emojax.hf`). Without
`:listen` speech arrives as text, a cascade stand-in: each clip is its
transcript plus EmotionCoT's prosody labels in the prompt
(`emojax.data.prosody`), which trains the recipe's reasoning, rewards and
schedule but not listening (a model trained so needs those labels at test
time too), on Qwen2.5-7B-Instruct in `:qwen2_5_7b` (EmotionCoT's JSONL,
no audio files needed). Either way the judge checks the reasoning against
the row's labels, and its transcript-quote part is out of reach of a model
that only hears (the tiny one cannot transcribe). Data: the default is
`prosody_synth` (generated EmotionCoT-layout records: neutral transcripts,
so only the cues tell the classes apart). Labels are facs nouns:
`contempt or disgust` is `disgust` (facs labels are one word).

The embedded runs (2-core CPU, 400 held-out rows, chance 0.11), emotion
accuracy / macro F1: text cues SFT 0.815, GRPO-PTR 0.802 (11m45s);
`:listen` SFT 0.810 / 0.794, GRPO-PTR 0.782 / 0.765 (11m10s): the tiny
audio tower, trained from scratch by the SFT rows alone, hears the cues
about as well as the text model reads them (its weakest class is
confusion, recall 0.30).

UNVERIFIED (the paper's RL code is not public): the judge (a rule stand-in
for its reward model), the ramp's start and length, G, beta and the
learning rates; the 7B variant's are TRL defaults. Qwen2.5-7B-Instruct
stands in for Qwen2.5-Omni-7B's thinker in the text-only `:qwen2_5_7b`.
"""

import ml_collections

from configs import common, facial_r1
from emojax.data import facs, prompts


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Variants: '' (tiny model), 'smoke', 'qwen2_5_7b'; ',listen' adds
  the clips (an audio tower hears them)."""
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

  variants = [v for v in (arg or "").split(",") if v]
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown or ({"smoke", "qwen2_5_7b"} <= set(variants)):
    raise ValueError(
      f"configs/emotion_thinker.py: variant {arg!r}; use '', 'smoke' or "
      "'qwen2_5_7b', each optionally with ',listen'."
    )
  if "smoke" in variants:
    facial_r1.smoke(c)
    c.rl.trust.start, c.rl.trust.horizon = 0.0, 1.0
  if "qwen2_5_7b" in variants:
    _qwen2_5_7b(c)
  if "listen" in variants:
    _listen(c, real="qwen2_5_7b" in variants)
  return c


VARIANTS = ("smoke", "qwen2_5_7b", "listen")


def _listen(c, real: bool) -> None:
  """The model hears each clip (EmotionThinker's setting): the prompt is
  the model card's question after the audio, with no transcript and no cue
  labels; the judge still checks the reasoning against the row's labels."""
  c.data.audio = True
  c.data.audio_seconds = 30.0 if real else 8.0  # Synthetic clips: <= 5 s.
  c.data.prompt = "emotion_thinker_listen"
  if real:  # Qwen2.5-Omni-7B's thinker, EmotionThinker's base.
    c.data.max_len = 2048  # 30 s are 750 audio tokens, plus the reasoning.
    c.model.preset = "qwen2_5_omni_7b"
    c.model.hf_dir = ""  # Set: --config.model.hf_dir=/ckpt/Qwen2.5-Omni-7B
    # Both towers frozen, the LM trained: UNVERIFIED for EmotionThinker.
    c.model.freeze_vision = True
  else:
    c.model.preset = "tiny_audio"


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
