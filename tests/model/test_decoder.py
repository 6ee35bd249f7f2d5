"""Text decoder parity with transformers, padding, layouts and KV cache."""

import jax
import numpy as np
import pytest
import tiny_hf

import emojax.hf
from emojax.model import decoder, kv_cache
from emojax.model import model as model_lib


def _batch(seed=0, B=3, T=11, vocab=128, left=True):
  rng = np.random.RandomState(seed)
  ids = rng.randint(1, vocab, (B, T))
  mask = np.ones((B, T), np.int32)
  if left:
    mask[1, :4] = 0  # left padded row
  mask[2, T - 3 :] = 0  # right padded row
  ids = ids * mask
  pos = np.maximum(np.cumsum(mask, 1) - 1, 0) * mask
  return ids, mask, pos


@pytest.mark.parametrize(
  "make", [tiny_hf.qwen2, lambda: tiny_hf.qwen2(tie=True), tiny_hf.llama]
)
def test_logits_match_transformers(make, tmp_path):
  hf_model = make()
  cfg, params = emojax.hf.load(tiny_hf.save(hf_model, tmp_path))
  ids, mask, pos = _batch()
  want = tiny_hf.logits(hf_model, ids, mask, pos)
  got = jax.jit(model_lib.forward, static_argnums=1)(
    params, cfg, {"input_ids": ids, "attention_mask": mask}
  )
  real = mask > 0
  np.testing.assert_array_less(np.abs(np.asarray(got) - want)[real], 1e-4)


def test_padding_does_not_change_real_tokens(tmp_path):
  cfg, params = emojax.hf.load(tiny_hf.save(tiny_hf.qwen2(), tmp_path))
  ids, mask, _ = _batch(left=True)
  fwd = jax.jit(model_lib.forward, static_argnums=1)
  padded = np.asarray(
    fwd(params, cfg, {"input_ids": ids, "attention_mask": mask})
  )
  row = ids[1:2, 4:]
  alone = np.asarray(fwd(params, cfg, {"input_ids": row}))
  np.testing.assert_allclose(padded[1, 4:], alone[0], atol=1e-5)


def test_unrolled_and_remat_equal_scan(tmp_path):
  cfg, params = emojax.hf.load(tiny_hf.save(tiny_hf.qwen2(), tmp_path))
  ids, mask, _ = _batch()
  batch = {"input_ids": ids, "attention_mask": mask}
  base = model_lib.forward(params, cfg, batch)
  for variant in (cfg.replace(scan_layers=False), cfg.replace(remat=True)):
    np.testing.assert_allclose(
      model_lib.forward(params, variant, batch), base, atol=1e-5
    )


@pytest.mark.parametrize("scan", [True, False])
def test_kv_cache_prefill_then_decode_equals_full_forward(tmp_path, scan):
  cfg, params = emojax.hf.load(tiny_hf.save(tiny_hf.qwen2(), tmp_path))
  cfg = cfg.replace(scan_layers=scan)
  ids, mask, pos = _batch(T=10)
  mask[2] = 1  # decode needs real tokens at the end of every row
  pos = np.maximum(np.cumsum(mask, 1) - 1, 0) * mask
  full = model_lib.forward(
    params, cfg, {"input_ids": ids, "attention_mask": mask}
  )
  cache = kv_cache.init(cfg, batch_size=3, max_len=16)
  P = 6  # prefill 6 tokens, then decode the remaining 4 one at a time
  x = decoder.embed_tokens(params, cfg, ids[:, :P])
  h, cache = decoder.run_layers(params, cfg, x, pos[:, :P], mask[:, :P], cache)
  outs = [decoder.unembed(params, cfg, h)]
  for t in range(P, 10):
    x = decoder.embed_tokens(params, cfg, ids[:, t : t + 1])
    h, cache = decoder.run_layers(
      params, cfg, x, pos[:, t : t + 1], mask[:, t : t + 1], cache
    )
    outs.append(decoder.unembed(params, cfg, h))
  got = np.concatenate([np.asarray(o) for o in outs], axis=1)
  real = mask > 0
  np.testing.assert_allclose(got[real], np.asarray(full)[real], atol=1e-5)
  assert int(cache.index) == 10


def test_cudnn_refuses_on_cpu(tmp_path):
  cfg, params = emojax.hf.load(tiny_hf.save(tiny_hf.qwen2(), tmp_path))
  ids, mask, _ = _batch()
  with pytest.raises(ValueError, match="needs an NVIDIA GPU"):
    model_lib.forward(
      params, cfg.replace(attention="cudnn"), {"input_ids": ids}
    )


def test_bf16_compute_close_to_fp32(tmp_path):
  cfg, params = emojax.hf.load(tiny_hf.save(tiny_hf.qwen2(), tmp_path))
  ids, mask, _ = _batch()
  batch = {"input_ids": ids, "attention_mask": mask}
  f32 = np.asarray(model_lib.forward(params, cfg, batch))
  b16 = model_lib.forward(params, cfg.replace(dtype="bfloat16"), batch)
  assert b16.dtype == np.float32  # logits accumulate in fp32
  real = mask > 0
  err = np.abs(np.asarray(b16) - f32)[real]
  assert err.max() < 0.1 * np.abs(f32[real]).max()
  assert err.max() > 0  # really computed in bf16
