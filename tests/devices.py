"""Skips for tests that need a device, which cannot pass a device run.

A `gpu`-marked test skips where there is no GPU (CI deselects them all
anyway). `launch/gpu_check.sh` sets EMOJAX_EXPECT_DEVICE to 'gpu', or
'hopper' on an H100/H200: there a missing device (or a pre-Hopper card
under the Hopper tests) fails the test instead, so an on-device run that
silently ran nothing cannot look green.
"""

import os

import pytest

ENV = "EMOJAX_EXPECT_DEVICE"
_IMPLIES = {"gpu": ("gpu", "hopper"), "hopper": ("hopper",)}


def require(present: bool, kind: str, reason: str) -> None:
  """Skips (or, where $EMOJAX_EXPECT_DEVICE promises `kind`, fails) unless
  the device is present. kind: 'gpu' or 'hopper'."""
  if present:
    return
  expected = os.environ.get(ENV, "")
  if expected in _IMPLIES[kind]:
    pytest.fail(f"{reason}, but ${ENV}={expected!r} promised one.")
  pytest.skip(reason)
