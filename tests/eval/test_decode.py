"""Offline decoding's model inputs: what reaches the rollout engine."""

import types

import numpy as np

from emojax.data import audio_io, synth, voice
from emojax.data import examples as examples_lib
from emojax.data import tokenizer as tokenizer_lib
from emojax.eval import decode
from emojax.model import config as config_lib


def test_clip_rows_of_a_model_with_both_towers_send_no_empty_images(
  tmp_path, monkeypatch
):
  """Qwen2.5-Omni hearing clips: the batches' empty image arrays are not
  inputs (the VLM layout of zero images would fail), the clips are."""
  tok = tokenizer_lib.build_default(
    tmp_path / "tok", synth.text_corpus(0, 100), vocab_size=600
  )
  tok = tokenizer_lib.with_audio(tok)
  cfg = config_lib.tiny_omni(tok.vocab_size).replace(
    audio_token_id=tok.audio_pad_id,
    image_token_id=tok.image_pad_id,
    vision_start_token_id=tok.vision_start_id,
  )
  record = {"transcription": "the store closes early", "emotion": "sad"}
  rows = [
    {
      "audio": audio_io.encode(voice.render(record, seed=i)),
      "image": b"",
      "labels": [b"sadness"],
      "AUs": [],
      "description": b"",
      "caption": b"",
      "text": b"",
      "source": b"t.jsonl",
      "line": i + 1,
    }
    for i in range(2)
  ]
  seen = []

  def generate(params, cfg, inputs, key, **kw):
    seen.append(inputs)
    n = len(inputs["input_ids"])
    return types.SimpleNamespace(text=["<answer>sadness</answer>"] * n)

  monkeypatch.setattr(decode.rollout, "generate", generate)
  example = examples_lib.ExampleConfig(
    mode="rollout",
    max_len=512,
    prompt="emotion_thinker_listen",
    emotions=("sadness", "neutral"),
    audio_frames=400,
  )
  out = decode.decode(None, cfg, rows, tok, decode.DecodeConfig(), example)
  assert [e.completion for e in out] == ["<answer>sadness</answer>"] * 2
  (inputs,) = seen
  assert "pixel_values" not in inputs and "image_grid_thw" not in inputs
  assert inputs["input_features"].shape == (2, 128, 400)
  runs = (np.asarray(inputs["input_ids"]) == cfg.audio_token_id).sum(1)
  assert (runs > 0).all()
