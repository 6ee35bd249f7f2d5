"""One tfds row -> one model-ready example (runs inside grain workers).

Decodes the image and applies Qwen2.5-VL preprocessing, builds the chat
prompt, tokenizes, and expands each `<|image_pad|>` into the image's number
of merged patches (grid_t * grid_h * grid_w // merge**2), as transformers'
Qwen2.5-VL processor does. For a model that watches (`video_frames`), a
row's clip (`video`: encoded frames, `video_fps`: their rate) is sampled
to `video_frames` frames and becomes a visual in the same streams
(`pixel_values`, `image_grid_thw`, plus `second_per_grid_ts`), its
`<|video_pad|>` expanded the same way. A row holds at most one visual.
For a model that listens (`audio_frames`), the row's clip becomes Whisper
log-mel features and its `<|AUDIO|>` the clip's audio-token count, as
Qwen2.5-Omni's processor does. A video row with its sound (`audio`), for
a model that both watches and listens, is one video whose frames and
sound interleave in `seconds_per_chunk` chunks inside `<|audio_bos|>` ..
`<|audio_eos|>` (the processor's `use_audio_in_video`; positions in
`emojax.model.tmrope`). A row that cannot be used comes back as
`{"bad_example": reason}` so the policy is applied (and counted) in the
main process, after grain's workers.
"""

import dataclasses
import os
from typing import Literal

import numpy as np

from emojax.data import audio_features, audio_io, errors, facs, prompts
from emojax.data import image_processor as ip
from emojax.data import tokenizer as tokenizer_lib
from emojax.data import video as video_lib
from emojax.model import tmrope

Mode = Literal["sft", "rollout"]

# Prompt kinds: (config, the row's decoded `text` and `caption`) -> the user
# turn's text.
PROMPTS = {
  "facial_r1": lambda c, r: prompts.facial_r1_grpo(
    c.emotions, au_definitions=c.au_definitions
  ),
  "caption": lambda c, r: prompts.CAPTION_QUESTION,
  "r1_omni": lambda c, r: prompts.R1_OMNI,
  "human_omni_v2": lambda c, r: prompts.human_omni_v2(c.emotions),
  "emocaliber": lambda c, r: prompts.emocaliber(c.emotions),
  "open_vocabulary": lambda c, r: prompts.open_vocabulary(text=r["text"]),
  "text_classifier": lambda c, r: prompts.text_classifier(
    r["text"], c.emotions
  ),
  "emotion_thinker": lambda c, r: prompts.emotion_thinker(
    r["text"], r["caption"], c.emotions
  ),
  "emotion_thinker_listen": lambda c, r: prompts.emotion_thinker_listen(
    c.emotions
  ),
}


@dataclasses.dataclass(frozen=True)
class ExampleConfig:
  """How rows become token sequences."""

  mode: Mode = "sft"  # 'sft': prompt + target; 'rollout': prompt only.
  max_len: int = 512  # Tokens per example incl. image tokens (never cut).
  emotions: tuple[str, ...] = facs.LABEL_SETS["basic7"]  # Prompt label list.
  au_definitions: bool = True  # Facial-R1 prompt with the AU definitions.
  target: str = "description"  # SFT target field ('description'/'caption').
  # The recipe's prompt, one of PROMPTS: 'facial_r1' (the GRPO prompt;
  # text rows get the text classifier's), 'caption' (the plain-words
  # question the base model learns on), 'r1_omni', 'human_omni_v2',
  # 'emocaliber', 'open_vocabulary' (AffectGPT-R1), 'text_classifier' or
  # 'emotion_thinker' (a clip's transcript and prosody cues). A row's own
  # non-empty `prompt` field (synthesis prompts) overrides it.
  prompt: str = "facial_r1"
  system: str | None = None  # Optional system turn.
  image: ip.ImageProcessorConfig = ip.ImageProcessorConfig()
  # Listening: every row's clip as [num_mel_bins, audio_frames] features
  # (cut to the budget); 0 = the model does not listen (clips ignored).
  audio_frames: int = 0
  num_mel_bins: int = 128
  # Watching: a row's clip as this many evenly spaced frames (all, if fewer
  # are stored); 0 = the model does not watch (a video row is a bad row).
  video_frames: int = 0
  # Per-frame preprocessing (Qwen2.5-VL's video budget by default); its
  # patch, merge and temporal patch sizes must equal `image`'s.
  video: ip.ImageProcessorConfig = video_lib.VIDEO
  # A video with its sound (Qwen2.5-Omni): the model's time positions per
  # second (its vision.tokens_per_second) and chunk length.
  tokens_per_second: float = 25
  seconds_per_chunk: float = 2

  def __post_init__(self):
    if self.video_frames < 0:
      raise ValueError(
        f"ExampleConfig.video_frames={self.video_frames}: use 0 (the model "
        "does not watch) or the frames to sample per clip."
      )
    watched = ("patch_size", "merge_size", "temporal_patch_size")
    for field in watched if self.video_frames else ():
      a, b = getattr(self.image, field), getattr(self.video, field)
      if a != b:
        raise ValueError(
          f"ExampleConfig.video.{field}={b} but image.{field}={a}: images "
          "and videos share one vision tower; set them equal."
        )


def preview_image(row: dict) -> bytes | None:
  """Encoded bytes that show the row in a report: its image, or its clip's
  last stored frame (synthetic and most real clips end at the apex)."""
  image = bytes(row.get("image", b""))
  if image:
    return image
  frames = row.get("video")
  return bytes(frames[-1]) if frames is not None and len(frames) else None


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _fields(row: dict) -> dict[str, str]:
  """The row's text fields prompts and judges read, decoded."""
  return {k: _text(row.get(k, b"")) for k in ("text", "caption")}


def _texts(values) -> list[str]:
  return [_text(v) for v in values]


class Prepare:
  """Callable row -> example; picklable for grain's worker processes.

  `tokenizer` is a `emojax.data.tokenizer.Tokenizer` or its folder; given
  the folder, each worker process loads it once (pass the folder when
  running grain workers).
  """

  def __init__(self, tokenizer, cfg: ExampleConfig):
    self.cfg = cfg
    is_dir = isinstance(tokenizer, (str, os.PathLike))
    self._dir = str(tokenizer) if is_dir else None
    self._tok = tokenizer if self._dir is None else None

  @property
  def tok(self):
    if self._tok is None:
      self._tok = tokenizer_lib.Tokenizer.from_dir(self._dir)
    return self._tok

  def __getstate__(self):
    state = dict(self.__dict__)
    if self._dir is not None:
      state["_tok"] = None  # Reloaded from the folder in the worker.
    return state

  def __call__(self, row: dict) -> dict:
    try:
      return self._prepare(row)
    except errors.BadExampleError as e:
      return {"bad_example": e.describe()}

  def _bad(self, row, reason, field=None, fix=""):
    return errors.BadExampleError(
      reason,
      source=_text(row.get("source", b"")),
      line=int(row.get("line", 0)),
      field=field,
      fix=fix,
    )

  def _prompt(self, row: dict, has_visual: bool) -> str:
    if _text(row.get("prompt", b"")):
      return _text(row["prompt"])
    kind, fields = self.cfg.prompt, _fields(row)
    if kind not in PROMPTS:
      raise ValueError(
        f"ExampleConfig.prompt={kind!r}; use one of {sorted(PROMPTS)}."
      )
    if not has_visual and kind == "facial_r1":  # Text rows: dair-ai/emotion.
      return prompts.text_classifier(fields["text"])
    return PROMPTS[kind](self.cfg, fields)

  def _image(self, row: dict):
    data = row.get("image", b"")
    if not data:
      return None
    try:
      return ip.preprocess(bytes(data), self.cfg.image)
    except ip.ImageError as e:
      raise self._bad(row, str(e), "image") from None

  def _visual(self, row: dict):
    """(pixel_values_NC, grid_thw, second_per_grid_t: None for an image) of
    the row's image or video; None for a text row."""
    stored = row.get("video")
    has_video = stored is not None and len(stored) > 0
    if has_video and row.get("image", b""):
      raise self._bad(
        row,
        "the row has both an image and a video; a row holds one visual.",
        "video",
        "split it into an image row and a video row.",
      )
    if not has_video:
      image = self._image(row)
      return None if image is None else (*image, None)
    if not self.cfg.video_frames:
      raise self._bad(
        row,
        "the row is a video and the model does not watch "
        "(ExampleConfig.video_frames=0).",
        "video",
        "set config.data.video_frames > 0, or drop the video rows.",
      )
    return self._video(row, stored)

  def _video(self, row: dict, stored):
    fps = float(row.get("video_fps", 0.0))
    if not fps > 0:
      raise self._bad(
        row,
        f"video_fps={fps}: the stored frames' rate must be > 0.",
        "video_fps",
        "give the row its clip's frame rate (the JSONL `fps` field).",
      )
    ids = video_lib.sample_frames(len(stored), self.cfg.video_frames)
    try:
      return video_lib.preprocess_video(
        [bytes(stored[i]) for i in ids],
        self.cfg.video,
        fps=video_lib.sampled_fps(fps, len(ids), len(stored)),
        frame_ids=ids.tolist(),
      )
    except ip.ImageError as e:
      raise self._bad(
        row, f"clip of {len(stored)} frames: {e}", "video"
      ) from None

  def _clip(self, row: dict, is_video: bool):
    """(features_MF, frames) of the row's clip; None if not listening or
    for a silent video."""
    if not self.cfg.audio_frames:
      return None
    data = row.get("audio", b"")
    if not data and is_video:
      return None  # A video without sound is still a video.
    if not data:
      raise self._bad(
        row,
        "no clip, and the model listens.",
        "audio_path",
        "add the row's audio file (and config.data.audio=True), or drop "
        "the row.",
      )
    try:
      wave = audio_io.read(bytes(data), name="the row's clip")
      clip = audio_features.log_mel(
        wave, self.cfg.num_mel_bins, self.cfg.audio_frames
      )
    except ValueError as e:
      raise self._bad(row, str(e), "audio_path") from None
    if clip[1] < 3:  # Fewer frames give no audio token.
      raise self._bad(
        row,
        f"the clip is {len(wave)} samples, under 30 ms: no audio token.",
        "audio_path",
        "drop the row or bring the whole clip.",
      )
    return clip

  def _with_sound(self, ids: list[int], visual, n_audio: int) -> list[int]:
    """The video's one `<|video_pad|>` as its frames and sound interleaved
    (`tmrope.chunk_lengths`), inside `<|audio_bos|>` .. `<|audio_eos|>`."""
    _, grid_thw, second = visual
    lengths = tmrope.chunk_lengths(
      grid_thw,
      self.cfg.video.merge_size,
      second,
      self.cfg.tokens_per_second,
      self.cfg.seconds_per_chunk,
      n_audio,
    )
    body = [self.tok.audio_bos_id]
    for n_video_j, n_audio_j in lengths:
      body += [self.tok.video_pad_id] * n_video_j
      body += [self.tok.audio_pad_id] * n_audio_j
    body.append(self.tok.audio_eos_id)
    at = ids.index(self.tok.video_pad_id)
    return ids[:at] + body + ids[at + 1 :]

  def _prepare(self, row: dict) -> dict:
    visual = self._visual(row)
    is_video = visual is not None and visual[2] is not None
    clip = self._clip(row, is_video)
    with_sound = is_video and clip is not None  # One video item, as Omni's.
    chat = prompts.messages(
      self._prompt(row, visual is not None),
      image=visual is not None and not is_video,
      video=is_video,
      audio=clip is not None and not with_sound,
      system=self.cfg.system,
    )
    prompt = self.tok.apply_chat_template(chat, add_generation_prompt=True)
    n_visual = 0
    if visual is not None:
      n_visual = ip.num_image_tokens(visual[1], self.cfg.image.merge_size)
    ids = expand_image_pads(
      self.tok.encode(prompt),
      self.tok.image_pad_id,
      [0 if is_video else n_visual],
    )
    if is_video:
      if self.tok.video_pad_id not in ids:
        raise ValueError(
          "the tokenizer's chat template renders no <|video_pad|> for a "
          "video item; use a Qwen2.5-VL tokenizer folder or emojax's default."
        )
    n_audio = (
      0 if clip is None else int(audio_features.num_audio_tokens(clip[1]))
    )
    if with_sound:
      ids = self._with_sound(ids, visual, n_audio)
    elif is_video:
      ids = expand_image_pads(ids, self.tok.video_pad_id, [n_visual])
    if clip is not None and not with_sound:
      if self.tok.audio_pad_id not in ids:
        raise ValueError(
          "the tokenizer's chat template renders no <|AUDIO|> for an audio "
          "item; use a Qwen2.5-Omni tokenizer folder or emojax's default."
        )
      ids = expand_image_pads(ids, self.tok.audio_pad_id, [n_audio])
    mask = [0] * len(ids)
    if self.cfg.mode == "sft":
      target = _text(row.get(self.cfg.target, b""))
      if not target:
        raise self._bad(
          row,
          f"empty {self.cfg.target!r}, the SFT target.",
          self.cfg.target,
          "fill it, or pick another `target` field.",
        )
      completion = self._completion(chat, prompt, target)
      ids += completion
      mask += [1] * len(completion)
    if len(ids) > self.cfg.max_len:
      kind = "video" if is_video else "image"
      media = f"{n_visual} of them {kind} tokens, {n_audio} audio tokens"
      raise self._bad(
        row,
        f"{len(ids)} tokens ({media}) exceed max_len={self.cfg.max_len}; "
        "emojax never truncates (cutting through image or audio tokens "
        "breaks the model).",
        self.cfg.target if self.cfg.mode == "sft" else "text",
        f"raise max_len to >= {len(ids)}, or lower config.data.max_pixels "
        "(video_max_pixels, video_frames) or config.data.audio_seconds.",
      )
    pixel_values_NC, grid_thw, second = visual or (None, None, None)
    features_MF, frames = clip if clip else (None, 0)
    return {
      "input_ids": np.asarray(ids, np.int32),
      "loss_mask": np.asarray(mask, np.int32),
      "pixel_values": pixel_values_NC,
      "image_grid_thw": None if grid_thw is None else grid_thw[None],
      # Seconds per temporal grid step: [1] for a video, None for an image.
      "second_per_grid_ts": (
        None if second is None else np.asarray([second], np.float32)
      ),
      "input_features": features_MF,
      "feature_len": frames,
      "labels": _texts(row.get("labels", [])),
      "AUs": _texts(row.get("AUs", [])),
      **_fields(row),
      "source": _text(row.get("source", b"")),
      "line": int(row.get("line", 0)),
    }

  def _completion(self, chat, prompt: str, target: str) -> list[int]:
    """Assistant tokens: the target and its end-of-turn, nothing after."""
    turn = {"role": "assistant", "content": target}
    full = self.tok.apply_chat_template(
      chat + [turn], add_generation_prompt=False
    )
    if not full.startswith(prompt):
      raise ValueError(
        "the chat template renders the prompt differently with and without "
        "the assistant turn; emojax needs the prompt to be a prefix."
      )
    return self.tok.encode(full[len(prompt) :].rstrip())


def expand_image_pads(
  ids: list[int], image_pad_id: int, counts: list[int]
) -> list[int]:
  """Replaces the i-th `<|image_pad|>` by counts[i] copies of it (also
  used for `<|video_pad|>` and `<|AUDIO|>`, with their token counts)."""
  out, i = [], 0
  for t in ids:
    if t == image_pad_id:
      if i >= len(counts):
        raise ValueError(f"more than {len(counts)} image pads in the prompt.")
      out += [t] * counts[i]
      i += 1
    else:
      out.append(t)
  if i != sum(1 for c in counts if c):
    raise ValueError(f"{i} image pads in the prompt for {len(counts)} images.")
  return out
