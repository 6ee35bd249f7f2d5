"""ModelConfig <-> the JSON a params checkpoint stores."""

import json

import pytest

from emojax.model import config as config_lib
from emojax.model import config_io

BUILDERS = [
  config_lib.qwen2_5_7b,
  config_lib.llama3_2_1b,
  config_lib.qwen2_5_vl_7b,
  config_lib.qwen2_5_omni_7b,
  config_lib.tiny_text,
  config_lib.tiny_vlm,
  config_lib.tiny_omni,
  config_lib.tiny_audio,
]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_round_trips_through_json(build):
  """Every nested part (rope scaling, vision and audio towers) comes back
  as its dataclass: the config is equal, hashable and usable as a jit
  static argument."""
  cfg = build()
  back = config_io.from_dict(json.loads(json.dumps(config_io.to_dict(cfg))))
  assert back == cfg and hash(back) == hash(cfg)


def test_unknown_fields_name_them():
  d = config_io.to_dict(config_lib.tiny_text()) | {"flux": 1}
  with pytest.raises(ValueError, match=r"\['flux'\]"):
    config_io.from_dict(d)
