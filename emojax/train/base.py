"""The embedded default's base model, built once and cached.

Real Facial-R1 starts from a Qwen2.5-VL that can already see. The tiny
model cannot, so the project pretrains it to describe synthetic faces in
plain words (no AU codes, no emotion words) on its own split of faces
(a different rendering seed from the recipe's data), and caches the result
under `$EMOJAX_CACHE/base/<name>` like a downloaded checkpoint. Building it
is resumable: killing it and running again continues where it stopped.

  python launch/train.py --config=configs/facial_r1.py --build_base_only
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
  c.stages = ("pretrain",)
  c.model.base = ""
  c.model.hf_dir = ""
  c.data.dataset = "facs_synth"
  c.data.manual_dir = ""
  c.data.splits = {"train": "train", "sft": "sft", "test": "test"}
  c.data.seed = config.data.seed + BASE_SEED_OFFSET
  c.data.num_train = config.pretrain.num_train
  c.data.num_sft = c.data.num_test = 8
  c.eval.num_examples = 0
  c.export_hf = False
  return c
