"""Data speed: the face renderer and the full grain pipeline.

  python launch/benchmark.py data [--n=200] [--batches=20]

Renderer: `synth.make_example` at 64x64, images/s on one core, against the
issue's goal of 300/s per core. Pipeline: examples/s of
tfds-row -> decode -> Qwen2.5-VL preprocessing -> chat template -> tokens ->
batch, in-process (the reference) and with 1 and 2 grain worker processes.
"""

import io
import sys
import tempfile
import time

from absl import flags
from PIL import Image

from benchmarks import _common
from emojax.data import examples, pipeline, synth
from emojax.data import image_processor as ip
from emojax.data import tokenizer as tokenizer_lib

_N = flags.DEFINE_integer("n", 200, "Faces to render / rows in the source.")
_BATCHES = flags.DEFINE_integer("batches", 20, "Batches of 8 to time.")
GOAL = 300.0  # images/s per core (issue #4)


def _render_rate(n: int) -> float:
  synth.make_example(0, 0)  # warm caches
  start = time.perf_counter()
  for i in range(n):
    synth.make_example(0, i, size=64)
  return n / (time.perf_counter() - start)


def _rows(n: int) -> list[dict]:
  rows = []
  for i in range(n):
    ex = synth.make_example(0, i, size=64, reasoning=True)
    png = io.BytesIO()
    Image.fromarray(ex["image"]).save(png, "PNG")
    rows.append(
      {
        "image": png.getvalue(),
        "labels": ex["labels"],
        "AUs": ex["AUs"],
        "description": ex["description"],
        "caption": ex["caption"],
        "text": "",
        "source": "bench",
        "line": i,
      }
    )
  return rows


def _pipeline_rate(rows, tok_dir, workers: int, batches: int) -> float:
  cfg = pipeline.PipelineConfig(
    batch_size=8,
    num_epochs=None,
    worker_count=workers,
    example=examples.ExampleConfig(
      max_len=2048, image=ip.ImageProcessorConfig(min_pixels=56 * 56)
    ),
  )
  shard = pipeline.grain.sharding.ShardOptions(0, 1)
  it = iter(pipeline.make_dataset(rows, tok_dir, cfg, shard))
  next(it)  # start-up (worker processes) is not timed
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * 8 / (time.perf_counter() - start)


def main(argv: list[str]) -> int:
  flags.FLAGS(argv)
  print("machine:", _common.describe())
  rate = _render_rate(_N.value)
  print(
    f"renderer 64x64: {rate:.0f} images/s on one core "
    f"(goal {GOAL:.0f}/s: {rate / GOAL:.2f}x)"
  )
  with tempfile.TemporaryDirectory() as tok_dir:
    tokenizer_lib.build_default(tok_dir, synth.text_corpus(0, 500), 1024)
    rows = _rows(_N.value)
    base = _pipeline_rate(rows, tok_dir, 0, _BATCHES.value)
    print(f"pipeline in-process (reference): {base:.1f} examples/s")
    for workers in (1, 2):
      r = _pipeline_rate(rows, tok_dir, workers, _BATCHES.value)
      print(
        f"pipeline {workers} worker(s): {r:.1f} examples/s "
        f"({r / base:.2f}x in-process)"
      )
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
