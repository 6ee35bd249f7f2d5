r"""Scores emotion-reasoning completions with the papers' metrics.

Score outputs produced anywhere (one JSON object per line with
`completion`, `labels`, `AUs`, optional `confidence`, `description`,
`image`):
  python launch/eval.py --predictions=preds.jsonl --out=DIR

Decode a checkpoint (emojax params checkpoint or Hugging Face folder) on a
split of a JSONL folder (Facial-R1's layout; with --config, its dataset's,
e.g. EmotionCoT's for configs/emotion_thinker.py), then score (greedy;
--num_samples=k samples k per prompt):
  python launch/eval.py --checkpoint=CKPT --data_dir=DATA --split=test \
      --out=DIR [--config=configs/facial_r1.py] [--tokenizer=TOK]

A training run's workdir (its newest checkpoint) or one of its
checkpoints/STEP folders decodes with the run's own config.json (prompt,
labels, budgets, model) and, without --data_dir, on the run's own data:
  python launch/eval.py --checkpoint=runs/facial_r1 --split=test --out=DIR
  python launch/eval.py --checkpoint=runs/facial_r1/checkpoints/140 ...
(--batch_size and --num_examples default to the run's eval settings, so
this reproduces its end-of-stage eval of that checkpoint.)

Put runs or stages side by side (eval --out folders and/or training
workdirs with TensorBoard logs):
  python launch/eval.py --compare DIR1 DIR2 ... --out=DIR

DIR gets metrics.json (flat keys), report.md, PNG plots and
completions.html (checkpoint mode also predictions.jsonl, which
--predictions re-scores).
"""

import functools
import json
import os
import sys

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from emojax import checkpoint
from emojax.data import facs, wheel
from emojax.data import tokenizer as tokenizer_lib
from emojax.data.examples import ExampleConfig
from emojax.data.tfds import facial_r1
from emojax.eval import compare, decode, html, predictions, report, score
from emojax.train import data, setup

# Own flag set, so loading this module beside other launch scripts (tests)
# cannot clash on shared names like --out.
FLAGS = flags.FlagValues()

_PREDICTIONS = flags.DEFINE_string(
  "predictions", None, "Predictions JSONL to score.", flag_values=FLAGS
)
_CHECKPOINT = flags.DEFINE_string(
  "checkpoint",
  None,
  "emojax params checkpoint, Hugging Face folder, or a training run's "
  "workdir (or its checkpoints/STEP).",
  flag_values=FLAGS,
)
_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config: decode as its end-of-stage eval does (its prompt, "
  "label list, image budget, max_len, eval.max_new_tokens, rl sampling).",
  flag_values=FLAGS,
)
_COMPARE = flags.DEFINE_bool(
  "compare", False, "Compare the folders given as arguments.", flag_values=FLAGS
)
_OUT = flags.DEFINE_string("out", None, "Output folder.", flag_values=FLAGS)
_SPLIT = flags.DEFINE_string(
  "split", "test", "Split to decode.", flag_values=FLAGS
)
_DATA_DIR = flags.DEFINE_string(
  "data_dir",
  None,
  "Facial-R1-layout folder (make_data's --out) to decode (a run "
  "checkpoint: default its own data).",
  flag_values=FLAGS,
)
_TOKENIZER = flags.DEFINE_string(
  "tokenizer",
  None,
  "Tokenizer folder (default: the checkpoint's, else "
  "emojax's default tokenizer).",
  flag_values=FLAGS,
)
_NUM_SAMPLES = flags.DEFINE_integer(
  "num_samples",
  1,
  "Completions per prompt; 1 decodes greedily.",
  flag_values=FLAGS,
)
_MAX_NEW_TOKENS = flags.DEFINE_integer(
  "max_new_tokens",
  None,
  "Tokens per completion (default: config, or 256).",
  flag_values=FLAGS,
)
_TEMPERATURE = flags.DEFINE_float(
  "temperature",
  None,
  "Sampling temperature when --num_samples > 1.",
  flag_values=FLAGS,
)
_BATCH_SIZE = flags.DEFINE_integer(
  "batch_size",
  None,
  "Prompts per batch (default: the config's eval.batch_size, else 8).",
  flag_values=FLAGS,
)
_MAX_LEN = flags.DEFINE_integer(
  "max_len",
  None,
  "Prompt tokens, image tokens included (default: config, or 2048).",
  flag_values=FLAGS,
)
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.", flag_values=FLAGS)
_NUM_EXAMPLES = flags.DEFINE_integer(
  "num_examples",
  None,
  "Decode only the split's first N rows (default: all; a run's own data: "
  "its eval.num_examples, in its end-of-stage eval's order).",
  flag_values=FLAGS,
)
_LABEL_SET = flags.DEFINE_string(
  "label_set",
  None,
  "Valid answers: a facs.LABEL_SETS key (e.g. basic7); default: the "
  "config's data.emotions, else any emotion word emojax knows.",
  flag_values=FLAGS,
)
_WHEELS_DIR = flags.DEFINE_string(
  "wheels_dir",
  None,
  "AffectGPT's wheel files for the EW metric (default: "
  "emojax's Parrott wheel).",
  flag_values=FLAGS,
)
_EMBED = flags.DEFINE_bool(
  "embed_images",
  True,
  "Embed images in completions.html (else link them).",
  flag_values=FLAGS,
)
_TITLE = flags.DEFINE_string("title", None, "Report title.", flag_values=FLAGS)


class UsageError(ValueError):
  """Flags that do not make a run; the message says which and the fix."""


def _run_checkpoint(path: str | None) -> tuple[str, int | None] | None:
  """(workdir, step or None = newest) when `path` is a training run's
  workdir or one of its checkpoints/STEP folders; else None."""
  if not path:
    return None
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  if os.path.basename(path).isdigit() and os.path.basename(parent) == (
    "checkpoints"
  ):
    return os.path.dirname(parent), int(os.path.basename(path))
  if os.path.isdir(os.path.join(path, "checkpoints")) and os.path.exists(
    os.path.join(path, "config.json")
  ):
    return path, None
  return None


@functools.cache
def _read_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"{path} is missing: a run checkpoint is read with its run's config "
      "(launch/train.py writes it); point --checkpoint at the run's "
      "workdir or pass --config."
    )
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _config() -> ml_collections.ConfigDict | None:
  """--config, else the config of the run --checkpoint comes from."""
  if _CONFIG.value is not None:
    return _CONFIG.value
  run = _run_checkpoint(_CHECKPOINT.value)
  return _read_run_config(run[0]) if run else None


def _load_model(path: str):
  """(model config, params, tokenizer, tokenizer folder or None)."""
  run = _run_checkpoint(path)
  if run is None:
    cfg, params, tok_dir = decode.load_model(path)
    tok_dir = _TOKENIZER.value or tok_dir
    tok = (
      tokenizer_lib.Tokenizer.from_dir(tok_dir)
      if tok_dir
      else tokenizer_lib.ensure_default(audio=cfg.audio is not None)
    )
    return cfg, params, tok, tok_dir
  workdir, step = run
  config = _read_run_config(workdir)
  tok = (
    tokenizer_lib.Tokenizer.from_dir(_TOKENIZER.value)
    if _TOKENIZER.value
    else setup.tokenizer(config)
  )
  cfg = setup.model_config(config, tok)
  step, params = checkpoint.restore_run_params(
    os.path.join(workdir, "checkpoints"), cfg, step
  )
  print(f"eval: {workdir} at step {step}", file=sys.stderr)
  return cfg, params, tok, _TOKENIZER.value


def _mode() -> str:
  modes = [
    name
    for name, on in (
      ("predictions", _PREDICTIONS.value),
      ("checkpoint", _CHECKPOINT.value),
      ("compare", _COMPARE.value),
    )
    if on
  ]
  if len(modes) != 1:
    raise UsageError(
      "pick exactly one of --predictions=FILE, --checkpoint=DIR or "
      f"--compare DIR1 DIR2 ... (got {modes or 'none'})."
    )
  if not _OUT.value:
    raise UsageError("--out=DIR is required.")
  if _LABEL_SET.value and _LABEL_SET.value not in facs.LABEL_SETS:
    raise UsageError(
      f"--label_set={_LABEL_SET.value!r} is unknown; choose one of "
      f"{sorted(facs.LABEL_SETS)}."
    )
  return modes[0]


def _decode_config() -> decode.DecodeConfig:
  config = _config()
  rl = config.rl if config is not None else {}
  tokens = config.eval.max_new_tokens if config is not None else 256
  if _MAX_NEW_TOKENS.value is not None:
    tokens = _MAX_NEW_TOKENS.value
  return decode.DecodeConfig(
    num_samples=_NUM_SAMPLES.value,
    max_new_tokens=tokens,
    temperature=rl.get("temperature", 1.0)
    if _TEMPERATURE.value is None
    else _TEMPERATURE.value,
    top_p=rl.get("top_p", 1.0),
    top_k=rl.get("top_k", 0),
    batch_size=_BATCH_SIZE.value
    or (config.eval.batch_size if config is not None else 8),
    seed=_SEED.value,
    on_bad_example=config.data.on_bad_example if config else "fail",
  )


def _example_config(cfg, tok_dir) -> ExampleConfig:
  """Prompts as the config's training built them (its prompt kind, label
  list, AU definitions, image budget and max_len), else Facial-R1's
  prompt with the tokenizer folder's image preprocessing."""
  config = _config()
  if config is None:
    return ExampleConfig(
      mode="rollout",
      max_len=_MAX_LEN.value or 2048,
      image=decode.image_config(cfg, tok_dir),
    )
  return data.example_config(
    cfg, config.data, "rollout", "task", "description", _MAX_LEN.value
  )


def _builder() -> tuple[type, dict]:
  """The config's dataset reader (its JSONL layout; with its clips when the
  config listens) and its arguments, else Facial-R1's."""
  config = _config()
  if config is None:
    return facial_r1.EmojaxFacialR1, {}
  kwargs = {"audio": True} if config.data.get("audio", False) else {}
  return data.BUILDERS[config.data.dataset], kwargs


def _label_set():
  if _LABEL_SET.value or _config() is None:
    return _LABEL_SET.value
  return tuple(_config().data.emotions)


def _rows() -> list[dict]:
  """The rows to decode: --data_dir's split (file order), else the run's
  own data (in its end-of-stage eval's order); the first --num_examples."""
  n = _NUM_EXAMPLES.value
  if n is not None and n < 1:
    raise UsageError(f"--num_examples={n} must be >= 1 (or left out).")
  if _DATA_DIR.value:
    builder_cls, kwargs = _builder()
    rows = decode.read_split(
      _DATA_DIR.value, _SPLIT.value, builder_cls, **kwargs
    )
    return rows[:n]
  if _run_checkpoint(_CHECKPOINT.value) is None:
    raise UsageError(
      "--checkpoint needs --data_dir=DIR (the folder launch/make_data.py "
      "wrote, or a Facial-R1 JSONL folder) unless it is a training run's "
      "workdir, whose own data are then read."
    )
  config = _config()
  source = data.builder(config.data).as_data_source(_SPLIT.value)
  n = n or config.eval.num_examples or len(source)
  return [source[i] for i in range(min(n, len(source)))]


def _checkpoint_examples(out: str) -> list[score.Example]:
  dc = _decode_config()
  if dc.num_samples < 1 or dc.max_new_tokens < 1:
    raise UsageError("--num_samples and --max_new_tokens must be >= 1.")
  cfg, params, tok, tok_dir = _load_model(_CHECKPOINT.value)
  rows = _rows()
  example = _example_config(cfg, tok_dir)
  examples = decode.decode(params, cfg, rows, tok, dc, example)
  os.makedirs(out, exist_ok=True)
  rel = [
    html.image_src(ex.image, out, i, embed=False)
    for i, ex in enumerate(examples)
  ]
  predictions.write(os.path.join(out, "predictions.jsonl"), examples, rel)
  return examples


def run(mode: str, out: str, folders: list[str]) -> str:
  """Runs one mode; returns the summary to print."""
  if mode == "compare":
    if not folders:
      raise UsageError("--compare needs folders: --compare DIR1 DIR2 ...")
    written = compare.compare(folders, out)
    return "emojax eval --compare wrote:\n" + "\n".join(
      f"  {k}: {v}" for k, v in written.items()
    )
  if mode == "predictions":
    examples = predictions.read(_PREDICTIONS.value)
    title = _TITLE.value or f"emojax eval: {_PREDICTIONS.value}"
  else:
    examples = _checkpoint_examples(out)
    title = _TITLE.value or f"emojax eval: {_CHECKPOINT.value} ({_SPLIT.value})"
  wheels = (
    wheel.load_affectgpt_wheels(_WHEELS_DIR.value)
    if _WHEELS_DIR.value
    else None
  )
  ev = score.evaluate(examples, _label_set(), wheels)
  plots = report.write(out, ev, title)
  html.write(out, examples, ev, title=title, embed=_EMBED.value, plots=plots)
  return report.summary(ev.scalars, out)


def main(argv: list[str]) -> int:
  folders = argv[1:]
  if folders and not _COMPARE.value:
    raise app.UsageError(f"unexpected arguments: {' '.join(folders)}")
  try:
    print(run(_mode(), _OUT.value, folders))
  except (UsageError, predictions.PredictionsError, FileNotFoundError) as e:
    print(f"eval: {e}", file=sys.stderr)
    return 2
  return 0


def _parse(argv: list[str]) -> list[str]:
  flags.FLAGS.mark_as_parsed()  # absl's own flags keep their defaults.
  return FLAGS(argv)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse)
