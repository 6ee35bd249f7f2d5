"""Restarts a launch script with tcmalloc preloaded, where it is installed.

Why: an XLA:CPU executable allocates its large temporaries afresh on every
call. glibc's malloc serves those with mmap and unmaps them on free, so
every training step faults its whole working set back in: at the PEERS
GRPO shape, 409k page faults and 1.1 s of kernel time per update on a
2-core VM. tcmalloc keeps freed pages for reuse (0 faults after the first
step). glibc's own knobs (MALLOC_MMAP_MAX_, MALLOC_ARENA_MAX) did not stop
the faults, and jemalloc returns pages on its decay timer.

Install it with `apt install libtcmalloc-minimal4` (Debian/Ubuntu); without
it nothing changes. `EMOJAX_TCMALLOC=0` turns the restart off. Accelerator
hosts lose nothing by it (their host allocations are small).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

OFF_SWITCH = "EMOJAX_TCMALLOC"
_RESTARTED = "_EMOJAX_TCMALLOC_RESTARTED"
_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
_DIRS = (
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/usr/local/lib",
)


def find(dirs: Sequence[str] = _DIRS) -> str | None:
  """Path of an installed tcmalloc shared library, or None."""
  for d in dirs:
    for name in _NAMES:
      path = os.path.join(d, name)
      if os.path.exists(path):
        return path
  return None


def active() -> bool:
  """Whether tcmalloc is preloaded into this process."""
  return "tcmalloc" in os.environ.get("LD_PRELOAD", "")


def restart_with_tcmalloc(argv: Sequence[str], dirs: Sequence[str] = _DIRS):
  """Re-executes `python argv...` with tcmalloc preloaded; returns if not.

  It returns (doing nothing) when tcmalloc is off, already loaded, not
  installed, or this process is itself the restart.
  """
  if os.environ.get(OFF_SWITCH, "1") == "0" or active():
    return
  if os.environ.get(_RESTARTED):
    return
  lib = find(dirs)
  if lib is None:
    return
  preload = ":".join(p for p in (lib, os.environ.get("LD_PRELOAD")) if p)
  env = dict(os.environ, LD_PRELOAD=preload, **{_RESTARTED: "1"})
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *argv], env)
