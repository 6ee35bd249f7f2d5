"""Hugging Face checkpoints in and out.

cfg, params = emojax.hf.load("/ckpt/Qwen2.5-7B-Instruct", mesh=mesh)
emojax.hf.save(cfg, params, "/out/hf", tokenizer_dir="/ckpt/Qwen2.5-7B")
"""

from emojax.hf.errors import CheckpointError
from emojax.hf.exporter import save
from emojax.hf.importer import load

__all__ = ["CheckpointError", "load", "save"]
