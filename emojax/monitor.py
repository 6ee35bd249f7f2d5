"""Training logs: clu metric writers (TensorBoard + console), progress,
and completions tables as HTML and TensorBoard text.

Takes plain dicts and numbers; imports nothing above it.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from clu import metric_writers
from PIL import Image


class Monitor:
  """One writer per run; `step` is the global step across stages."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.main = jax.process_index() == 0
    self.writer = metric_writers.create_default_writer(
      os.path.join(workdir, "tensorboard"),
      just_logging=not self.main,
      asynchronous=False,
    )
    self._last = None  # (time, step) of the last rate measurement

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    now = time.perf_counter()
    values = dict(values)
    if self._last is not None and step > self._last[1]:
      values["steps_per_sec"] = (step - self._last[1]) / (now - self._last[0])
    self._last = (now, step)
    self.writer.write_scalars(step, values)

  def completions(
    self,
    step: int,
    stage: str,
    rows: Sequence[Mapping],
    images: Sequence[np.ndarray | None] = (),
  ) -> str | None:
    """Writes `completions/<stage>-<step>.html` and a TensorBoard table."""
    if not self.main or not rows:
      return None
    folder = os.path.join(self.workdir, "completions")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{stage}-{step:06d}.html")
    with open(path, "w") as f:
      f.write(completions_html(f"{stage}, step {step}", rows, images))
    self.writer.write_texts(step, {f"completions/{stage}": _markdown(rows)})
    return path

  def flush(self) -> None:
    self.writer.flush()


def _thumbnail(image: np.ndarray | None) -> str:
  if image is None:
    return ""
  buf = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
  data = base64.b64encode(buf.getvalue()).decode()
  return f'<img src="data:image/png;base64,{data}" width="96">'


def completions_html(title: str, rows, images=()) -> str:
  """A self-contained table: face, prompt, completion, reward parts."""
  keys = [k for k in rows[0] if k not in ("completion", "prompt")]
  head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
  body = []
  for i, row in enumerate(rows):
    image = images[i] if i < len(images) else None
    cells = "".join(f"<td>{html.escape(_fmt(row[k]))}</td>" for k in keys)
    body.append(
      f"<tr><td>{_thumbnail(image)}</td>"
      f"<td><pre>{html.escape(str(row.get('completion', '')))}</pre></td>"
      f"{cells}</tr>"
    )
  return (
    "<!doctype html><meta charset='utf-8'>"
    f"<title>{html.escape(title)}</title>"
    "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;"
    "padding:4px;vertical-align:top}pre{white-space:pre-wrap;margin:0;"
    "max-width:60em}</style>"
    f"<h2>{html.escape(title)}</h2><table><tr><th>face</th>"
    f"<th>completion</th>{head}</tr>{''.join(body)}</table>"
  )


def _fmt(value) -> str:
  if isinstance(value, float):
    return f"{value:.3f}"
  if isinstance(value, (list, tuple)):
    return ", ".join(map(str, value))
  return str(value)


def _markdown(rows) -> str:
  keys = list(rows[0])
  lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
  for row in rows:
    cells = [_fmt(row[k]).replace("|", "\\|").replace("\n", " ") for k in keys]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
