"""emojax: explainable emotion reasoning, trained the R1 way, in JAX."""

import setuptools

# What the main job needs (launch/train.py on the embedded default, on CPU).
# jax is bounded to the versions this tree is tested on: 0.10.x on the CI
# machine, 0.11.x on the GPU machine.
INSTALL_REQUIRES = [
  "jax>=0.10.2,<0.12",
  "flax>=0.12",
  "optax>=0.2.5",
  "orbax-checkpoint>=0.11",
  "grain>=0.2.12",
  "tensorflow-datasets>=4.9.8",
  "ml-collections>=1.0",
  "chex>=0.1.90",
  "clu>=0.0.12",
  # clu's TensorBoard writer and tfds builders need TensorFlow for real.
  "tensorflow-cpu>=2.19",
  "tensorboard>=2.19",
  "numpy>=1.26",
  "pillow>=10",
  "tokenizers>=0.21",
  "safetensors>=0.5",
  "matplotlib>=3.8",
  "tqdm>=4.66",
  "absl-py>=2.1",
  "rouge-score>=0.1.2",
  "jinja2>=3.1",  # chat templates of HF tokenizer folders
  "pyarrow>=15",  # dair-ai/emotion ships as parquet
  "importlib_resources>=6",  # tfds builders' code_path needs it
  "av>=14",  # PyAV (FFmpeg bundled): datasets of video files (mp4, avi)
]

EXTRAS_REQUIRE = {
  # Parity tests against independent references. torch is pinned to the CPU
  # build on the CI machine's disk; any other spec pulls several GB of CUDA.
  "test": [
    "pytest>=8",
    "pytest-xdist>=3.6",
    "pytest-timeout>=2.3",  # a deadlocked kernel simulation fails, not hangs
    "torch==2.13.0",
    "transformers>=4.57",
    "scikit-learn>=1.5",
    "ruff>=0.12",
  ],
  # Accelerator builds of jax for users (not used by CI).
  "cuda12": ["jax[cuda12]>=0.10.2,<0.12"],
  "cuda13": ["jax[cuda13]>=0.10.2,<0.12"],
  "tpu": ["jax[tpu]>=0.10.2,<0.12"],
}

setuptools.setup(
  name="emojax",
  version="0.1.0",
  description=__doc__,
  long_description=open("README.md", encoding="utf-8").read(),
  long_description_content_type="text/markdown",
  packages=setuptools.find_packages(include=["emojax", "emojax.*"]),
  package_data={"emojax": ["data/wheels/*.json"]},
  python_requires=">=3.11",
  install_requires=INSTALL_REQUIRES,
  extras_require=EXTRAS_REQUIRE,
)
