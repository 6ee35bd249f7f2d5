r"""Speed and memory, each measured beside a reference in the same run.

  python launch/benchmark.py forward        # emojax vs transformers forward
  python launch/benchmark.py NAME [--flag=value ...]

Each benchmark lives in `launch/benchmarks/NAME.py` with a `main(argv)`;
results print as absolute numbers, the ratio to the reference, and the
machine they ran on.
"""

import importlib
import os
import pkgutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emojax import tcmalloc  # noqa: E402

if __name__ == "__main__":
  tcmalloc.restart_with_tcmalloc(sys.argv)  # CPU speed; see its docstring.

import benchmarks  # noqa: E402


def available() -> list[str]:
  return sorted(
    m.name
    for m in pkgutil.iter_modules(benchmarks.__path__)
    if not m.name.startswith("_")
  )


def main(argv: list[str]) -> int:
  names = available()
  if len(argv) < 2 or argv[1] not in names:
    print(__doc__)
    print("benchmarks:", ", ".join(names))
    return 2
  module = importlib.import_module(f"benchmarks.{argv[1]}")
  return module.main(argv[1:]) or 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
