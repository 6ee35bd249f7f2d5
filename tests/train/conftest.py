"""A tiny run config shared by the training tests."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture
def smoke_config(tmp_path, monkeypatch):
  monkeypatch.setenv("EMOJAX_CACHE", str(tmp_path / "cache"))
  from configs import facial_r1

  c = facial_r1.get_config("smoke")
  c.data.tfds_dir = str(tmp_path / "tfds")
  return c
