"""EmotionCoT builder (the pipeline's and the released files' field names)
and prosody_synth, which generates records in the same layout."""

import json

import numpy as np
import pytest
import video_files
from _tfds_build import prepare, read

from emojax.data import audio_io, prosody, speech_synth, voice
from emojax.data.tfds import emotion_cot, prosody_synth

# As prosody_labeling.py + api_call.py write a record.
PIPELINE = {
  "audio_path": "wavs/a.wav",
  "transcription": "I told you twice already",
  "emotion": "angry",
  "gender": "Male",
  "age_level": "Middle-aged",
  "pitch_level": "high",
  "energy_level": "high",
  "speed_level": "fast",
  "intonation": "falling",
  "stressed_words": ["twice"],
  "reasoning": "A middle-aged male speaker ...",
}
# With the alias names api_call.py lists for the released files.
RELEASED = {
  "audio_path": "wavs/b.wav",
  "text": "fine",
  "gt": "contempt or disgust",
  "gender_new": "female",
  "age_group": "Young Adult",
  "pitch_level": "low",
  "energy_level": "normal",
  "speed_level": "slow",
  "contour_shape": "uncertain",
  "stress": "fine",
}


def _write(folder, name, rows):
  folder.mkdir(parents=True, exist_ok=True)
  lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
  (folder / name).write_text("\n".join(lines) + "\n")


def test_reads_pipeline_and_released_field_names(tmp_path):
  m = tmp_path / "m"
  _write(m, "train.jsonl", [PIPELINE, RELEASED])
  (m / "test.json").write_text(json.dumps([RELEASED]))  # A JSON list.
  builder = prepare(emotion_cot.EmojaxEmotionCot, m, tmp_path)
  a, b = read(builder, "train")
  assert a["labels"] == ["anger"] and b["labels"] == ["disgust"]
  assert a["text"] == "I told you twice already" and b["text"] == "fine"
  assert a["caption"] == (
    "speaker: male, middle-aged; pitch: high; energy: high; speed: fast; "
    "intonation: falling; stressed: twice"
  )
  # 'uncertain' contour: left out, not made up.
  assert b["caption"] == (
    "speaker: female, young adult; pitch: low; energy: normal; speed: slow;"
    " stressed: fine"
  )
  assert a["description"] == (
    "<think>A middle-aged male speaker ...</think><answer>anger</answer>"
  )
  assert b["description"] == ""  # No reasoning: not an SFT row.
  assert prosody.parse_caption(a["caption"]) == prosody.from_record(PIPELINE)
  assert [r["line"] for r in read(builder, "test")] == [1]


@pytest.mark.parametrize(
  ("row", "match"),
  [
    ({**PIPELINE, "emotion": "bored"}, r"train\.jsonl:2.*emotion.*whisper"),
    ({**PIPELINE, "pitch_level": "loud"}, r"train\.jsonl:2.*pitch_level"),
    ({"transcription": "hi"}, r"train\.jsonl:2.*no emotion label"),
    ("{oops", r"train\.jsonl:2.*malformed JSON"),
    ("[1, 2]", r"train\.jsonl:2.*a JSON list, not an object"),
  ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, row, match):
  _write(tmp_path / "m", "train.jsonl", [PIPELINE, row])
  with pytest.raises(ValueError, match=match):
    prepare(emotion_cot.EmojaxEmotionCot, tmp_path / "m", tmp_path)


def test_skip_policy_counts_bad_rows(tmp_path):
  _write(tmp_path / "m", "train.jsonl", [PIPELINE, "{oops", RELEASED])
  builder = prepare(
    emotion_cot.EmojaxEmotionCot,
    tmp_path / "m",
    tmp_path,
    on_bad_example="skip",
  )
  assert len(read(builder, "train")) == 2
  assert builder.bad_examples.count == 1


def test_prosody_synth_generates_emotion_cot_rows(tmp_path):
  cfg = prosody_synth.ProsodySynthConfig(
    name="t", num_train=12, num_test=4, num_sft=3, seed=1
  )
  builder = prepare(
    prosody_synth.EmojaxProsodySynth, tmp_path / "none", tmp_path, config=cfg
  )
  train, sft = read(builder, "train"), read(builder, "sft")
  assert (len(train), len(read(builder, "test")), len(sft)) == (12, 4, 3)
  record = speech_synth.make_record(
    speech_synth.split_seed(1, "train"), 5, reasoning=False
  )
  row = next(r for r in train if r["line"] == 5)
  assert row["caption"] == prosody.caption(prosody.from_record(record))
  assert row["text"] == record["transcription"]
  assert all(r["description"] == "" for r in train)
  assert all(r["description"].endswith("</answer>") for r in sft)
  # The answer in the reasoning is the row's label noun.
  assert all(
    f"<answer>{r['labels'][0]}</answer>" in r["description"] for r in sft
  )


def test_synthetic_labels_follow_the_cues():
  """Without swaps, every class has its own cue profile: the cues decide."""
  profiles = set(speech_synth.PROFILES.values())
  assert len(profiles) == len(speech_synth.CLASSES)
  rows = [
    speech_synth.make_record(0, i, reasoning=False, swap_rate=0.0)
    for i in range(60)
  ]
  for r in rows:
    cues = (
      r["pitch_level"],
      r["energy_level"],
      r["speed_level"],
      r["intonation"],
    )
    assert cues == speech_synth.PROFILES[r["emotion"]]
  assert len({r["emotion"] for r in rows}) == 9


def test_audio_keeps_each_rows_clip_and_names_a_missing_one(tmp_path):
  m = tmp_path / "m"
  (m / "wavs").mkdir(parents=True)
  audio_io.write(m / "wavs" / "a.wav", voice.render(PIPELINE))
  _write(m, "train.jsonl", [PIPELINE])
  builder = prepare(emotion_cot.EmojaxEmotionCot, m, tmp_path, audio=True)
  (row,) = read(builder, "train")
  assert bytes(row["audio"]) == (m / "wavs" / "a.wav").read_bytes()
  # Without `audio` the clips need not be there.
  plain = prepare(emotion_cot.EmojaxEmotionCot, m, tmp_path / "plain")
  assert bytes(read(plain, "train")[0]["audio"]) == b""
  _write(m, "train.jsonl", [PIPELINE, RELEASED])  # wavs/b.wav is missing
  with pytest.raises(ValueError, match=r"train\.jsonl:2.*audio_path.*b\.wav"):
    prepare(emotion_cot.EmojaxEmotionCot, m, tmp_path / "b", audio=True)


def test_other_audio_files_are_kept_as_16k_wav(tmp_path):
  """A FLAC clip and an mp4 with frames and sound (MELD's layout) become
  16 kHz WAV, equal to what the pipeline would decode from the files;
  an undecodable one is a bad row."""
  m = tmp_path / "m"
  (m / "clips").mkdir(parents=True)
  wave_CT = voice.render(PIPELINE)[None]
  video_files.write_audio(m / "clips" / "a.flac", wave_CT, 16000)
  video = (video_files.gray_frames(4), 2)
  video_files.write_audio(m / "clips" / "b.mp4", wave_CT, 16000, video)
  rows = [
    {**PIPELINE, "audio_path": "clips/a.flac"},
    {**RELEASED, "audio_path": "clips/b.mp4"},
  ]
  _write(m, "train.jsonl", rows)
  builder = prepare(emotion_cot.EmojaxEmotionCot, m, tmp_path, audio=True)
  flac, mp4 = read(builder, "train")
  for row, name in ((flac, "a.flac"), (mp4, "b.mp4")):
    assert audio_io.is_wav(bytes(row["audio"]))
    np.testing.assert_allclose(
      audio_io.read(bytes(row["audio"])),
      audio_io.read(m / "clips" / name),
      atol=2 / 32767,  # 16-bit samples, truncated by encode
    )
  (m / "clips" / "b.mp4").write_bytes(b"garbage" * 40)
  with pytest.raises(ValueError, match=r"train\.jsonl:2.*audio_path.*b\.mp4"):
    prepare(emotion_cot.EmojaxEmotionCot, m, tmp_path / "b", audio=True)


def test_prosody_synth_speaks_its_records(tmp_path):
  cfg = prosody_synth.ProsodySynthConfig(
    name="a", num_train=3, num_test=1, num_sft=1, seed=1, audio=True
  )
  builder = prepare(
    prosody_synth.EmojaxProsodySynth, tmp_path / "none", tmp_path, config=cfg
  )
  row = next(r for r in read(builder, "train") if r["line"] == 2)
  record = speech_synth.make_record(
    speech_synth.split_seed(1, "train"), 2, reasoning=False
  )
  np.testing.assert_allclose(
    audio_io.read(bytes(row["audio"])), voice.render(record, seed=2), atol=1e-4
  )
