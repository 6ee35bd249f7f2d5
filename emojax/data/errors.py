"""Bad-input policy: fail with file, line and field, or skip and count.

`config.on_bad_example` picks the policy. Under 'skip' a `BadExampleLog`
counts the skipped rows and keeps the first few reasons, for the end-of-epoch
report and the metrics.
"""

import dataclasses
from typing import Literal

Policy = Literal["fail", "skip"]
POLICIES = ("fail", "skip")


class BadExampleError(ValueError):
  """One unusable row, located by source file, line and field."""

  def __init__(
    self,
    reason: str,
    *,
    source: str | None = "",
    line: int | None = None,
    field: str | None = None,
    fix: str = "",
  ):
    self.reason, self.source, self.line = reason, source, line
    self.field, self.fix = field, fix
    super().__init__(self.describe())

  @classmethod
  def described(cls, description: str) -> "BadExampleError":
    """From an earlier `describe()` (e.g. one made in a grain worker)."""
    return cls(description, source=None)

  def describe(self) -> str:
    if self.source is None:
      return self.reason
    where = self.source or "<unknown source>"
    if self.line is not None:
      where += f":{self.line}"
    if self.field:
      where += f" field {self.field!r}"
    return f"{where}: {self.reason}" + (f" Fix: {self.fix}" if self.fix else "")


def check_policy(policy: str) -> Policy:
  if policy not in POLICIES:
    raise ValueError(
      f"on_bad_example={policy!r}: use 'fail' (stop with the row's file and "
      "line) or 'skip' (count and report skipped rows)."
    )
  return policy  # type: ignore[return-value]


@dataclasses.dataclass
class BadExampleLog:
  """Applies the policy to BadExampleError errors; counts and keeps reasons."""

  policy: Policy = "fail"
  keep: int = 5  # How many reasons the report keeps.
  count: int = 0
  reasons: list[str] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    check_policy(self.policy)

  def handle(self, error: BadExampleError) -> None:
    """Raises under 'fail'; counts under 'skip'."""
    if self.policy == "fail":
      raise error
    self.add(error.describe())

  def handle_described(self, description: str) -> None:
    """`handle` for an error that was turned into its description."""
    self.handle(BadExampleError.described(description))

  def add(self, reason: str) -> None:
    self.count += 1
    if len(self.reasons) < self.keep:
      self.reasons.append(reason)

  def metrics(self) -> dict[str, int]:
    return {"data/bad_examples": self.count}

  def report(self) -> str:
    if not self.count:
      return "no bad examples"
    lines = [f"skipped {self.count} bad example(s); first reasons:"]
    lines += [f"  {r}" for r in self.reasons]
    return "\n".join(lines)

  def state(self) -> dict:
    return {"count": self.count, "reasons": list(self.reasons)}

  def restore(self, state: dict) -> None:
    self.count, self.reasons = int(state["count"]), list(state["reasons"])
