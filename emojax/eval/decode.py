"""`--checkpoint` mode: load a model, decode a split, return Examples.

Rows come from a Facial-R1-layout folder (make_data's output, FEA-20K)
through the `emojax_facial_r1` tfds builder (or a config's dataset
builder: EmotionCoT, frame-folder clips) and the grain pipeline in
rollout mode; `emojax.rollout.generate` decodes them greedily (one sample)
or samples k completions per prompt. Each completion becomes one Example
carrying its row's gold fields and image, ready for `score.evaluate`.
"""

import dataclasses
import os
import tempfile

import jax
import numpy as np
import tensorflow_datasets as tfds
import tqdm

from emojax import checkpoint, hf, rollout
from emojax.data import examples as examples_lib
from emojax.data import image_processor as ip
from emojax.data import pipeline
from emojax.data import tokenizer as tokenizer_lib
from emojax.data.tfds import facial_r1
from emojax.eval.score import Example
from emojax.model import vlm
from emojax.model.config import ModelConfig

_GENERATE_KEYS = (
  "input_ids",
  "attention_mask",
  "pixel_values",
  "image_grid_thw",
  "second_per_grid_ts",
)


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How completions are drawn."""

  num_samples: int = 1  # k completions per prompt; 1 decodes greedily.
  max_new_tokens: int = 256
  temperature: float = 1.0  # Used when num_samples > 1.
  top_p: float = 1.0
  top_k: int = 0
  batch_size: int = 8  # Prompts per generate call.
  seed: int = 0
  on_bad_example: str = "fail"  # Or 'skip' (rows too long, unreadable).


def load_model(folder: str) -> tuple[ModelConfig, object, str | None]:
  """(model config, params, tokenizer folder or None) from an emojax params
  checkpoint (model_config.json) or a Hugging Face folder (config.json).
  A training run's checkpoints need the run's config to build the model;
  `launch/eval.py` reads them (`checkpoint.restore_run_params`).
  """
  if os.path.exists(os.path.join(folder, checkpoint.CONFIG_FILE)):
    cfg, params = checkpoint.load_params(folder)
    return cfg, params, checkpoint.tokenizer_dir(folder)
  if os.path.exists(os.path.join(folder, "config.json")):
    cfg, params = hf.load(folder)
    has_tok = os.path.exists(os.path.join(folder, "tokenizer.json"))
    return cfg, params, folder if has_tok else None
  raise FileNotFoundError(
    f"--checkpoint={folder}: neither {checkpoint.CONFIG_FILE} (an emojax "
    "params checkpoint) nor config.json (a Hugging Face folder) is there; "
    "point it at one of those."
  )


def read_split(
  data_dir: str,
  split: str,
  builder_cls=facial_r1.EmojaxFacialR1,
  **builder_kwargs,
) -> list[dict]:
  """Every row of `split` (`data_dir/<split>.jsonl`), in file order, read
  by a JSONL builder (Facial-R1's layout unless given another; e.g.
  `audio=True` for a speech builder's clips)."""
  if not os.path.exists(os.path.join(data_dir, f"{split}.jsonl")):
    raise FileNotFoundError(
      f"--data_dir={data_dir} has no {split}.jsonl; pass the folder "
      "launch/make_data.py wrote (or a Facial-R1 JSONL folder) and a --split "
      "it holds."
    )
  with tempfile.TemporaryDirectory() as tmp:
    # A manual_dir holding only this split (other files linked through), so
    # other splits are neither built nor able to fail the build.
    manual = os.path.join(tmp, "manual")
    os.makedirs(manual)
    for name in os.listdir(data_dir):
      if not name.endswith(".jsonl") or name == f"{split}.jsonl":
        src = os.path.join(os.path.abspath(data_dir), name)
        os.symlink(src, os.path.join(manual, name))
    builder = builder_cls(
      data_dir=os.path.join(tmp, "tfds"),
      file_format="array_record",
      **builder_kwargs,
    )
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual)
    )
    source = builder.as_data_source(split)
    rows = [source[i] for i in range(len(source))]
  return sorted(rows, key=lambda r: int(r["line"]))


def image_config(
  cfg: ModelConfig, folder: str | None
) -> ip.ImageProcessorConfig:
  """The folder's preprocessor_config.json, else the model's patch sizes
  (a text model's rows carry no image: the default)."""
  if folder and os.path.exists(
    os.path.join(folder, "preprocessor_config.json")
  ):
    return ip.ImageProcessorConfig.from_hf_dir(folder)
  v = cfg.vision
  if v is None:
    return ip.ImageProcessorConfig()
  return ip.ImageProcessorConfig(
    patch_size=v.patch_size,
    merge_size=v.spatial_merge_size,
    temporal_patch_size=v.temporal_patch_size,
  )


def _text(v) -> str:
  return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _example(row: dict, completion: str) -> Example:
  line = int(row["line"])
  return Example(
    completion=completion,
    labels=tuple(_text(w) for w in row["labels"]),
    aus=tuple(_text(a) for a in row["AUs"]),
    description=_text(row["description"]),
    image=examples_lib.preview_image(row),
    where=f"{_text(row['source'])}:{line}",
  )


def decode(
  params,
  cfg: ModelConfig,
  rows: list[dict],
  tokenizer: tokenizer_lib.Tokenizer,
  dc: DecodeConfig,
  example: examples_lib.ExampleConfig,
) -> list[Example]:
  """num_samples completions per row (row-major), with a progress bar;
  `example` (mode 'rollout') says how rows become prompts."""
  pc = pipeline.PipelineConfig(
    batch_size=dc.batch_size,
    shuffle=False,
    example=example,
    on_bad_example=dc.on_bad_example,
  )
  shard = pipeline.grain.sharding.ShardOptions(0, 1)
  batches = pipeline.make_dataset(rows, tokenizer, pc, shard)
  by_line = {(_text(r["source"]), int(r["line"])): r for r in rows}
  rng = jax.random.key(dc.seed)
  out = []
  bar = tqdm.tqdm(
    total=len(rows) * dc.num_samples, desc="decoding", unit="completion"
  )
  # A text model's rows carry no image; its batches' empty image arrays
  # are not inputs.
  keys = _GENERATE_KEYS if cfg.vision is not None else _GENERATE_KEYS[:2]
  if cfg.audio is not None:  # batches of rows with clips carry them
    keys += ("input_features", "audio_feature_lengths")
  for batch in batches:
    n = len(batch["labels"])
    inputs = {k: batch[k] for k in keys if k in batch}
    if not len(inputs.get("pixel_values", [None])):  # rows without visuals
      for key in _GENERATE_KEYS[2:]:
        inputs.pop(key, None)
    inputs["input_ids"] = inputs["input_ids"][:n]
    inputs["attention_mask"] = inputs["attention_mask"][:n]
    rng, key = jax.random.split(rng)
    result = rollout.generate(
      params,
      cfg,
      inputs,
      key,
      num_generations=dc.num_samples,
      max_new_tokens=dc.max_new_tokens,
      temperature=dc.temperature,
      top_p=dc.top_p,
      top_k=dc.top_k,
      greedy=dc.num_samples == 1,
      stop_token_ids=tokenizer.eos_ids,
      suppress_ids=vlm.placeholder_ids(cfg),
      decode_fn=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
    )
    texts = np.asarray(result.text, object).reshape(n, dc.num_samples)
    for p in range(n):
      row = by_line[(batch["source"][p], int(batch["line"][p]))]
      out += [_example(row, str(t)) for t in texts[p]]
    bar.update(n * dc.num_samples)
  bar.close()
  return out
