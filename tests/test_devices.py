"""Device skips turn into failures where a device run promised the device."""

import devices
import pytest


def test_a_missing_device_skips_by_default(monkeypatch):
  monkeypatch.delenv(devices.ENV, raising=False)
  with pytest.raises(pytest.skip.Exception, match="needs a GPU"):
    devices.require(False, "gpu", "needs a GPU")
  devices.require(True, "gpu", "needs a GPU")  # present: runs


@pytest.mark.parametrize(
  "expected,kind", [("gpu", "gpu"), ("hopper", "gpu"), ("hopper", "hopper")]
)
def test_a_promised_device_that_is_missing_fails(monkeypatch, expected, kind):
  monkeypatch.setenv(devices.ENV, expected)
  with pytest.raises(pytest.fail.Exception, match="promised"):
    devices.require(False, kind, "needs one")


def test_a_gpu_run_still_skips_the_hopper_tests_on_other_cards(monkeypatch):
  monkeypatch.setenv(devices.ENV, "gpu")
  with pytest.raises(pytest.skip.Exception):
    devices.require(False, "hopper", "needs a Hopper GPU")
