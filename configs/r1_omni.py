r"""R1-Omni and HumanOmniV2: R1-style GRPO for emotion, on stills or clips.

  python launch/train.py --config=configs/r1_omni.py                 # embedded
  python launch/train.py --config=configs/r1_omni.py:smoke           # seconds
  python launch/train.py --config=configs/r1_omni.py:human_omni_v2   # embedded
  python launch/train.py --config=configs/r1_omni.py:human_omni_v2,smoke
  python launch/train.py --config=configs/r1_omni.py:video           # clips
  python launch/train.py --config=configs/r1_omni.py:video,smoke
  python launch/train.py --config=configs/r1_omni.py:qwen2_5_vl_7b \
      --config.model.hf_dir=/ckpt/Qwen2.5-VL-7B-Instruct \
      --config.data.manual_dir=/data/frames
  (and `:human_omni_v2,qwen2_5_vl_7b` likewise)
  python launch/train.py --config=configs/r1_omni.py:video,qwen2_5_vl_7b \
      --config.model.hf_dir=/ckpt/Qwen2.5-VL-7B-Instruct \
      --config.data.manual_dir=/data/clips
  python launch/train.py \
      --config=configs/r1_omni.py:human_omni_v2,qwen2_5_omni_7b \
      --config.model.hf_dir=/ckpt/Qwen2.5-Omni-7B \
      --config.data.manual_dir=/data/clips          # clips with their sound

R1-Omni (METHODS.md section 2): a small cold-start SFT on `<think>` /
`<answer>` reasoning, then GRPO with R = accuracy + format, its verbatim
prompt (which says "throughout the video"), no ratio clipping, sequence-mean
loss, beta 0.04 (preset `r1_omni`). HumanOmniV2 (section 3, its stage 3):
the answer must follow a `<context>` summary and `<think>` (prompt kind
`human_omni_v2`, emojax's wording; reward `format_context` + accuracy),
no std in the advantage, token-mean loss, beta decaying to 0.25 beta by
mid-run, temperature 0.9 (preset `human_omni_v2`).

The default (and `:human_omni_v2`) is the embedded CPU run, Facial-R1's
(`configs/facial_r1.py`) data and model with this recipe's prompt and
rewards: synthetic FACS faces, the tiny VLM from the project's cached base
model, SFT on the `sft` rows' reasoning, then GRPO on label-only rows.
facs_synth's reasoning has no `<context>` block, so HumanOmniV2's format
reward starts near 0 and its accuracy reward carries the signal.

`:qwen2_5_vl_7b` runs the recipe on real images: Qwen2.5-VL-7B-Instruct
from `model.hf_dir`, and in `data.manual_dir` Facial-R1's JSONL layout
(`emojax/data/tfds/facial_r1.py`): `sft.jsonl` (the cold-start CoT rows:
R1-Omni used 580), `train.jsonl` (label-only; e.g. one frame per MAFW /
DFEW clip) and `test.jsonl`. Set `--config.data.emotions` to the data's
label set (e.g. facs.LABEL_SETS['dfew']).

`,video` (any variant) reads clips, as both recipes do: each row's frames,
`config.data.video_frames` (8) of them sampled evenly, become one video in
Qwen2.5-VL's video path (patches of `temporal_patch_size` frames, a
`<|video_pad|>` run, M-RoPE time positions at `tokens_per_second` per
second, `emojax/model/vlm.py`). Embedded, the data are `facs_clips`: the
same synthetic faces as 2-second clips at 4 fps, each rising from neutral
to its expression by 2/3 of the clip and holding it (as DFEW/MAFW clips
do), 8 frames = 4 time steps of 16 tokens; the base model saw only stills.
With `:qwen2_5_vl_7b` the data are clips in Facial-R1's JSONL layout
(`facial_r1_video`: `"video": "clips/00001.mp4"`, a video file, as MAFW's
clips and DFEW's `Clip/original/*.avi` are, decoded by FFmpeg at the file's
own rate; or `"video": "clips/00001"`, a folder of *.jpg/*.png frames in
name order, as DFEW's `clip_224x224/00001/` is, or a list of frame paths,
with `"fps"`, default 25, the source rate: give it for folders thinned to a
fixed count) and
Qwen2.5-VL's per-frame video budget (128-768 tokens' worth of pixels).
Eight frames per clip is UNVERIFIED for both recipes (R1-Omni's
HumanOmni samples its own; Qwen2.5-VL's cookbook samples 2 fps).

Measured (2-core CPU, 2026-12-03; the same 400 held-out faces, as stills
or as clips; chance 0.14): stills, SFT 0.662 emotion accuracy / 0.538 AU
macro F1, then GRPO 0.590 / 0.474; clips, SFT 0.620 / 0.500, then GRPO
0.647 / 0.499 (valid format 1.00 throughout). The base model only saw
stills and the tower stays frozen, so SFT on clips starts lower; GRPO then
gains on clips where it lost on stills (one seed each: within about two
standard errors, 0.024). On the idle machine, with XLA's compilation
cache warm and the base model built, a run takes 3.1 minutes on stills
and 3.5 on clips (four times the visual tokens).

`:qwen2_5_omni_7b` hears the clips too, as HumanOmniV2 does: Qwen2.5-Omni-
7B's thinker (HumanOmniV2's base) from `model.hf_dir`, `facial_r1_video`
rows with `config.data.audio=True`, so a video file keeps its soundtrack
(16 kHz WAV; a frame folder may name an `audio` file) and each clip's
frames and sound interleave in 2-second chunks with time-aligned 3-D
positions (TMRoPE, `emojax/model/tmrope.py`, equal to transformers'
`use_audio_in_video=True`); a silent clip is watched only. It needs the
real weights: there is no embedded run with sound (the synthetic clips
are silent); tests run its GRPO step on mp4s with sound through a random
tiny Omni thinker, and it has not been run on Qwen2.5-Omni-7B here.

What is missing: R1-Omni's base (HumanOmni-0.5B,
  whisper-large-v3 features) is not a transformers architecture emojax
  converts.
- HumanOmniV2's LLM-judged context and logic rewards (stage 2) need a
  judge model; only its stage-3 rewards (format, accuracy) are here.
R1-Omni's base is replaced by Qwen2.5-VL-7B-Instruct (UNVERIFIED as a
stand-in); its lr is TRL's default 1e-6 (UNVERIFIED for its version).
"""

import ml_collections

from configs import facial_r1

RECIPES = ("r1_omni", "human_omni_v2")
SIZES = ("smoke", "qwen2_5_vl_7b", "qwen2_5_omni_7b")
INPUTS = ("video",)
# Frames a clip is sampled to (R1-Omni and HumanOmniV2 read videos).
VIDEO_FRAMES = 8  # UNVERIFIED for the real recipes; the synthetic clips'.


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Variant: comma-separated [human_omni_v2][,video][,smoke |
  ,qwen2_5_vl_7b | ,qwen2_5_omni_7b (clips with their sound)]."""
  parts = [p for p in (arg or "").split(",") if p]
  bad = [p for p in parts if p not in RECIPES + SIZES + INPUTS]
  recipes = [p for p in parts if p in RECIPES]
  sizes = [p for p in parts if p in SIZES]
  if bad or len(recipes) > 1 or len(sizes) > 1 or len(set(parts)) < len(parts):
    raise ValueError(
      f"configs/r1_omni.py: bad variant {arg!r}; use '', 'human_omni_v2', "
      f"'video', 'smoke', 'qwen2_5_vl_7b', 'qwen2_5_omni_7b' or a "
      "comma-separated mix ('human_omni_v2,video,qwen2_5_vl_7b')."
    )
  recipe = recipes[0] if recipes else "r1_omni"
  c = facial_r1.get_config()
  c.stages = ("sft", "grpo")  # Cold start, then RL.
  c.data.prompt = recipe
  c.data.max_len = 320  # Prompt, image and the longest sft row: 298.
  c.rl = facial_r1.grpo(recipe)
  if sizes == ["smoke"]:
    facial_r1.smoke(c)
  elif sizes == ["qwen2_5_vl_7b"]:
    _qwen2_5_vl_7b(c, recipe)
  elif sizes == ["qwen2_5_omni_7b"]:
    _qwen2_5_omni_7b(c, recipe)
  if "video" in parts or sizes == ["qwen2_5_omni_7b"]:
    _video(c, real=bool(set(sizes) & {"qwen2_5_vl_7b", "qwen2_5_omni_7b"}))
  return c


def _qwen2_5_omni_7b(c, recipe: str) -> None:
  """HumanOmniV2's base, Qwen2.5-Omni-7B's thinker, on clips with their
  sound: a video file's frames and soundtrack interleave (TMRoPE,
  `emojax/model/tmrope.py`); a silent clip is watched only."""
  _qwen2_5_vl_7b(c, recipe)
  c.model.preset = "qwen2_5_omni_7b"
  c.model.hf_dir = ""  # Set: --config.model.hf_dir=/ckpt/Qwen2.5-Omni-7B
  c.data.audio = True
  c.data.audio_seconds = 30.0  # Whisper's window; DFEW/MAFW clips: 2-5 s.


def _video(c, real: bool) -> None:
  """Clips instead of stills: `facs_clips` (the same faces, each rising
  from neutral to its expression), or the user's video files and frame
  folders (`facial_r1_video`) for the real model."""
  c.data.video_frames = VIDEO_FRAMES
  if real:
    c.data.dataset = "facial_r1_video"  # Clips in Facial-R1 JSONL.
    return
  c.data.dataset = "facs_clips"
  # The tiny tower's budget, as for stills: 8 frames = 4 time steps of a
  # 64 px face's 16 tokens, 64 video tokens in the prompt.
  c.data.video_min_pixels = c.data.get_ref("min_pixels")  # Follow overrides.
  c.data.video_max_pixels = c.data.get_ref("max_pixels")
  c.data.max_len = 384  # The longest sft row with its clip: 346.


def _qwen2_5_vl_7b(c, recipe: str) -> None:
  """The recipe's hyper-parameters on Qwen2.5-VL-7B-Instruct, 8 GPUs/TPU."""
  facial_r1.qwen2_5_vl_7b(c)
  c.data.dataset = "facial_r1"  # Images/frames as Facial-R1 JSONL.
  c.sft.steps = 40  # UNVERIFIED: ~2 epochs of 580 cold-start rows at 32.
  c.sft.batch_size, c.sft.micro_batch_size = 32, 2
  c.sft.optim.lr, c.sft.optim.warmup_steps = 1e-5, 4  # UNVERIFIED.
  if recipe == "r1_omni":
    c.rl.steps = 1913  # 2 epochs of 15,306 clips, 16 prompts per step.
    c.rl.prompts_per_step, c.rl.group_size = 16, 8  # trl 0.14: prompts.
    c.rl.max_completion_length = 512  # (Its max_prompt_length: 512.)
  else:
    c.rl.steps = 2000  # UNVERIFIED.
    c.rl.prompts_per_step, c.rl.group_size = 2, 8  # UNVERIFIED per step.
    c.rl.max_completion_length = 1024  # (Its max_prompt_length: 2048.)
  c.rl.micro_batch_size = 8
  c.rl.optim.lr, c.rl.optim.warmup_steps = 1e-6, 0
  facial_r1.hf_trainer_schedule(c.rl.optim)  # TRL's GRPOTrainer.
  c.rl.log_completions_every = 50
  c.eval.num_examples, c.eval.batch_size = 100000, 64  # All of test.jsonl.
  c.eval.max_new_tokens = 1024
  c.checkpoint_every = 200
  c.keep_checkpoints = 3
  c.export_hf = True
