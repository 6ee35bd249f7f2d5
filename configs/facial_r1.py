r"""Facial-R1: SFT -> GRPO (R_acc + R_format + R_AU) -> synthesis -> repeat.

  python launch/train.py --config=configs/facial_r1.py            # embedded
  python launch/train.py --config=configs/facial_r1.py:smoke      # seconds
  python launch/train.py --config=configs/facial_r1.py:qwen2_5_vl_7b \
      --config.model.hf_dir=/ckpt/Qwen2.5-VL-7B-Instruct \
      --config.data.manual_dir=/data/FEA-20K

The default is the embedded CPU run: synthetic FACS faces (`facs_synth`),
the tiny Qwen2.5-VL-shaped model and the project's tokenizer, starting from
the project's tiny base model (built once and cached, like a downloaded
checkpoint). `:qwen2_5_vl_7b` is the real recipe: point `model.hf_dir` at
Qwen2.5-VL-7B-Instruct and `data.manual_dir` at FEA-20K / Facial-R1 JSONL
(`{train,test,sft}.jsonl` with `image`, `labels`, `AUs`, `description`);
run it on a TPU pod or 8 GPUs (mesh `fsdp=-1`).
"""

import ml_collections

from configs import common


def _data() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.dataset = "facs_synth"  # emojax.train.data.BUILDERS name.
  d.manual_dir = ""  # Folder of the user's files (facial_r1; optional else).
  d.tfds_dir = "~/.cache/emojax/tfds"  # Where tfds prepares datasets.
  d.num_train = 3000  # facs_synth: label-only rows (GRPO, synthesis).
  d.num_sft = 300  # facs_synth: reasoning-annotated rows (SFT).
  d.num_test = 400  # facs_synth: held-out rows (every stage's eval; SE 0.02).
  d.seed = 0  # facs_synth: rendering seed.
  d.image_size = 64  # facs_synth: face side in pixels.
  d.min_pixels = 32 * 32  # Image budget (Qwen2.5-VL smart resize).
  d.max_pixels = 64 * 64
  d.max_len = 320  # Tokens per example incl. image tokens (never cut).
  # Speech data sets: keep each row's clip for a model that listens, and
  # its frame budget (100 frames a second; longer clips are cut).
  d.audio = False
  d.audio_seconds = 10.0
  # Video data sets (facs_clips, facial_r1_video): frames sampled per clip
  # (0 = the model does not watch) and the per-frame pixel budget
  # (Qwen2.5-VL's video processor's: 128..768 merged tokens' worth).
  d.video_frames = 0
  d.video_min_pixels = 128 * 28 * 28
  d.video_max_pixels = 768 * 28 * 28
  d.clip_frames = 8  # facs_clips: frames per synthetic clip.
  d.clip_fps = 4.0  # facs_clips: their rate (a 2-second clip).
  d.emotions = (
    "anger",
    "happiness",
    "sadness",
    "neutral",
    "disgust",
    "surprise",
    "fear",
  )  # Facial-R1's default label list.
  d.au_definitions = False  # Long AU glossary in the prompt (real runs).
  d.prompt = "facial_r1"  # Task prompt: emojax.data.examples.PROMPTS kind.
  d.system = ""  # A system turn before the prompt ("": none).
  d.splits = ml_collections.ConfigDict(
    {"train": "train", "sft": "sft", "test": "test"}
  )  # The dataset's split (tfds syntax, e.g. 'x[:90%]') read as each role.
  d.on_bad_example = "fail"  # fail | skip (count and report).
  return d


def _model() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.preset = "tiny_vlm"  # emojax.model.config.PRESETS name (random init).
  m.hf_dir = ""  # A transformers folder to start from instead.
  m.base = "facs_synth_tiny_v2"  # Cached base model to start from ("": none).
  m.tokenizer_dir = ""  # HF tokenizer folder ("": the project's default).
  m.dtype = "float32"  # Compute dtype (bfloat16 on accelerators).
  m.param_dtype = "float32"  # fp32 master weights.
  m.attention = "xla"  # xla | cudnn | pallas.
  # Completion logprobs in GRPO and SFT, never holding [B, T, V] logits:
  # chunked (XLA, any backend) | fused (the Pallas kernel on GPU and TPU).
  m.logprobs = "chunked"
  m.remat = False  # Recompute layer activations in the backward pass.
  # Facial-R1 trains the language model only (vision, audio towers frozen).
  m.freeze_vision = True
  return m


def _optim(lr: float, warmup: int) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict()
  o.lr = lr  # Peak learning rate.
  o.warmup_steps = warmup  # Linear warmup.
  o.schedule = "cosine"  # Then cosine | linear (HF Trainer) | constant.
  o.final_lr_ratio = 0.1  # cosine and linear decay to lr * this.
  o.b1 = 0.9  # Adam beta1.
  o.b2 = 0.999  # Adam beta2.
  o.eps = 1e-8  # Adam epsilon.
  o.weight_decay = 0.0  # AdamW decoupled decay.
  o.grad_clip = 1.0  # Global-norm clipping.
  return o


def hf_trainer_schedule(o: ml_collections.ConfigDict) -> None:
  """The HF Trainer's default (TRL's trainers keep it): linear decay to 0.
  UNVERIFIED that the recipes' scripts do not override it."""
  o.schedule, o.final_lr_ratio = "linear", 0.0


def _sft() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.steps = 140  # Optimiser steps (100 left sampling too noisy for GRPO).
  s.batch_size = 16  # Rows per step.
  s.micro_batch_size = 0  # Rows per gradient pass (0: the whole batch).
  s.optim = _optim(lr=1e-3, warmup=10)
  s.target = "description"  # The reasoning text is the SFT target.
  s.include_synthesized = True  # Later SFT stages add synthesized rows.
  return s


def _ground() -> ml_collections.ConfigDict:
  """Base model, part 1: the tower learns which AUs move each image token."""
  g = ml_collections.ConfigDict()
  g.steps = 1500
  g.batch_size = 32
  g.optim = _optim(lr=2e-3, warmup=50)
  g.num_faces = 3000  # Faces rendered for it (its own seed), with targets.
  g.num_held_out = 288  # Of those, scored at the end (token AU macro F1).
  g.threshold = 1.0  # Mean |pixel change| (0-255) that marks a token moved.
  return g


def _pretrain() -> ml_collections.ConfigDict:
  """Base model, part 2: the tiny VLM learns to describe faces in words."""
  p = ml_collections.ConfigDict()
  p.steps = 300
  p.batch_size = 32
  p.micro_batch_size = 0
  p.optim = _optim(lr=2e-3, warmup=50)
  p.freeze_tower = True  # `ground` taught the tower; train merger + LM.
  p.num_train = 6000  # Caption rows rendered for it (its own split).
  p.num_eval = 120  # Held-out faces captioned at the end (region accuracy).
  return p


def grpo(preset: str = "facial_r1") -> ml_collections.ConfigDict:
  """`common.grpo_preset(preset)` sized for the embedded CPU run."""
  g = common.grpo_preset(preset)
  g.steps = 24  # GRPO steps (one rollout batch each).
  g.prompts_per_step = 8  # P.
  g.group_size = 8  # G.
  g.max_completion_length = 160  # New tokens (longest sft reasoning: 147).
  g.micro_batch_size = 0  # Rows per gradient pass (0: all P*G).
  g.optim = _optim(lr=5e-5, warmup=0)
  g.ref_sync_every = 0  # Copy policy -> reference every N steps (0: never).
  g.dynamic_sampling_retries = 2  # Refill rounds for zero-variance groups.
  g.log_completions_every = 10  # Steps between completions tables.
  return g


def _synthesize() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.num_examples = 48  # Train rows to synthesize reasoning for.
  s.batch_size = 32  # Prompts per decode batch.
  s.max_retry = 5  # Feedback retries per row (Facial-R1: 5).
  s.max_new_tokens = 160  # Greedy decode budget per attempt.
  s.max_prompt_len = 1280  # Prompt + truth + 5 retries' responses/issues.
  return s


def _eval() -> ml_collections.ConfigDict:
  e = ml_collections.ConfigDict()
  e.num_examples = 400  # Test rows decoded at the end of each stage.
  e.batch_size = 50  # Prompts per decode batch.
  e.max_new_tokens = 160  # Greedy decode budget (reasoning: <= 147).
  return e


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Variants: '' (embedded default), 'smoke', 'qwen2_5_vl_7b'."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Everything random derives from it.
  c.stages = ("sft", "grpo", "synthesize", "sft", "grpo")  # Stage list.
  c.mesh = ml_collections.ConfigDict(
    {"data": -1, "fsdp": 1, "tensor": 1}
  )  # Device mesh; -1 takes the remaining devices.
  c.sharding_rules = ml_collections.FieldReference(None, list)  # None: default.
  c.data = _data()
  c.model = _model()
  c.ground = _ground()
  c.pretrain = _pretrain()
  c.sft = _sft()
  c.rl = grpo()  # beta 0.04: KL to the frozen reference (Facial-R1 final).
  # Facial-R1 samples at 1.0; the tiny model's samples there are half
  # malformed (format reward 0.5 vs 0.95 at 0.7), so GRPO learned format,
  # not faces. `:qwen2_5_vl_7b` keeps 1.0.
  c.rl.temperature = 0.7
  c.synthesize = _synthesize()
  c.eval = _eval()
  c.checkpoint_every = 50  # Steps between checkpoints within a stage.
  c.keep_checkpoints = 2  # Checkpoints kept (the newest).
  c.async_checkpoints = True  # Save in the background.
  c.log_every = 10  # Steps between scalar logs.
  c.export_hf = False  # Write an HF folder of the final params.

  variant = arg or ""
  if variant == "smoke":
    smoke(c)
  elif variant == "qwen2_5_vl_7b":
    _qwen2_5_vl_7b(c)
  elif variant:
    raise ValueError(
      f"configs/facial_r1.py: unknown variant {variant!r}; use '', 'smoke' "
      "or 'qwen2_5_vl_7b'."
    )
  return c


def smoke(c) -> None:
  """Every stage, a few steps, on a handful of faces: seconds, for tests."""
  c.data.num_train, c.data.num_sft, c.data.num_test = 24, 8, 8
  c.model.base = ""  # Random init: the base model takes minutes to build.
  c.sft.steps, c.sft.batch_size = 3, 4
  c.rl.steps, c.rl.prompts_per_step, c.rl.group_size = 2, 2, 2
  c.rl.max_completion_length = 8
  c.synthesize.num_examples, c.synthesize.batch_size = 4, 4
  c.synthesize.max_retry, c.synthesize.max_new_tokens = 1, 8
  c.eval.num_examples, c.eval.batch_size, c.eval.max_new_tokens = 4, 4, 8
  c.checkpoint_every, c.log_every = 2, 1
  c.rl.log_completions_every = 1


def qwen2_5_vl_7b(c) -> None:
  """Qwen2.5-VL-7B-Instruct from `model.hf_dir`, FSDP over 8 GPUs or a TPU
  pod, Qwen's image budget; data and weights paths left to set."""
  c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})
  c.data.manual_dir = ""  # Set: --config.data.manual_dir=/data/...
  c.data.min_pixels, c.data.max_pixels = 3136, 1003520  # Qwen defaults.
  c.data.max_len = 4096
  c.model.preset = "qwen2_5_vl_7b"
  c.model.hf_dir = ""  # Set: --config.model.hf_dir=/ckpt/Qwen2.5-VL-7B-...
  c.model.base = ""
  c.model.dtype = "bfloat16"
  c.model.attention = "cudnn"  # On TPU: 'pallas'.
  c.model.remat = True


def _qwen2_5_vl_7b(c) -> None:
  """Facial-R1's real run: Qwen2.5-VL-7B-Instruct on FEA-20K, 8 GPUs/TPU."""
  qwen2_5_vl_7b(c)
  c.data.dataset = "facial_r1"  # --config.data.manual_dir=/data/FEA-20K.
  c.data.au_definitions = True  # Facial-R1's full prompt.
  c.sft.steps = 1100  # ~2 epochs of 17.7k rows at 32 rows per step.
  c.sft.batch_size, c.sft.micro_batch_size = 32, 2
  c.sft.optim.lr, c.sft.optim.warmup_steps = 5e-6, 30  # sft_emotion.sh.
  hf_trainer_schedule(c.sft.optim)
  c.rl = common.grpo_preset("facial_r1")
  # 1 epoch (METHODS: 1-2) of 17,737 prompts at 4 a step (32 rows / G 8).
  c.rl.steps = 4434
  c.rl.micro_batch_size = 8
  c.rl.optim = _optim(lr=1e-6, warmup=0)
  hf_trainer_schedule(c.rl.optim)
  c.rl.ref_sync_every = 0
  c.rl.dynamic_sampling_retries = 2
  c.rl.log_completions_every = 20
  c.synthesize.num_examples = 20000
  c.synthesize.batch_size = 64
  c.synthesize.max_new_tokens = 1024  # infer_emotion.sh.
  c.eval.num_examples, c.eval.batch_size = 1688, 64  # FEA-20K test.
  c.eval.max_new_tokens = 1024
  c.checkpoint_every = 100
  c.keep_checkpoints = 3
  c.export_hf = True
