"""The Qwen2.5-VL vision tower as pure functions over a ParamSpec tree.

Images arrive packed, in transformers' layout: `pixel_values_NC` holds every
patch of every image in the batch (N patches; C = in_channels x
temporal_patch x patch x patch flattened pixels), and `image_grid_thw` gives
each image's (t, h, w) patch grid. Rows are ordered block-major over
spatial-merge blocks, as the image processor writes them.

What depends on the grids alone (window permutation, segment ids, rotary
positions) is computed once on the host by `layout`, exactly as transformers'
`get_vision_window_index` / `get_vision_cu_seqlens` do; the jitted `encode`
then attends over the packed sequence through segment ids, so several images
of different sizes share one compiled program and no per-image loop.

Inside this file D is the vision width, F its MLP width, H/E its heads and
head dim, M = D x merge^2 the merger width, O the language model's width and
U the merged tokens (one per merge^2 patches, i.e. per LM image token).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emojax import sharding
from emojax.model import attention, swiglu
from emojax.model import params as params_lib
from emojax.model.config import VisionConfig

ParamSpec = params_lib.ParamSpec

# Qwen2.5-VL's vision rotary base; transformers hard-wires it too.
ROPE_THETA = 10000.0
# The block and merger norms use a fixed epsilon in transformers.
NORM_EPS = 1e-6


def patch_dim(vcfg: VisionConfig) -> int:
  """Flattened pixels per patch (the C of `pixel_values_NC`)."""
  return vcfg.in_channels * vcfg.temporal_patch_size * vcfg.patch_size**2


def specs(vcfg: VisionConfig, out_dim: int, dtype="float32") -> dict:
  """ParamSpecs of the tower and its merger; `out_dim` is the LM width."""
  D, F, H, E = (
    vcfg.hidden_size,
    vcfg.intermediate_size,
    vcfg.num_heads,
    vcfg.head_dim,
  )
  L, C, M = vcfg.depth, patch_dim(vcfg), D * vcfg.spatial_merge_size**2
  w = params_lib.normal(0.02)
  zeros, ones = params_lib.zeros, params_lib.ones

  def spec(shape, axes, init=w):
    return ParamSpec(tuple(shape), dtype, tuple(axes), init)

  layer = {
    "norm1_D": spec((L, D), ("layers", "norm"), ones),
    "norm2_D": spec((L, D), ("layers", "norm"), ones),
    "qkv_D3HE": spec(
      (L, D, 3, H, E),
      ("layers", "vision_embed", None, "vision_heads", "head_dim"),
    ),
    "qkv_bias_3HE": spec(
      (L, 3, H, E), ("layers", None, "vision_heads", "head_dim"), zeros
    ),
    "out_HED": spec(
      (L, H, E, D), ("layers", "vision_heads", "head_dim", "vision_embed")
    ),
    "out_bias_D": spec((L, D), ("layers", "norm"), zeros),
    "gate_DF": spec((L, D, F), ("layers", "vision_embed", "vision_mlp")),
    "gate_bias_F": spec((L, F), ("layers", "vision_mlp"), zeros),
    "up_DF": spec((L, D, F), ("layers", "vision_embed", "vision_mlp")),
    "up_bias_F": spec((L, F), ("layers", "vision_mlp"), zeros),
    "down_FD": spec((L, F, D), ("layers", "vision_mlp", "vision_embed")),
    "down_bias_D": spec((L, D), ("layers", "norm"), zeros),
  }
  return {
    "patch_embed_CD": spec((C, D), (None, "vision_embed")),
    "layers": layer,
    "merger": {
      "norm_D": spec((D,), ("norm",), ones),
      "fc1_MM": spec((M, M), ("vision_embed", "vision_mlp")),
      "fc1_bias_M": spec((M,), ("vision_mlp",), zeros),
      "fc2_MO": spec((M, out_dim), ("vision_mlp", "embed")),
      "fc2_bias_O": spec((out_dim,), ("norm",), zeros),
    },
  }


def num_merged_tokens(vcfg: VisionConfig, grid_thw) -> np.ndarray:
  """Language-model tokens per image: t * h * w / merge^2."""
  grid = np.asarray(grid_thw, np.int64).reshape(-1, 3)
  return grid.prod(-1) // vcfg.spatial_merge_size**2


def check_inputs(vcfg: VisionConfig, pixel_values, grid_thw) -> None:
  """Raises a readable error for pixels or grids the tower cannot take."""
  pixels = np.shape(pixel_values)
  grid = np.asarray(grid_thw)
  C, m = patch_dim(vcfg), vcfg.spatial_merge_size
  if len(pixels) != 2 or pixels[1] != C:
    per_channel = vcfg.temporal_patch_size * vcfg.patch_size**2
    got = (
      f"{pixels[1] / per_channel:g} channel(s)"
      if len(pixels) == 2
      else f"rank {len(pixels)}"
    )
    raise ValueError(
      f"pixel_values has shape {pixels}; the vision tower wants "
      f"[num_patches, {C}] ({vcfg.in_channels} channels x temporal "
      f"{vcfg.temporal_patch_size} x {vcfg.patch_size}x{vcfg.patch_size} "
      f"patches), got {got}. Convert images to "
      f"{vcfg.in_channels}-channel RGB (PIL `.convert('RGB')`) and run them "
      "through emojax.data.image_processor first."
    )
  if grid.ndim != 2 or grid.shape[1] != 3:
    raise ValueError(
      f"image_grid_thw has shape {grid.shape}; it must be [num_images, 3] "
      "(t, h, w patches per image), as the image processor returns it."
    )
  for i, (t, h, w) in enumerate(grid.tolist()):
    if t < 1 or h % m or w % m or h < m or w < m:
      raise ValueError(
        f"image_grid_thw[{i}] = {(t, h, w)}: h and w must be positive "
        f"multiples of spatial_merge_size={m} and t >= 1. Resize the image "
        f"to a multiple of {vcfg.patch_size * m} pixels per side."
      )
  total = int(grid.prod(-1).sum())
  if total != pixels[0]:
    raise ValueError(
      f"pixel_values has {pixels[0]} patches but image_grid_thw "
      f"{grid.tolist()} describes {total}. Pass the grids that came with "
      "these pixels, in the same image order."
    )


def layout(vcfg: VisionConfig, grid_thw, num_patches: int | None = None):
  """Host-side, grid-only inputs of `encode`, as transformers builds them.

  Returns a dict of numpy arrays over the (optionally padded) packed patch
  axis: `perm_N` (window order: transformers' window_index expanded to
  patches), `full_segment_N` and `window_segment_N` (1-based segment of each
  patch in window order, for full and windowed layers; 0 = padding),
  `pos_N2` (h, w rotary positions in window order) and `unperm_U` (restores
  the merged tokens' image order). Padding to `num_patches` lets batches of
  different image sizes share one compiled program.
  """
  grid = np.asarray(grid_thw, np.int64).reshape(-1, 3)
  unit = vcfg.spatial_merge_size**2
  window_index, window_sizes, frame_sizes, pos = [], [], [], []
  offset = 0
  for t, h, w in grid.tolist():
    index, sizes = _windows(vcfg, t, h, w)
    window_index.append(index + offset)
    window_sizes.append(sizes * unit)
    frame_sizes.extend([h * w] * t)
    offset += len(index)
    pos.append(_patch_positions(vcfg.spatial_merge_size, t, h, w))
  window_index = np.concatenate(window_index)
  n = len(window_index) * unit
  perm = (window_index[:, None] * unit + np.arange(unit)).reshape(-1)
  # Zero-length windows (padding-only) vanish, as unique_consecutive does.
  window_segment = _segments(np.concatenate(window_sizes))
  full_segment = _segments(np.asarray(frame_sizes))
  num_patches = n if num_patches is None else num_patches
  if num_patches < n or num_patches % unit:
    raise ValueError(
      f"num_patches={num_patches} must be a multiple of {unit} and at "
      f"least the {n} patches of image_grid_thw {grid.tolist()}; raise "
      "the patch budget."
    )
  pad = num_patches - n
  # Windows keep frames contiguous, so frame ids survive the permutation.
  full_segment = np.pad(full_segment, (0, pad))
  window_segment = np.pad(window_segment, (0, pad))
  full_gather_SL, full_inverse_N = _blocks(full_segment)
  window_gather_SL, window_inverse_N = _blocks(window_segment)
  return {
    "perm_N": np.concatenate([perm, np.arange(n, num_patches)]),
    "full_segment_N": full_segment,
    "window_segment_N": window_segment,
    "full_gather_SL": full_gather_SL,
    "full_inverse_N": full_inverse_N,
    "window_gather_SL": window_gather_SL,
    "window_inverse_N": window_inverse_N,
    "pos_N2": np.pad(np.concatenate(pos)[perm], ((0, pad), (0, 0))),
    "unperm_U": np.concatenate(
      [
        np.argsort(window_index, kind="stable"),
        np.arange(len(window_index), num_patches // unit),
      ]
    ),
  }


def _windows(vcfg: VisionConfig, t: int, h: int, w: int):
  """One image's merge blocks in window order, and each window's size.

  As transformers: the merged grid is padded up to whole windows (always
  by at least one row/column, so some windows may be empty) and read
  window by window, frame-major.
  """
  m = vcfg.spatial_merge_size
  window = vcfg.window_size // m // vcfg.patch_size
  gh, gw = h // m, w // m
  index = np.arange(t * gh * gw).reshape(t, gh, gw)
  pad_h, pad_w = window - gh % window, window - gw % window
  nh, nw = (gh + pad_h) // window, (gw + pad_w) // window
  padded = np.pad(index, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=-1)
  padded = padded.reshape(t, nh, window, nw, window)
  padded = padded.transpose(0, 1, 3, 2, 4).reshape(t * nh * nw, -1)
  flat = padded.reshape(-1)
  return flat[flat >= 0], (padded >= 0).sum(-1)


def _patch_positions(m: int, t: int, h: int, w: int) -> np.ndarray:
  """(row, column) of each patch, block-major over merge blocks: [N, 2]."""
  hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  hh = hh.reshape(h // m, m, w // m, m).transpose(0, 2, 1, 3).reshape(-1)
  ww = ww.reshape(h // m, m, w // m, m).transpose(0, 2, 1, 3).reshape(-1)
  return np.tile(np.stack([hh, ww], -1), (t, 1))


def _blocks(segment_N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Segments as padded rows, so attention costs sum(L^2) and not N^2.

  `gather_SL[s, l]` is the packed index of segment s's l-th patch (N, an
  appended zero row, past its end); `inverse_N[n]` is where patch n sits in
  the flattened [S * L] rows (S * L, a zero row, for padding patches).
  """
  n = len(segment_N)
  # Padding (segment 0) only trails, so indices into the nonzero part are
  # indices into segment_N.
  ids, starts, sizes = np.unique(
    segment_N[segment_N > 0], return_index=True, return_counts=True
  )
  width = int(sizes.max()) if len(ids) else 1
  gather = np.full((max(len(ids), 1), width), n, np.int32)
  inverse = np.full(n, gather.size, np.int32)
  for s, (start, size) in enumerate(zip(starts, sizes, strict=True)):
    gather[s, :size] = np.arange(start, start + size)
    inverse[start : start + size] = s * width + np.arange(size)
  return gather, inverse


def _segments(sizes: np.ndarray) -> np.ndarray:
  """1-based segment id of each element, for consecutive `sizes`."""
  return np.repeat(np.arange(1, len(sizes) + 1), sizes).astype(np.int32)


def encode(
  params: dict,
  vcfg: VisionConfig,
  pixel_values_NC: jax.Array,
  layout_arrays: dict,
  dtype=jnp.float32,
  impl: str = "xla",
) -> jax.Array:
  """Merged image features `out_UO` in image order (U = N / merge^2).

  `layout_arrays` is `layout(...)`'s dict (numpy or device arrays); `impl`
  picks the attention implementation (`ModelConfig.attention`).
  """
  with jax.named_scope("vision"):
    perm_N = layout_arrays["perm_N"]
    x_ND = pixel_values_NC.astype(dtype) @ params["patch_embed_CD"].astype(
      dtype
    )
    x_ND = sharding.constrain(x_ND[perm_N], ("patches", "act_embed"))
    cos_NE, sin_NE = rotary(vcfg, layout_arrays["pos_N2"])
    full = (layout_arrays["full_gather_SL"], layout_arrays["full_inverse_N"])
    window = (
      layout_arrays["window_gather_SL"],
      layout_arrays["window_inverse_N"],
    )
    is_full_L = np.isin(np.arange(vcfg.depth), vcfg.fullatt_block_indexes)

    def body(x_ND, xs):
      layer, is_full = xs
      x_ND = jax.lax.cond(
        is_full,
        lambda x: block(layer, vcfg, x, cos_NE, sin_NE, full, dtype, impl),
        lambda x: block(layer, vcfg, x, cos_NE, sin_NE, window, dtype, impl),
        x_ND,
      )
      return x_ND, None

    x_ND, _ = jax.lax.scan(
      body, x_ND, (params["layers"], jnp.asarray(is_full_L))
    )
    out_UO = merge(params["merger"], vcfg, x_ND, dtype)
    return out_UO[layout_arrays["unperm_U"]]


def rotary(vcfg: VisionConfig, pos_N2) -> tuple[jax.Array, jax.Array]:
  """2-D rotary tables: h angles then w angles, repeated (rotate_half)."""
  quarter = vcfg.head_dim // 2
  inv_freq = 1.0 / (
    ROPE_THETA ** (jnp.arange(0, quarter, 2, dtype=jnp.float32) / quarter)
  )
  angles_N2Q = (
    jnp.asarray(pos_N2, jnp.float32)[..., None] * inv_freq[None, None]
  )
  angles_NE = angles_N2Q.reshape(angles_N2Q.shape[0], -1)
  angles_NE = jnp.concatenate([angles_NE, angles_NE], -1)
  return jnp.cos(angles_NE), jnp.sin(angles_NE)


def rms_norm(x, scale, eps: float = NORM_EPS):
  """RMSNorm over [N, D] in fp32, scaled after casting back (as HF)."""
  x32 = x.astype(jnp.float32)
  x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + eps)
  return scale.astype(x.dtype)[None] * x32.astype(x.dtype)


def _rotate(x_NHE, cos_NE, sin_NE):
  x32 = x_NHE.astype(jnp.float32)
  x1, x2 = jnp.split(x32, 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], -1)
  out = x32 * cos_NE[:, None] + rotated * sin_NE[:, None]
  return out.astype(x_NHE.dtype)


def block(layer, vcfg, x_ND, cos_NE, sin_NE, blocks, dtype, impl):
  """One pre-norm block: attention within segments, then SwiGLU MLP.

  `blocks` is a segment layout's (gather_SL, inverse_N) from `layout`.
  """
  p = jax.tree.map(lambda a: a.astype(dtype), layer)
  h_ND = rms_norm(x_ND, p["norm1_D"])
  x_ND = x_ND + _attention(p, vcfg, h_ND, cos_NE, sin_NE, blocks, impl)
  h_ND = rms_norm(x_ND, p["norm2_D"])
  return x_ND + swiglu.swiglu_mlp(
    h_ND,
    p["gate_DF"],
    p["up_DF"],
    p["down_FD"],
    b_gate_F=p["gate_bias_F"],
    b_up_F=p["up_bias_F"],
    b_down_D=p["down_bias_D"],
    act_axes=("patches", "vision_mlp"),
  )


def _attention(p, vcfg, h_ND, cos_NE, sin_NE, blocks, impl):
  """Bidirectional attention within each segment (window or frame).

  Segments are contiguous after the window permutation; they are gathered
  into padded rows [S, L] and attended row by row, so the cost is
  sum over segments of L^2, not N^2 over the packed axis.
  """
  qkv_N3HE = jnp.einsum("nd,dthe->nthe", h_ND, p["qkv_D3HE"])
  qkv_N3HE = qkv_N3HE + p["qkv_bias_3HE"][None]
  qkv_N3HE = sharding.constrain(
    qkv_N3HE, ("patches", None, "vision_heads", "head_dim")
  )
  q_NHE = _rotate(qkv_N3HE[:, 0], cos_NE, sin_NE)
  k_NHE = _rotate(qkv_N3HE[:, 1], cos_NE, sin_NE)
  v_NHE = qkv_N3HE[:, 2]
  gather_SL, inverse_N = (jnp.asarray(a) for a in blocks)
  S, L = gather_SL.shape
  N = h_ND.shape[0]

  def rows(x_NHE):  # [N, H, E] -> [S, L, H, E], zeros past each segment
    return jnp.concatenate([x_NHE, jnp.zeros_like(x_NHE[:1])])[gather_SL]

  valid_SL = (gather_SL < N).astype(jnp.int32)
  index_SL = jnp.zeros_like(valid_SL)
  o_SLHE = attention.attend(
    rows(q_NHE),
    rows(k_NHE),
    rows(v_NHE),
    q_segment_BT=valid_SL,
    kv_segment_BS=valid_SL,
    q_index_BT=index_SL,
    kv_index_BS=index_SL,
    causal=False,
    impl=impl,
  )
  o_XHE = o_SLHE.reshape(S * L, *o_SLHE.shape[2:])
  o_NHE = jnp.concatenate([o_XHE, jnp.zeros_like(o_XHE[:1])])[inverse_N]
  return jnp.einsum("nhe,hed->nd", o_NHE, p["out_HED"]) + p["out_bias_D"][None]


def merge(p, vcfg, x_ND, dtype):
  """Patch merger: norm, group merge^2 neighbours, 2-layer GELU MLP."""
  p = jax.tree.map(lambda a: a.astype(dtype), p)
  unit = vcfg.spatial_merge_size**2
  h_ND = rms_norm(x_ND, p["norm_D"])
  h_UM = h_ND.reshape(-1, unit * h_ND.shape[-1])
  h_UM = h_UM @ p["fc1_MM"] + p["fc1_bias_M"][None]
  h_UM = jax.nn.gelu(h_UM, approximate=False)
  return h_UM @ p["fc2_MO"] + p["fc2_bias_O"][None]
