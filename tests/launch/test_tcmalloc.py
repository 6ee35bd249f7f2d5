"""The tcmalloc restart: when it re-executes, with what, and when not."""

import os
import sys

import pytest

from emojax import tcmalloc


@pytest.fixture
def fake_lib(tmp_path, monkeypatch):
  lib = tmp_path / "libtcmalloc_minimal.so.4"
  lib.write_bytes(b"")
  for name in (tcmalloc.OFF_SWITCH, "_EMOJAX_TCMALLOC_RESTARTED"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv("LD_PRELOAD", "/opt/other.so")
  calls = []
  monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
  return str(tmp_path), str(lib), calls


def test_restarts_the_same_command_with_tcmalloc_first(fake_lib):
  lib_dir, lib, calls = fake_lib
  tcmalloc.restart_with_tcmalloc(["launch/train.py", "--x=1"], [lib_dir])
  ((exe, argv, env),) = calls
  assert exe == sys.executable
  assert argv == [sys.executable, "launch/train.py", "--x=1"]
  assert env["LD_PRELOAD"] == f"{lib}:/opt/other.so"
  assert env["_EMOJAX_TCMALLOC_RESTARTED"] == "1"


@pytest.mark.parametrize(
  "env",
  [
    {"EMOJAX_TCMALLOC": "0"},  # turned off
    {"_EMOJAX_TCMALLOC_RESTARTED": "1"},  # this is the restart: no loop
    {"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"},  # already loaded
  ],
)
def test_does_not_restart(fake_lib, monkeypatch, env):
  lib_dir, _, calls = fake_lib
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  tcmalloc.restart_with_tcmalloc(["x.py"], [lib_dir])
  assert calls == []


def test_not_installed_changes_nothing(fake_lib, tmp_path):
  _, _, calls = fake_lib
  empty = tmp_path / "empty"
  empty.mkdir()
  assert tcmalloc.find([str(empty)]) is None
  tcmalloc.restart_with_tcmalloc(["x.py"], [str(empty)])
  assert calls == []
