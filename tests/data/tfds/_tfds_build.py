"""Builds an emojax tfds builder on a fixture folder; reads a split back."""

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


def png(h: int = 8, w: int = 8, value: int = 0) -> bytes:
  out = io.BytesIO()
  Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(out, "PNG")
  return out.getvalue()


def jpeg(h: int = 8, w: int = 8, value: int = 0) -> bytes:
  out = io.BytesIO()
  Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(out, "JPEG")
  return out.getvalue()


def prepare(builder_cls, manual_dir, tmp_path, **kwargs):
  builder = builder_cls(
    data_dir=str(tmp_path / "tfds"), file_format="array_record", **kwargs
  )
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  )
  return builder


def read(builder, split: str) -> list[dict]:
  """The split's examples in file order, text fields as str (the image,
  audio and video frame bytes kept)."""
  source = builder.as_data_source(split)
  rows = [source[i] for i in range(len(source))]
  rows.sort(key=lambda r: (r["source"], r["line"]))
  out = []
  for r in rows:
    d = {}
    for k, v in r.items():
      if k in ("image", "audio", "video"):
        v = list(v) if k == "video" else v
      elif isinstance(v, bytes):
        v = v.decode()
      elif isinstance(v, (list, np.ndarray)):
        v = [x.decode() if isinstance(x, bytes) else x for x in v]
      d[k] = v
    out.append(d)
  return out
