"""Facial-R1 JSONL with clip rows (DFEW/MAFW frame folders)."""

import io
import json

import numpy as np
import pytest
import video_files
from _tfds_build import jpeg, png, prepare, read
from PIL import Image

from emojax.data import audio_io, errors, voice
from emojax.data.tfds import facial_r1

THINK = "<think>brows pulled down (AU4)</think><answer>anger</answer>"


def _write(manual, rows):
  # DFEW's layout: clip_224x224/<clip>/<clip>_<frame>.jpg.
  clip = manual / "clip_224x224" / "00001"
  clip.mkdir(parents=True)
  for f in (3, 1, 2):  # written out of order; read in name order
    (clip / f"00001_0000{f}.jpg").write_bytes(jpeg(value=10 * f))
  (clip / "notes.txt").write_text("not a frame")
  (manual / "empty").mkdir()
  (manual / "empty.mp4").mkdir()
  (manual / "junk.avi").write_bytes(b"not a video" * 50)
  (manual / "images").mkdir()
  (manual / "images" / "f1.png").write_bytes(png(value=7))
  (manual / "images" / "a.png").write_bytes(png(value=1))
  (manual / "images" / "b.png").write_bytes(png(value=2))
  lines = [json.dumps(r) for r in rows]
  (manual / "train.jsonl").write_text("\n".join(lines) + "\n")


ROWS = [
  {"video": "clip_224x224/00001", "labels": ["angry"], "description": THINK},
  {"video": ["a.png", "b.png"], "fps": 30, "labels": ["sad"], "AUs": ["AU1"]},
  {"image": "f1.png", "labels": ["happy"]},
]


def test_reads_clip_and_image_rows(tmp_path):
  _write(tmp_path / "m", ROWS)
  builder = prepare(facial_r1.EmojaxFacialR1Video, tmp_path / "m", tmp_path)
  folder, listed, image = read(builder, "train")
  assert folder["video"] == [jpeg(value=v) for v in (10, 20, 30)]
  assert folder["video_fps"] == facial_r1.DEFAULT_FPS == 25.0
  assert folder["image"] == b"" and folder["labels"] == ["anger"]
  assert folder["description"] == THINK
  assert listed["video"] == [png(value=1), png(value=2)]
  assert listed["video_fps"] == 30.0 and listed["AUs"] == ["AU1"]
  assert image["image"] == png(value=7)
  assert image["video"] == [] and image["video_fps"] == 0.0


BAD = [
  ({"video": "missing", "labels": ["sad"]}, "video", "does not exist"),
  ({"video": "empty", "labels": ["sad"]}, "video", "holds no frames"),
  ({"video": "images/f1.png", "labels": ["sad"]}, "video", "is a file"),
  ({"video": ["a.png", "nope.png"], "labels": ["sad"]}, "video", "nope.png"),
  ({"video": 3, "labels": ["sad"]}, "video", "JSON int"),
  (
    {"video": ["a.png"], "image": "f1.png", "labels": ["sad"]},
    "video",
    "both an image and a video",
  ),
  ({"video": ["a.png"], "fps": 0, "labels": ["sad"]}, "fps", "fps=0"),
  ({"video": "gone.mp4", "labels": ["sad"]}, "video", "does not exist"),
  ({"video": "empty.mp4", "labels": ["sad"]}, "video", "is a folder"),
  ({"video": "junk.avi", "labels": ["sad"]}, "video", "cannot decode"),
  ({"video": ["a.png"], "fps": "25", "labels": ["sad"]}, "fps", "fps='25'"),
]


@pytest.mark.parametrize("bad,field,words", BAD)
def test_bad_clip_rows_name_line_and_field(tmp_path, bad, field, words):
  _write(tmp_path / "m", ROWS[2:] + [bad])
  with pytest.raises(errors.BadExampleError) as e:
    prepare(facial_r1.EmojaxFacialR1Video, tmp_path / "m", tmp_path)
  assert str(e.value).startswith(f"train.jsonl:2 field {field!r}")
  assert words in str(e.value)


def test_image_builder_unchanged_and_refuses_clip_rows(tmp_path):
  _write(tmp_path / "m", ROWS)
  builder = facial_r1.EmojaxFacialR1(data_dir=str(tmp_path / "tfds"))
  assert "video" not in builder.info.features
  assert "video_fps" not in builder.info.features
  with pytest.raises(errors.BadExampleError, match="emojax_facial_r1_video"):
    prepare(facial_r1.EmojaxFacialR1, tmp_path / "m", tmp_path)


def test_long_clips_keep_evenly_spaced_frames_in_number_order(tmp_path):
  """ffmpeg's default names (1.png ... 100.png) are read in number order,
  and at most MAX_STORED_FRAMES are kept, the rate scaled with them."""
  manual = tmp_path / "m"
  clip = manual / "clip"
  clip.mkdir(parents=True)
  n = 100
  for f in range(1, n + 1):
    (clip / f"{f}.png").write_bytes(png(value=f))
  row = {"video": "clip", "fps": 25, "labels": ["sad"]}
  (manual / "train.jsonl").write_text(json.dumps(row) + "\n")
  builder = prepare(facial_r1.EmojaxFacialR1Video, manual, tmp_path)
  (got,) = read(builder, "train")
  k = facial_r1.MAX_STORED_FRAMES
  # linspace over frames 1..100, as qwen-vl-utils samples.
  kept = [round(i * (n - 1) / (k - 1)) + 1 for i in range(k)]
  assert got["video"] == [png(value=v) for v in kept]
  assert got["video_fps"] == pytest.approx(25 * k / n)


def test_video_files_as_dfew_and_mafw_ship_them(tmp_path, monkeypatch):
  """DFEW's Clip/original/*.avi and MAFW's clips/*.mp4: decoded, sampled
  to at most MAX_STORED_FRAMES in presentation order, the rate the
  container's (or the row's)."""
  monkeypatch.setattr(facial_r1, "MAX_STORED_FRAMES", 16)  # < 60 frames
  manual = tmp_path / "m"
  (manual / "Clip" / "original").mkdir(parents=True)
  (manual / "clips").mkdir()
  avi = manual / "Clip" / "original" / "00001.avi"
  video_files.write_video(avi, video_files.gray_frames(60), fps=25)
  video_files.write_video(
    manual / "clips" / "00001.mp4", video_files.gray_frames(12), fps=30
  )
  rows = [
    {"video": "Clip/original/00001.avi", "labels": ["angry"]},
    {"video": "clips/00001.mp4", "fps": 24, "labels": ["sad"]},
  ]
  (manual / "train.jsonl").write_text("\n".join(map(json.dumps, rows)))
  builder = prepare(facial_r1.EmojaxFacialR1Video, manual, tmp_path)
  avi_row, mp4_row = read(builder, "train")
  kept = np.round(np.linspace(0, 59, 16)).astype(int).tolist()
  assert [_index(f) for f in avi_row["video"]] == kept
  assert avi_row["video_fps"] == pytest.approx(25 * 16 / 60)
  assert [_index(f) for f in mp4_row["video"]] == list(range(12))
  assert mp4_row["video_fps"] == pytest.approx(24.0)
  assert mp4_row["labels"] == ["sadness"]


def _index(jpeg_bytes: bytes) -> int:
  assert jpeg_bytes[:2] == b"\xff\xd8"  # stored as JPEG
  return video_files.frame_index(np.asarray(Image.open(io.BytesIO(jpeg_bytes))))


def test_sound_is_kept_for_a_model_that_listens(tmp_path):
  """audio=True: a video file's soundtrack (16 kHz WAV, equal to decoding
  the file), a frame folder's `audio` file, b"" for a silent video or an
  image; without it no sound is read."""
  manual = tmp_path / "m"
  (manual / "clips").mkdir(parents=True)
  wave_CT = voice.render({"emotion": "happy", "transcription": "oh nice"})[None]
  frames = video_files.gray_frames(6)
  loud = manual / "clips" / "loud.mp4"
  video_files.write_audio(loud, wave_CT, 16000, video=(frames, 6))
  video_files.write_video(manual / "clips" / "mute.mp4", frames, fps=6)
  (manual / "folder").mkdir()
  for f in range(3):
    (manual / "folder" / f"{f}.png").write_bytes(png(value=f))
  audio_io.write(manual / "folder.wav", wave_CT[0])
  (manual / "f1.png").write_bytes(png(value=7))
  rows = [
    {"video": "clips/loud.mp4", "labels": ["happy"]},
    {"video": "clips/mute.mp4", "labels": ["sad"]},
    {"video": "folder", "audio": "folder.wav", "labels": ["sad"]},
    {"image": "f1.png", "labels": ["happy"]},
  ]
  (manual / "train.jsonl").write_text("\n".join(map(json.dumps, rows)))
  heard = prepare(facial_r1.EmojaxFacialR1Video, manual, tmp_path, audio=True)
  loud_row, mute, folder, image = read(heard, "train")
  np.testing.assert_allclose(
    audio_io.read(bytes(loud_row["audio"])),
    audio_io.read(loud),
    atol=2 / 32767,
  )
  assert len(loud_row["video"]) == 6
  assert bytes(mute["audio"]) == b"" and len(mute["video"]) == 6
  assert bytes(folder["audio"]) == (manual / "folder.wav").read_bytes()
  assert bytes(image["audio"]) == b""
  deaf = prepare(facial_r1.EmojaxFacialR1Video, manual, tmp_path / "deaf")
  assert all(bytes(r["audio"]) == b"" for r in read(deaf, "train"))
