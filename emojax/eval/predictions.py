"""Predictions JSONL: completions from any system, with their gold fields.

One JSON object per line: `completion` (the model's raw output) and the
Facial-R1 fields `labels` (list of emotion words, `labels[0]` the answer),
`AUs` (e.g. ["AU6", "AU12"]), optionally `confidence` (a number in [0, 1];
otherwise read from `<confidence>` in the completion), `description` (the
reference reasoning, for ROUGE-L) and `image` (a path relative to the file,
or to `images/` beside it). Blank lines are skipped.
"""

import json
import math
import os

from emojax.data import facs
from emojax.eval.score import Example

_FIX = (
  'write one object per line like {"completion": "<think>..</think>'
  '<answer>happiness</answer>", "labels": ["happiness"], "AUs": ["AU6"]}'
)


class PredictionsError(ValueError):
  """A predictions file that cannot be scored; says where and how to fix."""


def _words(value, where: str, field: str) -> tuple[str, ...]:
  if value is None:
    return ()
  if isinstance(value, str):
    value = [value]
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    raise PredictionsError(
      f"{where}: `{field}` must be a list of strings, got {value!r}."
    )
  return tuple(value)


def _confidence(value, where: str) -> float | None:
  if value is None:
    return None
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if not ok or not math.isfinite(value) or not 0.0 <= value <= 1.0:
    raise PredictionsError(
      f"{where}: `confidence` must be a number in [0, 1] or null, got "
      f"{value!r}."
    )
  return float(value)


def _image(value, folder: str, where: str) -> str | None:
  if isinstance(value, list) and len(value) == 1:
    value = value[0]
  if not value:
    return None
  if not isinstance(value, str):
    raise PredictionsError(f"{where}: `image` must be a path, got {value!r}.")
  for base in (folder, os.path.join(folder, "images")):
    path = os.path.join(base, value)
    if os.path.exists(path):
      return os.path.abspath(path)
  raise PredictionsError(
    f"{where}: image {value!r} not found beside the file or in images/; "
    "fix the path (relative to the JSONL file) or drop the field."
  )


def parse_line(obj, folder: str, where: str) -> Example:
  """One decoded JSON line -> Example; `where` is "file:line"."""
  if not isinstance(obj, dict):
    raise PredictionsError(
      f"{where}: a JSON {type(obj).__name__}, not an object; {_FIX}."
    )
  completion = obj.get("completion")
  if not isinstance(completion, str):
    raise PredictionsError(
      f"{where}: missing string field `completion` (keys: {sorted(obj)}); "
      f"{_FIX}."
    )
  aus = _words(obj.get("AUs"), where, "AUs")
  for a in aus:
    try:
      facs.canonical_au(a)
    except ValueError as e:
      raise PredictionsError(f"{where}: `AUs`: {e}") from None
  description = obj.get("description") or ""
  if not isinstance(description, str):
    raise PredictionsError(f"{where}: `description` must be a string.")
  return Example(
    completion=completion,
    labels=_words(obj.get("labels"), where, "labels"),
    aus=aus,
    confidence=_confidence(obj.get("confidence"), where),
    description=description,
    image=_image(obj.get("image"), folder, where),
    where=where,
  )


def read(path: str) -> list[Example]:
  """Every row of a predictions JSONL file."""
  if not os.path.isfile(path):
    raise PredictionsError(f"--predictions={path}: no such file.")
  folder = os.path.dirname(os.path.abspath(path))
  out = []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, start=1):
      where = f"{path}:{n}"
      if not line.strip():
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        raise PredictionsError(
          f"{where}: malformed JSON ({e.msg} at column {e.colno}); {_FIX}."
        ) from None
      out.append(parse_line(obj, folder, where))
  if not out:
    raise PredictionsError(f"{path}: no predictions in the file; {_FIX}.")
  return out


def write(path: str, examples: list[Example], image_paths=None) -> None:
  """Writes examples in the format `read` takes; `image_paths[i]` (relative
  to the file) replaces row i's image."""
  with open(path, "w", encoding="utf-8") as f:
    for i, ex in enumerate(examples):
      obj = {
        "completion": ex.completion,
        "labels": list(ex.labels),
        "AUs": list(ex.aus),
      }
      if ex.confidence is not None:
        obj["confidence"] = ex.confidence
      if ex.description:
        obj["description"] = ex.description
      image = image_paths[i] if image_paths else ex.image
      if isinstance(image, str):
        obj["image"] = image
      f.write(json.dumps(obj, ensure_ascii=False) + "\n")
