"""The embedded default's base model, built once and cached.

Real Facial-R1 starts from a Qwen2.5-VL that can already see. The tiny
model cannot, so the project builds a base model in two stages on its own
faces (a different rendering seed from the recipe's data):

1. `ground`: the vision tower learns which AUs move each image token
   (targets from the renderer itself, `emojax.data.grounding`);
2. `pretrain`: with the tower frozen, the merger and language model learn
   to describe faces in plain words (no AU codes, no emotion words).

Captions alone did not work: after 600 caption steps a linear probe read
AUs worse from the tower than from a random one, and captions came out the
same for every face (the language model ignored the image). The result is
cached under `$EMOJAX_CACHE/base/<name>` like a downloaded checkpoint.
Building it is resumable: killing it and running again continues where it
stopped.

  python launch/train.py --config=configs/facial_r1.py --base_only
"""

from __future__ import annotations

import os

from emojax.train import setup

BASE_SEED_OFFSET = 1000  # base-model faces never share a seed with a recipe's


def folder(config) -> str:
  return os.path.join(setup.cache_dir(), "base", config.model.base)


def base_config(config):
  """The pretrain-only run that builds the base model of `config`."""
  c = config.copy_and_resolve_references()
  c.stages = ("ground", "pretrain")
  c.model.base = ""
  c.model.hf_dir = ""
  c.data.dataset = "facs_synth"  # Stills, whatever the recipe reads.
  c.data.video_frames = 0
  c.data.audio = False
  c.data.manual_dir = ""
  c.data.splits = {"train": "train", "sft": "sft", "test": "test"}
  c.data.seed = config.data.seed + BASE_SEED_OFFSET
  c.data.num_train = config.pretrain.num_train
  c.data.num_sft = 8
  c.data.num_test = max(config.pretrain.get("num_eval", 0), 8)
  c.eval.num_examples = 0
  c.export_hf = False
  return c
