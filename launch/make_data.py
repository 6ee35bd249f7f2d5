r"""Writes a synthetic data set in a real data set's on-disk layout.

  python launch/make_data.py --dataset=facs_synth --out=DIR \
      --num_train=N --num_test=M [--num_sft=K] [--seed=S] [--size=64]
  python launch/make_data.py --dataset=facs_clips --out=DIR \
      --num_train=N --num_test=M [--num_sft=K] [--seed=S] [--size=64] \
      [--frames=8] [--fps=4]
  python launch/make_data.py --dataset=prosody_synth --out=DIR \
      --num_train=N --num_test=M [--num_sft=K] [--seed=S]

facs_synth (Facial-R1's JSONL layout): DIR gets train.jsonl, test.jsonl,
sft.jsonl (the first K train examples with reasoning in `description`;
disjoint from test), images/<split>/NNNNNN.png (paths in the JSONL are
relative to it) and contact_sheet.png.

facs_clips (the same JSONL layout, rows of clips, as
`emojax/data/tfds/facial_r1.py`'s video reader and DFEW/MAFW frame folders
have it): the faces of facs_synth as clips from neutral to the expression
(`synth.make_clip`), each a folder videos/<split>/NNNNNN/ of frames
000.png, 001.png, ...; rows name it in `video`, with `fps`;
contact_sheet.png shows each clip's apex frame.

prosody_synth (EmotionCoT's layout, `emojax/data/tfds/emotion_cot.py`):
the same three JSONL files of EmotionCoT records (sft rows add
`reasoning`), and each record's clip, spoken by `emojax.data.voice`, in
audio/<split>/NNNNNN.wav (16 kHz mono, `audio_path` relative to DIR).

Everything is written to a temporary folder beside DIR, then renamed into
place.
"""

import dataclasses
import functools
import json
import multiprocessing
import os
import pathlib
import shutil
import sys
import tempfile

from absl import app, flags
from PIL import Image, ImageDraw, ImageFont

from emojax.data import speech_synth, synth

DATASETS = ("facs_synth", "facs_clips", "prosody_synth")
# Each data set's media folder beside the JSONL files.
_MEDIA = {
  "facs_synth": "images",
  "facs_clips": "videos",
  "prosody_synth": "audio",
}
_MAX_FRAMES = 1000  # Frame files are named 000.png ... 999.png.
_MAX_EXAMPLES = 10_000_000

_DATASET = flags.DEFINE_string("dataset", "facs_synth", "Data set to write.")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 1000, "Train examples.")
_NUM_TEST = flags.DEFINE_integer("num_test", 200, "Test examples.")
_NUM_SFT = flags.DEFINE_integer(
  "num_sft", 0, "Train examples also written with reasoning to sft.jsonl."
)
_SEED = flags.DEFINE_integer("seed", 0, "Data seed.")
_SIZE = flags.DEFINE_integer("size", 64, "Image side in pixels.")
_FRAMES = flags.DEFINE_integer(
  "frames", synth.CLIP_FRAMES, "facs_clips: frames per clip."
)
_FPS = flags.DEFINE_float("fps", synth.CLIP_FPS, "facs_clips: their rate.")
_WORKERS = flags.DEFINE_integer(
  "workers", 0, "Processes; 0 picks 1 for small sets, else the CPU count."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")


@dataclasses.dataclass(frozen=True)
class Spec:
  """What to write; `validate` checks it before any work starts."""

  dataset: str
  out: str
  num_train: int
  num_test: int
  num_sft: int = 0
  seed: int = 0
  size: int = 64
  frames: int = synth.CLIP_FRAMES
  fps: float = synth.CLIP_FPS
  workers: int = 0
  overwrite: bool = False


def validate(spec: Spec) -> None:
  """Fails with the flag and the fix for out-of-range settings."""
  if spec.dataset not in DATASETS:
    raise ValueError(
      f"--dataset={spec.dataset!r} is unknown; make_data writes "
      f"{', '.join(DATASETS)} (real data sets come in through their tfds "
      "builders in emojax/data/tfds)."
    )
  for name in ("num_train", "num_test"):
    n = getattr(spec, name)
    if not 0 <= n <= _MAX_EXAMPLES:
      raise ValueError(f"--{name}={n} must be in [0, {_MAX_EXAMPLES}].")
  if spec.num_train + spec.num_test == 0:
    raise ValueError("--num_train and --num_test are both 0; nothing to write.")
  if not 0 <= spec.num_sft <= spec.num_train:
    raise ValueError(
      f"--num_sft={spec.num_sft} must be in [0, --num_train={spec.num_train}]:"
      " the SFT subset is drawn from the train split."
    )
  if spec.seed < 0:
    raise ValueError(f"--seed={spec.seed} must be >= 0.")
  if not 16 <= spec.size <= 1024:
    raise ValueError(f"--size={spec.size} must be in [16, 1024] pixels.")
  if not 1 <= spec.frames <= _MAX_FRAMES:
    raise ValueError(f"--frames={spec.frames} must be in [1, {_MAX_FRAMES}].")
  if not spec.fps > 0:
    raise ValueError(f"--fps={spec.fps} must be > 0 (frames per second).")
  if spec.workers < 0:
    raise ValueError(f"--workers={spec.workers} must be >= 0 (0 = auto).")
  out = pathlib.Path(spec.out)
  if out.exists() and not spec.overwrite:
    raise ValueError(
      f"--out={spec.out} already exists; pass --overwrite to replace it or "
      "pick a new folder."
    )
  parent = out.resolve().parent
  if not parent.is_dir():
    raise ValueError(
      f"--out={spec.out}: its parent folder {parent} does not exist; create "
      "it first."
    )
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ValueError(
      f"--out={spec.out}: cannot write in {parent}; pick a folder you own."
    )


def _workers(spec: Spec) -> int:
  if spec.workers:
    return spec.workers
  return 1 if spec.num_train + spec.num_test < 2000 else os.cpu_count() or 1


def _write_jsonl(path: pathlib.Path, rows: list[dict]) -> None:
  with open(path, "w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row, ensure_ascii=False) + "\n")


def contact_sheet(
  root: pathlib.Path, rows: list[dict], cols: int = 6, scale: int = 3
) -> Image.Image:
  """A grid of faces (a clip's apex frame) with their label and AUs
  written under each."""
  images = [Image.open(_still(root, r)).convert("RGB") for r in rows]
  side = images[0].width * scale
  font = ImageFont.load_default(size=max(10, side // 11))
  cell_h = side + 2 * (font.size + 4)
  rows_n = -(-len(rows) // cols)
  sheet = Image.new("RGB", (cols * side, rows_n * cell_h), "white")
  draw = ImageDraw.Draw(sheet)
  for k, (row, im) in enumerate(zip(rows, images, strict=True)):
    x, y = (k % cols) * side, (k // cols) * cell_h
    sheet.paste(im.resize((side, side), Image.Resampling.NEAREST), (x, y))
    aus = " ".join(a[2:] for a in row["AUs"]) or "-"
    draw.text((x + 3, y + side + 2), row["labels"][0], fill="black", font=font)
    draw.text((x + 3, y + side + font.size + 5), aus, fill="blue", font=font)
  return sheet


def _still(root: pathlib.Path, row: dict) -> pathlib.Path:
  if "image" in row:
    return root / row["image"]
  frames = sorted((root / row["video"]).glob("*.png"))
  return frames[synth.apex_frame(len(frames))]


def make_data(spec: Spec) -> pathlib.Path:
  """Writes the data set of `spec` and returns its folder."""
  validate(spec)
  out = pathlib.Path(spec.out).resolve()
  tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
  try:
    faces = spec.dataset in ("facs_synth", "facs_clips")
    for split in ("train", "test"):
      (tmp / _MEDIA[spec.dataset] / split).mkdir(parents=True)
    jobs = [("train", i, i < spec.num_sft) for i in range(spec.num_train)]
    jobs += [("test", i, False) for i in range(spec.num_test)]
    if spec.dataset == "facs_synth":
      write = functools.partial(
        synth.write_example, str(tmp), spec.seed, spec.size
      )
    elif spec.dataset == "facs_clips":
      write = functools.partial(
        synth.write_clip_example,
        str(tmp),
        spec.seed,
        spec.size,
        spec.frames,
        spec.fps,
      )
    else:
      write = functools.partial(speech_synth.write_clip, str(tmp), spec.seed)
    n_workers = _workers(spec)
    if n_workers > 1:
      # Spawned, not forked: a fork of a process whose JAX runs threads (a
      # notebook, the test session) can deadlock in the child.
      spawn = multiprocessing.get_context("spawn")
      with spawn.Pool(n_workers) as pool:
        results = pool.map(write, jobs, chunksize=64)
    else:
      results = [write(job) for job in jobs]
    rows = {"train": [], "test": []}
    sft = []
    for split, row, sft_row in results:
      rows[split].append(row)
      if sft_row is not None:
        sft.append(sft_row)
    _write_jsonl(tmp / "train.jsonl", rows["train"])
    _write_jsonl(tmp / "test.jsonl", rows["test"])
    _write_jsonl(tmp / "sft.jsonl", sft)
    if faces:
      shown = (rows["train"] + rows["test"])[:24]
      contact_sheet(tmp, shown).save(tmp / "contact_sheet.png")
    if out.exists():
      old = out.with_name(f".{out.name}-old")
      shutil.rmtree(old, ignore_errors=True)
      os.replace(out, old)
      os.replace(tmp, out)
      shutil.rmtree(old)
    else:
      os.replace(tmp, out)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return out


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _OUT.value:
    raise app.UsageError("--out=DIR is required.")
  spec = Spec(
    dataset=_DATASET.value,
    out=_OUT.value,
    num_train=_NUM_TRAIN.value,
    num_test=_NUM_TEST.value,
    num_sft=_NUM_SFT.value,
    seed=_SEED.value,
    size=_SIZE.value,
    frames=_FRAMES.value,
    fps=_FPS.value,
    workers=_WORKERS.value,
    overwrite=_OVERWRITE.value,
  )
  try:
    out = make_data(spec)
  except ValueError as e:
    print(f"make_data: {e}", file=sys.stderr)
    return 2
  print(
    f"wrote {spec.num_train} train, {spec.num_test} test, {spec.num_sft} sft "
    f"examples to {out}"
  )
  return 0


if __name__ == "__main__":
  app.run(main)
