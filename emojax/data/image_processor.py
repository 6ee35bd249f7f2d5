"""Qwen2.5-VL image preprocessing in numpy/PIL (runs inside a grain map).

The steps and their order follow transformers' `Qwen2VLImageProcessorPil`
(which Qwen2.5-VL uses): convert to RGB, bicubic resize to `smart_resize`'s
size on uint8 pixels, rescale by 1/255 in float64 then cast to float32,
normalise in float32, then cut into patches in the order the vision tower
expects. Outputs equal the reference bit for bit (tests/data).
"""

import dataclasses
import io
import json
import math
import os
from typing import Literal

import numpy as np
from PIL import Image

# OPENAI_CLIP_MEAN / OPENAI_CLIP_STD, the values Qwen2.5-VL ships with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200


class ImageError(ValueError):
  """An image the preprocessing cannot (or, by policy, will not) use."""


@dataclasses.dataclass(frozen=True)
class ImageProcessorConfig:
  """Qwen2.5-VL preprocessing settings (defaults: the released model's)."""

  patch_size: int = 14  # Vision patch side, pixels.
  merge_size: int = 2  # Patches merged per side into one LLM token.
  temporal_patch_size: int = 2  # Frames per patch; a still is repeated.
  min_pixels: int = 56 * 56  # Pixel budget floor (after resize).
  max_pixels: int = 28 * 28 * 1280  # Pixel budget ceiling (after resize).
  mean: tuple[float, float, float] = CLIP_MEAN
  std: tuple[float, float, float] = CLIP_STD
  rescale_factor: float = 1 / 255
  # Outside [min_pixels, max_pixels]: 'resize' into the budget (as HF does)
  # or 'refuse' with an ImageError.
  out_of_budget: Literal["resize", "refuse"] = "resize"
  # Grayscale, RGBA, CMYK, palette...: 'convert' to RGB (alpha composited on
  # white, as HF does) or 'refuse' with an ImageError.
  wrong_channels: Literal["convert", "refuse"] = "convert"

  def __post_init__(self):
    if self.out_of_budget not in ("resize", "refuse"):
      raise ValueError(
        f"out_of_budget={self.out_of_budget!r}: use 'resize' or 'refuse'."
      )
    if self.wrong_channels not in ("convert", "refuse"):
      raise ValueError(
        f"wrong_channels={self.wrong_channels!r}: use 'convert' or 'refuse'."
      )
    if self.min_pixels > self.max_pixels:
      raise ValueError(
        f"min_pixels={self.min_pixels} > max_pixels={self.max_pixels}."
      )

  @property
  def factor(self) -> int:
    """Image sides are resized to multiples of this."""
    return self.patch_size * self.merge_size

  @classmethod
  def from_hf_dir(cls, path: str, **overrides) -> "ImageProcessorConfig":
    """Reads `path/preprocessor_config.json` (a Hugging Face model folder)."""
    file = os.path.join(path, "preprocessor_config.json")
    if not os.path.exists(file):
      raise FileNotFoundError(
        f"{file} does not exist; pass the folder of a Hugging Face "
        "Qwen2-VL/Qwen2.5-VL model (the one with preprocessor_config.json)."
      )
    with open(file, encoding="utf-8") as f:
      raw = json.load(f)
    for flag in ("do_resize", "do_rescale", "do_normalize"):
      if raw.get(flag, True) is False:
        raise ValueError(
          f"{file}: {flag}=false is not supported by emojax's Qwen2.5-VL "
          "preprocessing; remove the field or set it to true."
        )
    if raw.get("resample", 3) != 3:
      raise ValueError(
        f"{file}: resample={raw['resample']} is not supported; only 3 "
        "(bicubic, the Qwen2.5-VL default) is."
      )
    size = raw.get("size") or {}
    kwargs = {
      "patch_size": raw.get("patch_size"),
      "merge_size": raw.get("merge_size"),
      "temporal_patch_size": raw.get("temporal_patch_size"),
      "min_pixels": raw.get("min_pixels", size.get("shortest_edge")),
      "max_pixels": raw.get("max_pixels", size.get("longest_edge")),
      "mean": _triple(raw.get("image_mean"), file, "image_mean"),
      "std": _triple(raw.get("image_std"), file, "image_std"),
      "rescale_factor": raw.get("rescale_factor"),
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    kwargs.update(overrides)
    return cls(**kwargs)


def _triple(value, file: str, field: str) -> tuple[float, ...] | None:
  if value is None:
    return None
  if isinstance(value, (int, float)):
    value = [value] * 3
  if len(value) != 3:
    raise ValueError(f"{file}: {field} must have 3 values, got {value}.")
  return tuple(float(v) for v in value)


def smart_resize(
  height: int,
  width: int,
  factor: int = 28,
  min_pixels: int = 56 * 56,
  max_pixels: int = 28 * 28 * 1280,
) -> tuple[int, int]:
  """Sides that are multiples of `factor`, within the pixel budget.

  Keeps the aspect ratio as closely as possible (Qwen2-VL's rule).
  """
  if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
    raise ImageError(
      f"image {height}x{width} has aspect ratio above {MAX_ASPECT_RATIO}; "
      "crop it before use."
    )
  h_bar = round(height / factor) * factor
  w_bar = round(width / factor) * factor
  if h_bar * w_bar > max_pixels:
    beta = math.sqrt((height * width) / max_pixels)
    h_bar = max(factor, math.floor(height / beta / factor) * factor)
    w_bar = max(factor, math.floor(width / beta / factor) * factor)
  elif h_bar * w_bar < min_pixels:
    beta = math.sqrt(min_pixels / (height * width))
    h_bar = math.ceil(height * beta / factor) * factor
    w_bar = math.ceil(width * beta / factor) * factor
  return h_bar, w_bar


def num_image_tokens(image_grid_thw, merge_size: int) -> int:
  """How many `<|image_pad|>` tokens stand for one image in the prompt."""
  t, h, w = (int(v) for v in image_grid_thw)
  return t * h * w // (merge_size * merge_size)


def to_rgb(image, cfg: ImageProcessorConfig) -> np.ndarray:
  """uint8 [H, W, 3] from a PIL image, encoded bytes or a uint8 array."""
  if isinstance(image, (bytes, bytearray)):
    image = decode(image)
  if isinstance(image, Image.Image):
    if image.mode == "RGB":
      return np.asarray(image)
    if cfg.wrong_channels == "refuse":
      raise ImageError(
        f"image mode {image.mode!r} is not RGB and wrong_channels='refuse'; "
        "convert the file to RGB or set wrong_channels='convert'."
      )
    if "A" in image.getbands() or "transparency" in image.info:
      rgba = image.convert("RGBA")
      white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
      return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))
  return _array_to_rgb(np.asarray(image), cfg)


def _array_to_rgb(image: np.ndarray, cfg: ImageProcessorConfig) -> np.ndarray:
  if image.dtype != np.uint8:
    raise ImageError(
      f"image array has dtype {image.dtype}; pass uint8 [H, W, C] pixels "
      "(0..255) or a PIL image."
    )
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ImageError(
      f"image array has shape {image.shape}; expected [H, W] or [H, W, C] "
      "with C in (1, 3, 4), channels last."
    )
  channels = image.shape[-1]
  if channels == 3:
    return image
  if cfg.wrong_channels == "refuse":
    raise ImageError(
      f"image has {channels} channel(s), not 3, and wrong_channels="
      "'refuse'; convert it to RGB or set wrong_channels='convert'."
    )
  if channels == 1:
    return np.repeat(image, 3, axis=-1)
  alpha = image[..., 3:4] / 255
  composite = alpha * image[..., :3] + (1 - alpha) * 255
  return np.round(composite).astype(np.uint8)


def decode(data: bytes) -> Image.Image:
  """Decodes PNG/JPEG/... bytes, raising ImageError on a corrupt file."""
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except Exception as e:  # PIL raises many types for bad files.
    raise ImageError(f"cannot decode image ({len(data)} bytes): {e}") from e
  return image


def _check_budget(height: int, width: int, cfg: ImageProcessorConfig):
  pixels = height * width
  if cfg.out_of_budget == "refuse" and not (
    cfg.min_pixels <= pixels <= cfg.max_pixels
  ):
    side = "below min_pixels" if pixels < cfg.min_pixels else "above max_pixels"
    bound = cfg.min_pixels if pixels < cfg.min_pixels else cfg.max_pixels
    raise ImageError(
      f"image {height}x{width} = {pixels} pixels is {side}={bound} and "
      "out_of_budget='refuse'; resize the image or set "
      "out_of_budget='resize' to let preprocessing rescale it."
    )


def patchify(
  image_CHW: np.ndarray, cfg: ImageProcessorConfig
) -> tuple[np.ndarray, np.ndarray]:
  """[C, H, W] -> pixel_values_NC [N, C*tp*p*p], image_grid_thw [3].

  Patches are ordered merge-window by merge-window (row-major over windows,
  then row-major inside each window) so the vision tower can merge each
  consecutive group of merge_size**2 patches into one token.
  """
  c, h, w = image_CHW.shape
  p, m, tp = cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size
  grid_h, grid_w = h // p, w // p
  x = image_CHW.reshape(c, grid_h // m, m, p, grid_w // m, m, p)
  x = x.transpose(1, 4, 2, 5, 0, 3, 6)  # gh, gw, mh, mw, C, ph, pw
  # A still image is its own second frame: repeat it along time.
  x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], tp, p, p))
  pixel_values_NC = x.reshape(grid_h * grid_w, c * tp * p * p)
  image_grid_thw = np.array([1, grid_h, grid_w], dtype=np.int64)
  return pixel_values_NC, image_grid_thw


def preprocess(
  image, cfg: ImageProcessorConfig = ImageProcessorConfig()
) -> tuple[np.ndarray, np.ndarray]:
  """One image -> (pixel_values_NC float32, image_grid_thw int64 [3]).

  `image` is a PIL image, encoded bytes, or a uint8 array [H, W(, C)].
  """
  rgb_HWC = to_rgb(image, cfg)
  size = resized_size(*rgb_HWC.shape[:2], cfg)
  return patchify(resize_and_normalize(rgb_HWC, size, cfg), cfg)


def resized_size(
  height: int, width: int, cfg: ImageProcessorConfig
) -> tuple[int, int]:
  """(new_h, new_w) an image of this size is resized to, after the budget
  policy (`out_of_budget`) is applied."""
  _check_budget(height, width, cfg)
  return smart_resize(height, width, cfg.factor, cfg.min_pixels, cfg.max_pixels)


def resize_and_normalize(
  rgb_HWC: np.ndarray, size: tuple[int, int], cfg: ImageProcessorConfig
) -> np.ndarray:
  """uint8 [H, W, 3] -> float32 [C, new_h, new_w]: bicubic resize to `size`
  (new_h, new_w) on uint8 pixels, rescale, normalise."""
  new_h, new_w = size
  resized = Image.fromarray(rgb_HWC).resize(
    (new_w, new_h), resample=Image.Resampling.BICUBIC
  )
  pixels_HWC = np.asarray(resized).astype(np.float64) * cfg.rescale_factor
  pixels_HWC = pixels_HWC.astype(np.float32)
  mean_C = np.asarray(cfg.mean, dtype=np.float32)
  std_C = np.asarray(cfg.std, dtype=np.float32)
  pixels_HWC = (pixels_HWC - mean_C) / std_C
  return pixels_HWC.transpose(2, 0, 1)
