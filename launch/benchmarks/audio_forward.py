"""Audio tower: emojax (jit) vs transformers (torch) on the same weights.

  python launch/benchmark.py audio_forward [--layers=4] [--iters=3]

Qwen2.5-Omni's audio tower at its real width (1280, 20 heads, 128 mel
bins, 2-s chunks) with `--layers` of its 32 layers, fp32, random weights,
on four clips of 3, 8, 12 and 30 s as the processor gives them (every clip
padded to 30 s). emojax runs twice: over every chunk of the padded
features (each clip pays for 15) and over the chunks that hold frames
(`audio.real_chunks`, which `audio_lm.prepare` adds for the rollout
engine); transformers runs each clip's own chunks. Reports clips/s and
the ratios.
"""

import argparse

import jax
import numpy as np
import torch
from transformers.models.qwen2_5_omni import configuration_qwen2_5_omni as hfc
from transformers.models.qwen2_5_omni import modeling_qwen2_5_omni as hfm

from benchmarks import _common
from emojax.hf import qwen2_5_omni as hf_omni
from emojax.hf import table
from emojax.model import audio
from emojax.model.config import AudioConfig

SECONDS = (3, 8, 12, 30)


def _features(acfg: AudioConfig, seconds) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.RandomState(0)
  lens = np.asarray([100 * s for s in seconds])
  feats = rng.randn(len(lens), acfg.num_mel_bins, 3000).astype(np.float32)
  return feats, lens


def main(argv) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--layers", type=int, default=4)
  parser.add_argument("--iters", type=int, default=3)
  args = parser.parse_args(argv[1:])

  acfg = AudioConfig(encoder_layers=args.layers)
  torch.manual_seed(0)
  hf_cfg = hfc.Qwen2_5OmniAudioEncoderConfig(**hf_omni.audio_config_to_hf(acfg))
  encoder = hfm.Qwen2_5OmniAudioEncoder(hf_cfg).eval()
  state = {
    hf_omni.AUDIO_PREFIX + k: v.numpy() for k, v in encoder.state_dict().items()
  }
  entries = hf_omni.audio_entries(acfg)
  params = table.from_tensors(
    entries, state, lambda n: n, lambda e: acfg.encoder_layers
  )["audio"]
  params = jax.device_put(params)

  feats, lens = _features(acfg, SECONDS)
  encode = jax.jit(audio.encode, static_argnums=1)

  def emojax_on(x, chunks=None):
    run = lambda: encode(params, acfg, x, lens, chunks_Y=chunks)
    return lambda: run().block_until_ready()

  chunks = audio.real_chunks(acfg, lens, feats.shape[-1])
  t_padded = _common.median_seconds(emojax_on(feats), args.iters)
  t_real = _common.median_seconds(emojax_on(feats, chunks), args.iters)
  mask = np.arange(3000)[None] < lens[:, None]
  flat = torch.as_tensor(feats).permute(0, 2, 1)[torch.as_tensor(mask)].T

  def torch_fwd():
    with torch.inference_mode():
      encoder(flat.contiguous(), feature_lens=torch.as_tensor(lens))

  t_torch = _common.median_seconds(torch_fwd, args.iters)
  print(f"machine: {_common.describe()}; torch {torch.__version__}")
  print(
    f"audio tower fp32, width {acfg.d_model}, {acfg.encoder_layers} layers; "
    f"clips of {SECONDS} s padded to 30 s ({sum(SECONDS)} s of audio)"
  )
  for name, t in (
    ("emojax, 30-s padding", t_padded),
    ("emojax, real chunks", t_real),
    ("transformers", t_torch),
  ):
    print(
      f"  {name:22s} {len(SECONDS) / t:6.2f} clips/s "
      f"{sum(SECONDS) / t:7.1f} audio-s/s  ({t:.2f} s/batch)"
    )
  print(
    f"  ratio emojax/transformers: padded {t_torch / t_padded:.2f}x, "
    f"real chunks {t_torch / t_real:.2f}x"
  )
  return 0
