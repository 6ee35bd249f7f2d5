"""Shared config fragments: GRPO recipe presets (METHODS.md).

`grpo_preset(name)` returns the `config.rl` fragment of a recipe; experiment
configs start from one and override fields. Values are from each recipe's
public code unless a comment says UNVERIFIED.
"""

import ml_collections

from emojax.train import validate as validate_lib

PRESETS = (
  "facial_r1",
  "r1_omni",
  "human_omni_v2",
  "emocaliber",
  "affectgpt_r1",
  "dapo",
  "dr_grpo",
  "emotion_thinker",
)


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.group_size = 8  # G, completions per prompt.
  c.prompts_per_step = 16  # P, prompts per optimiser step.
  c.num_iterations = 1  # mu, updates per rollout batch (1: ratio == 1).
  c.temperature = 1.0  # Sampling temperature.
  c.top_p = 1.0  # Nucleus sampling.
  c.top_k = 0  # Top-k sampling (0: off).
  # Prompts are bounded by config.data.max_len (never cut: an error or a
  # skip, config.data.on_bad_example); the learning rate is rl.optim.lr.
  c.max_completion_length = 512  # New tokens per completion.
  # Entries of emojax.rewards.configured(config.rl), a REWARDS superset.
  c.reward_names = ["emotion", "format"]
  c.reward_weights = [1.0, 1.0]  # One weight per reward name.
  c.reward_clip = ml_collections.FieldReference(None, float)  # |sum| cap.
  c.token_masks = ml_collections.FieldReference(None, list)  # Per reward:
  # 'all' or 'think' (Facial-R1's per-reward masks); None: no weighting.
  c.au_rarity_weights = False  # Facial-R1's per-sample AU-rarity weights.
  c.advantage = "grpo"  # grpo | dr_grpo | batch | rloo | gdpo.
  c.advantage_impl = "jnp"  # jnp | pallas (one fused kernel, same values).
  c.eps = 1e-4  # Added to the group std (TRL).
  c.ddof = 1  # Group std degrees of freedom (TRL, verl, Tunix).
  c.loss_type = "grpo"  # grpo | bnpo | dr_grpo | dapo.
  c.importance_sampling_level = "token"  # token | sequence (GSPO).
  c.epsilon = 0.2  # Lower clip: ratio >= 1 - epsilon.
  c.epsilon_high = 0.2  # Upper clip: ratio <= 1 + epsilon_high.
  c.delta = ml_collections.FieldReference(None, float)  # Ratio cap.
  c.dual_clip = ml_collections.FieldReference(None, float)  # c for A < 0.
  c.beta = 0.04  # KL weight; 0 skips the reference model.
  c.beta_schedule = "constant"  # constant | human_omni_v2.
  c.kl_estimator = "k3"  # k1 | k2 | k3 | low_var_kl (verl).
  c.entropy_coef = 0.0  # Entropy bonus weight.
  c.dynamic_sampling = False  # Drop zero-variance groups (DAPO).
  c.mask_truncated_completions = False  # Zero the loss of cut-off rows.
  # DAPO's overlong penalty (the 'overlong' reward): -1 at overlong_max
  # tokens (None: max_completion_length, DAPO's L_max), ramping over the
  # overlong_cache tokens before it (None: a quarter of overlong_max).
  c.overlong_max = ml_collections.FieldReference(None, int)
  c.overlong_cache = ml_collections.FieldReference(None, int)
  # The 'trust_reasoning' reward (emojax.rewards.trust): answer-gated judge
  # scores, weighted by w(step) and each group's trust.
  c.trust = ml_collections.ConfigDict()
  c.trust.judge = "facs"  # facs (AUs named in think) | prosody (speech cues).
  c.trust.schedule = "anneal"  # anneal: SophiaVL | progressive: ramps up.
  c.trust.scale = 0.3  # w's peak (SophiaVL's 0.3).
  c.trust.horizon = 1000.0  # T, in steps: decay or ramp length.
  c.trust.start = 0.0  # progressive: the step the ramp begins.
  return c


def grpo_preset(name: str) -> ml_collections.ConfigDict:
  """The `config.rl` fragment of a recipe; see PRESETS."""
  if name not in PRESETS:
    raise ValueError(f"unknown GRPO preset {name!r}; choose from {PRESETS}.")
  c = _base()
  if name == "facial_r1":  # Facial-R1 @0def205 (METHODS.md section 1).
    c.max_completion_length = 2048  # Final GRPO script (prompts: None).
    c.reward_names = ["emotion", "format", "au_f1"]
    c.reward_weights = [1.0, 1.0, 1.0]  # R = R_acc + R_format + R_AU.
    c.reward_clip = 10.0  # Facial-R1 clamps the summed reward.
    c.token_masks = ["all", "all", "think"]  # AU reward: think tokens.
    c.au_rarity_weights = True  # w(AU) = 1/freq, min-max, x10.
    c.prompts_per_step = 4  # 1 x grad-accum 4 x 8 GPUs = 32 rows / G 8.
  elif name == "r1_omni":  # R1-Omni run_grpo_humanomni.sh (section 2).
    c.epsilon = c.epsilon_high = float("inf")  # No clip in its loss.
    # trl 0.14 (pinned): the per-device batch counts prompts, each
    # sampled G times, so 1 x grad-accum 2 x 8 GPUs = 16 prompts.
    c.prompts_per_step = 16
  elif name == "human_omni_v2":  # HumanOmniV2 stage 3 (section 3).
    c.advantage = "dr_grpo"  # scale_rewards=false.
    c.loss_type = "bnpo"  # Token mean over the batch.
    c.beta_schedule = "human_omni_v2"  # beta to 0.25 beta by T/2.
    c.temperature = 0.9  # Its config default.
    c.max_completion_length = 1024  # (Its max_prompt_length: 2048.)
    c.reward_names = ["format_context", "emotion"]
    c.prompts_per_step = 2  # UNVERIFIED: 1 x grad-accum 2 per GPU.
  elif name == "emocaliber":  # EmoCaliber stage 3, verl (section 6).
    c.advantage = "dr_grpo"  # norm_adv_by_std_in_grpo=False.
    c.loss_type = "dapo"  # verl token-mean over the mini-batch.
    c.beta = 0.01  # use_kl_loss, not in the reward.
    c.kl_estimator = "low_var_kl"  # verl's clamped k3.
    c.prompts_per_step = 64  # train_batch 64, rollout n 8.
    c.max_completion_length = 2048  # (Its max_prompt_length: 4096.)
    c.reward_names = ["confidence"]
    c.reward_weights = [1.0]
  elif name == "affectgpt_r1":  # 3rd-party re-implementation (section 4).
    c.beta = 0.0  # kl_coef 0.
    c.temperature = 0.8
    c.top_p = 0.9
    # EW-F1 of the answer x the P3 label-count penalty (inside ew_f1), and
    # the format at 0.2. Its "dual" (0.6) and alignment (0.4) rewards need
    # an LLM label extractor: not here.
    c.reward_names = ["ew_f1", "format"]
    c.reward_weights = [1.0, 0.2]
    # G, batch and lengths: UNVERIFIED (the paper's are not public).
  elif name == "emotion_thinker":  # GRPO-PTR (section 5).
    # R = format + outcome + w(step) * trust * reasoning; the reasoning
    # reward introduced progressively. Its judge, the ramp, G, beta and
    # lr: UNVERIFIED (the paper's RL code is not public).
    c.reward_names = ["format", "emotion", "trust_reasoning"]
    c.reward_weights = [1.0, 1.0, 1.0]
    c.trust.judge = "prosody"
    c.trust.schedule = "progressive"
  elif name == "dapo":  # DAPO paper; TRL loss_type='dapo'.
    c.group_size = 16  # UNVERIFIED: paper value from memory.
    c.loss_type = "dapo"
    c.epsilon_high = 0.28  # Clip-higher.
    c.beta = 0.0  # No KL.
    c.dynamic_sampling = True  # Resample zero-variance groups.
    c.max_completion_length = 20480  # UNVERIFIED: paper value.
    c.overlong_max = 20480  # UNVERIFIED: paper's L_max.
    c.overlong_cache = 4096  # UNVERIFIED: paper's L_cache.
    c.reward_names = ["emotion", "format", "overlong"]
    c.reward_weights = [1.0, 1.0, 1.0]
  elif name == "dr_grpo":  # Dr.GRPO; TRL loss_type='dr_grpo'.
    c.advantage = "dr_grpo"  # No std.
    c.loss_type = "dr_grpo"  # Sum / (B * max_completion_length).
    c.beta = 0.0  # UNVERIFIED: Dr.GRPO runs without KL.
  validate(c)
  return c


def validate(c: ml_collections.ConfigDict) -> None:
  """Cross-field checks of an rl fragment; raises with the field to fix."""
  validate_lib.check_rl(c)
