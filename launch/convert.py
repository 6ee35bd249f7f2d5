r"""Converts between Hugging Face folders and emojax checkpoints.

  python launch/convert.py --from_hf=/ckpt/Qwen2.5-7B-Instruct --to=/ckpt/q7
  python launch/convert.py --from=/ckpt/q7 --to_hf=/out/hf [--dtype=bfloat16]

Both directions check everything before writing and write atomically.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import emojax.hf  # noqa: E402
from emojax import checkpoint  # noqa: E402
from emojax.hf import exporter  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("from_hf", None, "Hugging Face model folder to import.")
flags.DEFINE_string("to", None, "emojax checkpoint folder to write.")
flags.DEFINE_string("from", None, "emojax checkpoint folder to export.")
flags.DEFINE_string("to_hf", None, "Hugging Face folder to write.")
flags.DEFINE_string(
  "dtype", None, "Convert weights to this dtype (e.g. bfloat16); default keeps."
)
flags.DEFINE_integer(
  "max_shard_mb", 5 * 1024, "Largest safetensors file to write, in MiB."
)


def main(argv):
  del argv
  src = getattr(FLAGS, "from")
  if FLAGS.from_hf and FLAGS.to and not (src or FLAGS.to_hf):
    cfg, params = emojax.hf.load(FLAGS.from_hf, dtype=FLAGS.dtype)
    out = checkpoint.save_params(
      FLAGS.to, cfg, params, tokenizer_files=_tokenizer_files(FLAGS.from_hf)
    )
    print(
      f"wrote emojax checkpoint {out} ({cfg.family}, {cfg.num_layers} layers)"
    )
  elif src and FLAGS.to_hf and not (FLAGS.from_hf or FLAGS.to):
    cfg, params = checkpoint.load_params(src)
    out = emojax.hf.save(
      cfg,
      params,
      FLAGS.to_hf,
      dtype=FLAGS.dtype,
      tokenizer_dir=checkpoint.tokenizer_dir(src),
      max_shard_bytes=FLAGS.max_shard_mb * 2**20,
    )
    print(f"wrote Hugging Face folder {out}")
  else:
    raise app.UsageError(
      "give either --from_hf=DIR --to=CKPT_DIR or --from=CKPT_DIR --to_hf=DIR"
    )


def _tokenizer_files(hf_dir: str) -> list[str]:
  """The HF folder's tokenizer/processor files, to carry along."""
  names = (os.path.join(hf_dir, f) for f in exporter.TOKENIZER_FILES)
  return [p for p in names if os.path.exists(p)]


if __name__ == "__main__":
  app.run(main)
