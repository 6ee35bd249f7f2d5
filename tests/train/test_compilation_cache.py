"""setup.compilation_cache: $EMOJAX_CACHE/xla unless JAX's own setting."""

import jax

from emojax.train import setup


def test_the_default_folder_and_jaxs_setting_wins(monkeypatch, tmp_path):
  monkeypatch.setenv("EMOJAX_CACHE", str(tmp_path))
  session = jax.config.jax_compilation_cache_dir  # tests/conftest.py's
  try:
    jax.config.update("jax_compilation_cache_dir", None)
    assert setup.compilation_cache() == str(tmp_path / "xla")
    jax.config.update("jax_compilation_cache_dir", "gs://b/xla")
    assert setup.compilation_cache() == "gs://b/xla"
  finally:
    jax.config.update("jax_compilation_cache_dir", session)
