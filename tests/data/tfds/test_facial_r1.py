"""Facial-R1 JSONL builder on a fixture in the real layout."""

import json

import pytest
from _tfds_build import png, prepare, read

from emojax.data import errors
from emojax.data.tfds import facial_r1

THINK = "<think>cheeks raised (AU6)</think><answer>happiness</answer>"


def _write(manual, rows):
  (manual / "images").mkdir(parents=True, exist_ok=True)
  (manual / "images" / "f1.png").write_bytes(png(value=10))
  (manual / "images" / "f2.png").write_bytes(png(value=20))
  lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
  (manual / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")


GOOD = [
  {
    "image": "images/f1.png",
    "question": "<image>What is the emotion of this face?",
    "labels": ["happy"],
    "AUs": ["AU06", "AU12"],
    "description": THINK,
    "meta_info": {"dataset": "RAF-AU"},
  },
  {  # VLM-R1 style: problem / solution / conversations, image as a list.
    "image": ["images/f2.png"],
    "problem": "What is the emotion?",
    "solution": "<answer>sad</answer>",
    "AUs": ["au1", "AU 4", "AU15B"],
    "conversations": [
      {"from": "human", "value": "<image>What is the emotion?"},
      {"from": "gpt", "value": "<think>x</think><answer>sadness</answer>"},
    ],
  },
  {"image": "images/f1.png", "labels": ["fear"], "AUs": [], "is_valid": False},
]


def test_reads_rows_and_normalises(tmp_path):
  _write(tmp_path / "manual", GOOD)
  builder = prepare(facial_r1.EmojaxFacialR1, tmp_path / "manual", tmp_path)
  rows = read(builder, "train")
  assert len(rows) == 2  # is_valid=false dropped, as Facial-R1 does
  first, second = rows
  assert first["labels"] == ["happiness"]
  assert first["AUs"] == ["AU6", "AU12"]
  assert first["description"] == THINK
  assert first["text"] == "What is the emotion of this face?"
  assert first["image"] == png(value=10)
  assert (first["source"], first["line"]) == ("train.jsonl", 1)
  assert second["labels"] == ["sadness"]
  assert second["AUs"] == ["AU1", "AU4", "AU15"]
  assert second["description"].startswith("<think>x</think>")
  assert second["image"] == png(value=20)


BAD = [
  b"{not json",
  {"image": "images/missing.png", "labels": ["happy"], "AUs": []},
  {"image": "images/f1.png", "labels": ["hungry"], "AUs": []},
  {"image": "images/f1.png", "labels": ["happy"], "AUs": ["brow up"]},
  b'{"labels": ["happy"], "AUs": [], "description": "caf\xe9"}',
]


def test_bad_rows_skipped_and_counted(tmp_path):
  _write(tmp_path / "manual", GOOD[:1] + BAD)
  builder = prepare(
    facial_r1.EmojaxFacialR1,
    tmp_path / "manual",
    tmp_path,
    on_bad_example="skip",
  )
  assert len(read(builder, "train")) == 1
  log = builder.bad_examples
  assert log.count == 5
  lines = [r.split(":")[1].split()[0] for r in log.reasons]
  assert lines == ["2", "3", "4", "5", "6"]
  assert "malformed JSON" in log.reasons[0]
  assert "missing.png does not exist" in log.reasons[1]
  assert "'labels': unknown label 'hungry'" in log.reasons[2]
  assert "field 'AUs'" in log.reasons[3]
  assert "not UTF-8" in log.reasons[4]


@pytest.mark.parametrize("bad", BAD)
def test_bad_rows_fail_with_file_and_line(tmp_path, bad):
  _write(tmp_path / "manual", GOOD[:1] + [bad])
  with pytest.raises(errors.BadExampleError, match=r"train\.jsonl:2"):
    prepare(facial_r1.EmojaxFacialR1, tmp_path / "manual", tmp_path)


def test_missing_manual_files_say_what_to_do(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match="JSONL files"):
    prepare(facial_r1.EmojaxFacialR1, tmp_path / "manual", tmp_path)
