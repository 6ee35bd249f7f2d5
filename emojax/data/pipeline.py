"""grain pipelines: tfds source -> shuffled, sharded, prepared, batched.

    source (tfds data source, or any len()+[i] sequence of rows)
      -> every row on every process (`emojax.multihost` says why)
      -> seeded shuffle, epochs
      -> examples.Prepare (image preprocessing, chat template, tokens)
      -> [grain worker processes]
      -> Batcher: drops/raises bad rows by policy, pads/packs into batches

Batches use Hugging Face names (`input_ids`, `attention_mask`,
`pixel_values` [sum N, C*tp*p*p] over the batch's visuals, images and
videos alike, in token order, `image_grid_thw` [V, 3] one row per visual
(a video's t > 1 is its frames / temporal_patch_size), and, with any
visual, `second_per_grid_ts` float32 [V] (seconds per temporal grid
step; 1.0 for an image: batches that GRPO's dynamic sampling merges then
agree on keys); with clips `input_features` [clips,
mel, frames] and `audio_feature_lengths` [clips], in row order), so the
model takes them unchanged. SFT
batches add `loss_mask` (assistant tokens only) and, when packing,
`segment_ids` (0 = padding) and `positions`; rollout batches are left-padded
prompts. Host-side lists `labels`, `AUs`, `text`, `caption`, `source`,
`line` follow the examples' order, for rewards and error messages.
Sequences are padded to `max_len`, never truncated.

The iterator's `get_state`/`set_state` resume exactly mid-epoch, skipped
rows counted (its state is what checkpoint.py saves).
"""

import dataclasses
from typing import Any

import grain
import numpy as np
from absl import logging

from emojax.data import errors
from emojax.data.examples import ExampleConfig, Prepare


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Ordering, batching and the bad-row policy."""

  batch_size: int = 8  # Rows (SFT) or prompts P (rollout) per batch.
  seed: int = 0  # Shuffle seed.
  shuffle: bool = True
  num_epochs: int | None = 1  # None: repeat forever.
  packing: bool = False  # SFT: several examples per row, with segment ids.
  drop_remainder: bool = False  # Drop the last, partly filled batch.
  worker_count: int = 0  # grain worker processes (0: in-process).
  on_bad_example: str = "fail"  # 'fail' or 'skip' (count, report).
  example: ExampleConfig = ExampleConfig()


def shard_options() -> grain.sharding.ShardOptions:
  """All rows on every process: each reads the global batch
  (`emojax.multihost` says why)."""
  return grain.sharding.NoSharding()


def make_dataset(
  source,
  tokenizer,
  cfg: PipelineConfig,
  shard: grain.sharding.ShardOptions | None = None,
) -> "BatchedDataset":
  """An IterDataset of batches; `iter()` it for a checkpointable iterator."""
  """`tokenizer`: a Tokenizer, or its folder (needed with worker_count>0)."""
  errors.check_policy(cfg.on_bad_example)
  if cfg.packing and (cfg.example.audio_frames or cfg.example.video_frames):
    raise ValueError(
      "packing with clips or videos is not supported: a batch carries one "
      "clip and one visual per row, and packed rows' 1-D positions are not "
      "a video's time positions. Set packing=False for a model that "
      "listens or watches."
    )
  prepare = Prepare(tokenizer, cfg.example)
  shard = shard or shard_options()
  ds = grain.MapDataset.source(source)
  ds = ds[shard.shard_index :: shard.shard_count]
  if cfg.shuffle:
    ds = ds.shuffle(seed=cfg.seed)
  if cfg.num_epochs != 1:
    ds = ds.repeat(cfg.num_epochs)
  ds = ds.map(prepare).to_iter_dataset()
  if cfg.worker_count > 0:
    ds = ds.mp_prefetch(
      grain.multiprocessing.MultiprocessingOptions(num_workers=cfg.worker_count)
    )
  return BatchedDataset(ds, cfg, prepare.tok.pad_id)


class BatchedDataset(grain.IterDataset):
  """Filters bad rows by policy and batches (pads or packs) the rest."""

  def __init__(self, parent: grain.IterDataset, cfg: PipelineConfig, pad_id):
    super().__init__(parent)
    self._cfg, self._pad_id = cfg, int(pad_id)

  def __iter__(self) -> "BatchIterator":
    return BatchIterator(self._parent.__iter__(), self._cfg, self._pad_id)


class BatchIterator(grain.DatasetIterator):
  """Batches with exact-resume state; `bad_examples` has the skip tally."""

  def __init__(self, parent, cfg: PipelineConfig, pad_id: int):
    super().__init__(parent)
    self._cfg, self._pad_id = cfg, pad_id
    self.bad_examples = errors.BadExampleLog(cfg.on_bad_example)
    # A packed example that did not fit the batch, and the parent's state
    # from before it was read (so a resume reads it again).
    self._carry, self._carry_state, self._last_state = None, None, None
    self._done = False

  def _pull(self) -> dict | None:
    if self._carry is not None:
      ex, self._carry, self._carry_state = self._carry, None, None
      return ex
    while True:
      state = self._parent.get_state() if self._cfg.packing else None
      try:
        ex = next(self._parent)
      except StopIteration:
        return None
      if "bad_example" in ex:
        self.bad_examples.handle_described(ex["bad_example"])
        continue
      self._last_state = state
      return ex

  def __next__(self) -> dict[str, Any]:
    cfg, t_max = self._cfg, self._cfg.example.max_len
    rows: list[list[dict]] = []
    used = 0
    while len(rows) < cfg.batch_size or rows and cfg.packing:
      ex = self._pull()
      if ex is None:
        break
      n = len(ex["input_ids"])
      if cfg.packing and rows and used + n <= t_max:
        rows[-1].append(ex)
        used += n
      elif len(rows) < cfg.batch_size:
        rows.append([ex])
        used = n
      else:  # Packing, batch full: keep it for the next batch.
        self._carry, self._carry_state = ex, self._last_state
        break
    full = len(rows) == cfg.batch_size
    if not rows or (cfg.drop_remainder and not full):
      self._end_of_data()
      raise StopIteration
    return self._collate(rows)

  def _end_of_data(self):
    if not self._done:
      self._done = True
      logging.info("end of data: %s", self.bad_examples.report())

  def _collate(self, rows: list[list[dict]]) -> dict[str, Any]:
    b, t_max = self._cfg.batch_size, self._cfg.example.max_len
    left = self._cfg.example.mode == "rollout"
    input_ids_BT = np.full((b, t_max), self._pad_id, np.int32)
    attention_mask_BT = np.zeros((b, t_max), np.int32)
    loss_mask_BT = np.zeros((b, t_max), np.int32)
    segment_ids_BT = np.zeros((b, t_max), np.int32)
    positions_BT = np.zeros((b, t_max), np.int32)
    for r, row in enumerate(rows):
      ids = np.concatenate([ex["input_ids"] for ex in row])
      start = t_max - len(ids) if left else 0
      span = slice(start, start + len(ids))
      input_ids_BT[r, span] = ids
      attention_mask_BT[r, span] = 1
      loss_mask_BT[r, span] = np.concatenate([ex["loss_mask"] for ex in row])
      segment_ids_BT[r, span] = np.concatenate(
        [np.full(len(ex["input_ids"]), s + 1) for s, ex in enumerate(row)]
      )
      positions_BT[r, span] = np.concatenate(
        [np.arange(len(ex["input_ids"])) for ex in row]
      )
    examples = [ex for row in rows for ex in row]
    visuals = [ex for ex in examples if ex["pixel_values"] is not None]
    patch_dim = self._patch_dim()
    batch = {
      "input_ids": input_ids_BT,
      "attention_mask": attention_mask_BT,
      "pixel_values": np.concatenate(
        [ex["pixel_values"] for ex in visuals]
        or [np.zeros((0, patch_dim), np.float32)]
      ),
      "image_grid_thw": np.concatenate(
        [ex["image_grid_thw"] for ex in visuals] or [np.zeros((0, 3), np.int64)]
      ),
      "labels": [ex["labels"] for ex in examples],
      "AUs": [ex["AUs"] for ex in examples],
      "text": [ex["text"] for ex in examples],
      "caption": [ex["caption"] for ex in examples],
      "source": [ex["source"] for ex in examples],
      "line": [ex["line"] for ex in examples],
    }
    seconds = [ex.get("second_per_grid_ts") for ex in visuals]
    # An image (t = 1) gets the model's default step, 1.0.
    batch["second_per_grid_ts"] = np.concatenate(
      [np.ones(1, np.float32) if s is None else s for s in seconds]
      or [np.zeros(0, np.float32)]
    )
    clips = [ex for ex in examples if ex.get("input_features") is not None]
    if clips:  # [clips, mel, frames] in row order, as the processor's
      batch["input_features"] = np.stack([ex["input_features"] for ex in clips])
      batch["audio_feature_lengths"] = np.asarray(
        [ex["feature_len"] for ex in clips], np.int32
      )
    if self._cfg.example.mode == "sft":
      batch["loss_mask"] = loss_mask_BT
    if self._cfg.packing:
      batch["segment_ids"] = segment_ids_BT
      batch["positions"] = positions_BT
    return batch

  def _patch_dim(self) -> int:
    im = self._cfg.example.image
    return 3 * im.temporal_patch_size * im.patch_size**2

  def get_state(self) -> dict[str, Any]:
    parent = (
      self._carry_state if self._carry is not None else self._parent.get_state()
    )
    return {"parent": parent, "bad_examples": self.bad_examples.state()}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state["parent"])
    self.bad_examples.restore(state["bad_examples"])
    self._carry, self._carry_state, self._done = None, None, False
