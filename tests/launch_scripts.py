"""Imports a `launch/*.py` script once per process.

The scripts define absl flags at import; loading one twice (two test files
in one pytest worker) would define them twice.
"""

import importlib.util
import pathlib
import sys

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / "launch"


def load(name: str):
  key = f"emojax_launch_{name}"
  if key not in sys.modules:
    spec = importlib.util.spec_from_file_location(key, LAUNCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
  return sys.modules[key]
