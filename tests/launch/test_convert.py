"""launch/convert.py both ways, as a user runs it."""

import os
import subprocess
import sys

import numpy as np
import tiny_hf
import transformers

from emojax import checkpoint
from emojax.hf import safetensors_io

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _run(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  return subprocess.run(
    [sys.executable, os.path.join(ROOT, "launch", "convert.py"), *args],
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )


def test_hf_to_emojax_to_hf(tmp_path):
  model = tiny_hf.qwen2()
  src = tiny_hf.save(model, tmp_path / "hf")
  (tmp_path / "hf" / "tokenizer_config.json").write_text('{"x": 1}')
  r = _run(f"--from_hf={src}", f"--to={tmp_path / 'ck'}")
  assert r.returncode == 0, r.stderr[-2000:]
  cfg, params = checkpoint.load_params(str(tmp_path / "ck"))
  assert cfg.family == "qwen2" and cfg.num_layers == 2

  r = _run(f"--from={tmp_path / 'ck'}", f"--to_hf={tmp_path / 'out'}")
  assert r.returncode == 0, r.stderr[-2000:]
  out = tmp_path / "out"
  assert (out / "tokenizer_config.json").read_text() == '{"x": 1}'
  a = safetensors_io.index(src)
  b = safetensors_io.index(str(out))
  for name in a:
    assert (
      np.asarray(safetensors_io.read(a[name])).tobytes()
      == np.asarray(safetensors_io.read(b[name])).tobytes()
    )
  transformers.Qwen2ForCausalLM.from_pretrained(str(out))


def test_usage_error_names_the_flags(tmp_path):
  r = _run(f"--to={tmp_path}")
  assert r.returncode != 0
  assert "--from_hf=DIR --to=CKPT_DIR" in r.stderr


def test_not_a_checkpoint(tmp_path):
  r = _run(f"--from={tmp_path}", f"--to_hf={tmp_path / 'out'}")
  assert r.returncode != 0
  assert "not an emojax params checkpoint" in r.stderr
