"""--compare: table, bars, and curves read from TensorBoard event files."""

import json
import time

import numpy as np
import pytest
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import summary_v2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from emojax.eval import compare


def _write_events(folder, curves: dict[str, list[float]], tensor: bool):
  """Scalars as tf.summary.scalar (v2: tensors, what clu writes) or as TF1
  simple_values."""
  writer = EventFileWriter(str(folder))
  for tag, values in curves.items():
    for step, v in enumerate(values):
      if tensor:
        summary = summary_v2.scalar_pb(tag, np.float32(v))
      else:
        summary = summary_pb2.Summary(
          value=[summary_pb2.Summary.Value(tag=tag, simple_value=v)]
        )
      writer.add_event(
        event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
      )
  writer.close()


def _metrics(folder, **values):
  folder.mkdir(parents=True)
  (folder / "metrics.json").write_text(json.dumps(values))


def test_reads_tensor_and_simple_value_scalars(tmp_path):
  (tmp_path / "sft").mkdir()
  (tmp_path / "grpo").mkdir()
  _write_events(tmp_path / "sft", {"train/loss": [3.0, 2.0]}, tensor=True)
  time.sleep(1.1)  # Event file names carry whole seconds.
  _write_events(
    tmp_path / "grpo",
    {"rewards/total": [0.1, 0.5, 0.9], "kl": [0.0, 0.01, 0.02]},
    tensor=False,
  )
  found = compare.stages(str(tmp_path))
  assert list(found) == ["sft", "grpo"]  # Order of start, not of name.
  assert found["sft"]["train/loss"] == [(0, 3.0), (1, 2.0)]
  steps, values = zip(*found["grpo"]["rewards/total"], strict=True)
  assert steps == (0, 1, 2)
  np.testing.assert_allclose(values, [0.1, 0.5, 0.9], rtol=1e-6)


def test_compare_writes_table_bars_and_curves(tmp_path):
  _metrics(tmp_path / "sft", **{"emotion/accuracy": 0.5, "au/macro_f1": 0.4})
  _metrics(
    tmp_path / "grpo",
    **{"emotion/accuracy": 0.7, "au/macro_f1": 0.3, "confidence/ece": None},
  )
  work = tmp_path / "workdir"
  for stage in ("sft", "grpo"):
    (work / stage).mkdir(parents=True)
  _write_events(work / "sft", {"train/entropy": [2.0, 1.5]}, tensor=True)
  _write_events(
    work / "grpo",
    {
      "train/reward_mean": [0.2, 0.4, 0.8],
      "train/kl": [0.0, 0.02, 0.03],
      "train/entropy": [1.4, 1.2, 1.1],
      "train/completion_length": [60.0, 55.0, 40.0],
    },
    tensor=True,
  )
  out = tmp_path / "out"
  written = compare.compare(
    [str(tmp_path / "sft"), str(tmp_path / "grpo"), str(work)], str(out)
  )
  assert set(written) == {"table", "bars", "curves"}
  table = (out / "compare.md").read_text()
  assert "| Emotion accuracy (WAR) | 0.500 | **0.700** |" in table
  assert "| AU macro F1 | **0.400** | 0.300 |" in table
  assert "ECE" in table and "n/a" in table
  for name in ("compare.png", "curves.png"):
    assert Image.open(out / name).size[0] > 300


def test_compare_without_data_says_what_it_needs(tmp_path):
  with pytest.raises(FileNotFoundError, match="no metrics.json"):
    compare.compare([str(tmp_path)], str(tmp_path / "out"))
