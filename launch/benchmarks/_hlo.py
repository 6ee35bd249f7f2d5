"""What a compiled program's collectives move, read from its HLO text.

A memory plan does not show communication: XLA's partitioner can fit a
step in little memory by all-reducing a tile inside a loop thousands of
times. This sums, per collective kind, the bytes of every collective's
full buffer (an all-gather's output, a reduce-scatter's input, an
all-reduce's or all-to-all's operand) times how often it runs: the trip
counts XLA proved for the while loops around it (`known_trip_count`;
a loop without one counts once and is reported). What the wire carries
depends on the algorithm (a ring all-reduce sends about twice its
buffer), so compare figures of one kind with each other.
"""

from __future__ import annotations

import collections
import math
import re

KINDS = (
  "all-reduce",
  "all-gather",
  "reduce-scatter",
  "all-to-all",
  "collective-permute",
)
_BYTES = {
  **dict.fromkeys(("pred", "s8", "u8"), 1),
  **dict.fromkeys(("bf16", "f16", "s16", "u16"), 2),
  **dict.fromkeys(("f32", "s32", "u32"), 4),
  **dict.fromkeys(("f64", "s64", "u64"), 8),
}
_HEADER = re.compile(r"^(?:ENTRY )?%([\w.\-]+) \(")
_OP = re.compile(r"= (.*?) (" + "|".join(KINDS) + r")(-start)?\(")
_ARRAY = re.compile(r"\b(" + "|".join(_BYTES) + r")\[([\d,]*)\]")
_WHILE = re.compile(r" while\(.*body=%([\w.\-]+)")
_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_CALLED = re.compile(r"(?:calls|to_apply|branch_computations)=\{?%([\w.\-]+)")


def _computations(hlo: str) -> tuple[dict[str, list[str]], str]:
  """Instruction lines of each computation, and the entry's name."""
  comps, entry, name = {}, None, None
  for line in hlo.splitlines():
    header = _HEADER.match(line)
    if header:
      name = header.group(1)
      comps[name] = []
      entry = name if line.startswith("ENTRY") else entry
    elif name is not None and line.strip() and line.strip() != "}":
      comps[name].append(line)
  return comps, entry


def _calls(lines) -> tuple[list[tuple[str, int]], int]:
  """(callee, times per run) of a computation's lines, and how many of its
  while loops have no known trip count."""
  out, unknown = [], 0
  for line in lines:
    loop = _WHILE.search(line)
    if loop:
      trips = _TRIPS.search(line)
      unknown += trips is None
      out.append((loop.group(1), int(trips.group(1)) if trips else 1))
    else:
      out += [(c, 1) for c in _CALLED.findall(line)]
  return out, unknown


def _runs(comps, entry) -> tuple[dict[str, int], int]:
  """How often each computation runs per call of the entry (summed over
  its callers, in topological order), and the loops counted once."""
  calls, unknown = {}, 0
  for name, lines in comps.items():
    calls[name], n = _calls(lines)
    unknown += n
  callers = collections.Counter(c for cs in calls.values() for c, _ in cs)
  runs, ready = collections.Counter({entry: 1}), [entry]
  while ready:
    name = ready.pop()
    for callee, n in calls.get(name, ()):
      runs[callee] += runs[name] * n
      callers[callee] -= 1
      if callers[callee] == 0:
        ready.append(callee)
  return runs, unknown


def collective_bytes(hlo: str) -> tuple[dict[str, int], int]:
  """({kind: bytes per call of the program}, loops of unknown trip count)."""
  comps, entry = _computations(hlo)
  runs, unknown = _runs(comps, entry)
  out = dict.fromkeys(KINDS, 0)
  for name, lines in comps.items():
    for line in lines:
      op = _OP.search(line)
      if not op:
        continue
      arrays = _ARRAY.findall(op.group(1))
      size = max(
        _BYTES[dt] * math.prod(int(d) for d in dims.split(",") if d)
        for dt, dims in arrays
      )
      out[op.group(2)] += size * runs[name]
  return out, unknown
