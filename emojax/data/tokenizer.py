"""Hugging Face tokenizer folders with their chat template; the default one.

`Tokenizer.from_dir` reads any HF tokenizer folder (tokenizer.json plus the
optional tokenizer_config.json, special_tokens_map.json,
generation_config.json and chat template) and renders chat templates with
jinja2 the way transformers does. `build_default` trains the embedded
default: a Qwen2-style byte-level BPE on the synthetic FACS corpus, saved as
a folder `transformers.AutoTokenizer.from_pretrained` loads.

  python -m emojax.data.tokenizer --build [--out=DIR]
"""

import argparse
import datetime
import json
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence

import jinja2
import jinja2.ext
import jinja2.sandbox
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from emojax.data import synth

# Qwen2.5-VL-*-Instruct's chat template (tokenizer_config.json on the Hub),
# used when a folder brings none, with Qwen2.5-Omni's audio item added (a
# clip renders as its start, placeholder and end tokens).
QWEN2_5_VL_CHAT_TEMPLATE = (
  "{% set image_count = namespace(value=0) %}"
  "{% set video_count = namespace(value=0) %}"
  "{% for message in messages %}"
  "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
  "You are a helpful assistant.<|im_end|>\n"
  "{% endif %}<|im_start|>{{ message['role'] }}\n"
  "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
  "{% else %}{% for content in message['content'] %}"
  "{% if content['type'] == 'image' or 'image' in content or "
  "'image_url' in content %}"
  "{% set image_count.value = image_count.value + 1 %}"
  "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
  "<|vision_start|><|image_pad|><|vision_end|>"
  "{% elif content['type'] == 'video' or 'video' in content %}"
  "{% set video_count.value = video_count.value + 1 %}"
  "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
  "<|vision_start|><|video_pad|><|vision_end|>"
  "{% elif content['type'] == 'audio' or 'audio' in content %}"
  "<|audio_bos|><|AUDIO|><|audio_eos|>"
  "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
  "{% endfor %}<|im_end|>\n"
  "{% endif %}{% endfor %}{% if add_generation_prompt %}"
  "<|im_start|>assistant\n{% endif %}"
)

# Qwen-style control tokens (special: dropped by skip_special_tokens).
SPECIAL_TOKENS = (
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<|vision_start|>",
  "<|vision_end|>",
  "<|image_pad|>",
  "<|video_pad|>",
)
# Qwen2.5-Omni's audio placeholder, start and end (in Qwen's id order); only
# the `audio` variant of the default tokenizer has them.
AUDIO_TOKENS = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")
# Reasoning tags kept whole but not special, so decoded text keeps them.
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
# Qwen2's pre-tokenizer split pattern (tokenizer.json of Qwen2/2.5 models).
QWEN2_PATTERN = (
  r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
DEFAULT_NAME = "facs_synth-v1"
DEFAULT_VOCAB_SIZE = 2048
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


class TokenizerFolderError(ValueError):
  """A tokenizer folder is missing a file or holds a malformed one."""


class _Generation(jinja2.ext.Extension):
  """transformers' `{% generation %}` block, rendered as its body."""

  tags = {"generation"}

  def parse(self, parser):
    lineno = next(parser.stream).lineno
    body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
    call = self.call_method("_body")
    return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

  def _body(self, caller):
    return caller()


def _raise(message):
  raise jinja2.exceptions.TemplateError(message)


def _tojson(
  x, ensure_ascii=False, indent=None, separators=None, sort_keys=False
):
  return json.dumps(
    x,
    ensure_ascii=ensure_ascii,
    indent=indent,
    separators=separators,
    sort_keys=sort_keys,
  )


def compile_template(source: str, where: str) -> jinja2.Template:
  """Compiles a chat template in transformers' sandboxed environment."""
  env = jinja2.sandbox.ImmutableSandboxedEnvironment(
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=[_Generation, jinja2.ext.loopcontrols],
  )
  env.filters["tojson"] = _tojson
  env.globals["raise_exception"] = _raise
  env.globals["strftime_now"] = lambda f: datetime.datetime.now().strftime(f)
  try:
    return env.from_string(source)
  except jinja2.TemplateSyntaxError as e:
    raise TokenizerFolderError(
      f"{where}: chat template line {e.lineno}: {e.message}. Fix the jinja "
      "syntax, or delete the template to use the built-in Qwen2.5-VL one."
    ) from e


def _read_json(path: pathlib.Path) -> dict:
  if not path.exists():
    return {}
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise TokenizerFolderError(
      f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); fix or "
      "remove the file."
    ) from e
  except UnicodeDecodeError as e:
    raise TokenizerFolderError(f"{path}: not UTF-8 text ({e}).") from e
  if not isinstance(data, dict):
    raise TokenizerFolderError(f"{path}: expected a JSON object at the top.")
  return data


def _token_text(value) -> str | None:
  """A special token as tokenizer_config writes it: str or {content: str}."""
  if isinstance(value, dict):
    return value.get("content")
  return value if isinstance(value, str) else None


def _find_template(root: pathlib.Path, config: dict) -> tuple[str, str]:
  """(template source, where it came from), in transformers' order."""
  jinja_file = root / "chat_template.jinja"
  if jinja_file.exists():
    return jinja_file.read_text(encoding="utf-8"), str(jinja_file)
  where = str(root / "tokenizer_config.json") + " field chat_template"
  template = config.get("chat_template")
  if isinstance(template, list):
    named = {t.get("name"): t.get("template") for t in template}
    template = named.get("default")
    if template is None:
      raise TokenizerFolderError(
        f"{where}: a list of templates needs one named 'default'."
      )
  if template is not None and not isinstance(template, str):
    raise TokenizerFolderError(f"{where}: expected a string.")
  if template:
    return template, where
  processor = _read_json(root / "chat_template.json").get("chat_template")
  if processor:
    return processor, str(root / "chat_template.json")
  return QWEN2_5_VL_CHAT_TEMPLATE, "built-in Qwen2.5-VL template"


class Tokenizer:
  """A `tokenizers.Tokenizer` plus its chat template and special tokens."""

  def __init__(
    self,
    tokenizer: tokenizers.Tokenizer,
    *,
    chat_template: str = QWEN2_5_VL_CHAT_TEMPLATE,
    special: dict[str, str] | None = None,
    eos_ids: Sequence[int] | None = None,
    config: dict | None = None,
    where: str = "chat template",
  ):
    self.tokenizer = tokenizer
    self.chat_template = chat_template
    self.special = {k: v for k, v in (special or {}).items() if v}
    self.config = dict(config or {})
    self._template = compile_template(chat_template, where)
    self._eos_ids = tuple(eos_ids) if eos_ids else self._default_eos()

  @classmethod
  def from_dir(cls, path: str | os.PathLike) -> "Tokenizer":
    """Loads a Hugging Face tokenizer folder."""
    root = pathlib.Path(path)
    file = root / "tokenizer.json"
    if not file.exists():
      raise TokenizerFolderError(
        f"{file} is missing: a tokenizer folder needs tokenizer.json (write "
        "one with `AutoTokenizer.save_pretrained(dir)`, or build the "
        "default with `python -m emojax.data.tokenizer --build`)."
      )
    try:
      tok = tokenizers.Tokenizer.from_file(str(file))
    except Exception as e:  # tokenizers raises a bare Exception.
      raise TokenizerFolderError(
        f"{file}: not a tokenizers file ({e}); re-save the tokenizer."
      ) from e
    config = _read_json(root / "tokenizer_config.json")
    special = {k: _token_text(config.get(k)) for k in _SPECIAL_KEYS}
    for k, v in _read_json(root / "special_tokens_map.json").items():
      if k in _SPECIAL_KEYS and _token_text(v):
        special[k] = _token_text(v)
    eos = _read_json(root / "generation_config.json").get("eos_token_id")
    eos_ids = [eos] if isinstance(eos, int) else eos
    template, where = _find_template(root, config)
    return cls(
      tok,
      chat_template=template,
      special=special,
      eos_ids=eos_ids,
      config=config,
      where=where,
    )

  def _id(self, token: str | None) -> int | None:
    return None if token is None else self.tokenizer.token_to_id(token)

  def token_id(self, token: str) -> int:
    """The id of a single token; fails if the vocabulary lacks it."""
    i = self._id(token)
    if i is None:
      raise KeyError(f"token {token!r} is not in this tokenizer's vocabulary.")
    return i

  def _default_eos(self) -> tuple[int, ...]:
    names = (self.special.get("eos_token"), "<|im_end|>", "<|endoftext|>")
    ids = [self._id(t) for t in names]
    return tuple(dict.fromkeys(i for i in ids if i is not None))

  def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
    return self.tokenizer.encode(
      text, add_special_tokens=add_special_tokens
    ).ids

  def decode(
    self, ids: Iterable[int], skip_special_tokens: bool = False
  ) -> str:
    return self.tokenizer.decode(
      [int(i) for i in ids], skip_special_tokens=skip_special_tokens
    )

  def apply_chat_template(
    self,
    messages: list[dict],
    add_generation_prompt: bool = True,
    **kwargs,
  ) -> str:
    """Renders HF chat messages to text (one `<|image_pad|>` per image).

    Expanding each image's pad token to its patch count is the image
    processor's job, as in transformers' Qwen2.5-VL processor.
    """
    return self._template.render(
      messages=messages,
      tools=kwargs.pop("tools", None),
      documents=kwargs.pop("documents", None),
      add_generation_prompt=add_generation_prompt,
      **self.special,
      **kwargs,
    )

  @property
  def vocab_size(self) -> int:
    """Ids in use, added tokens included (transformers' `len(tokenizer)`)."""
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  @property
  def pad_id(self) -> int:
    for token in (self.special.get("pad_token"), "<|endoftext|>"):
      if (i := self._id(token)) is not None:
        return i
    return self.eos_ids[0]

  @property
  def eos_ids(self) -> tuple[int, ...]:
    if not self._eos_ids:
      raise KeyError("this tokenizer names no eos token and has no <|im_end|>.")
    return self._eos_ids

  @property
  def image_pad_id(self) -> int:
    return self.token_id("<|image_pad|>")

  @property
  def video_pad_id(self) -> int:
    return self.token_id("<|video_pad|>")

  @property
  def vision_start_id(self) -> int:
    return self.token_id("<|vision_start|>")

  @property
  def vision_end_id(self) -> int:
    return self.token_id("<|vision_end|>")

  @property
  def audio_pad_id(self) -> int:
    return self.token_id("<|AUDIO|>")

  @property
  def audio_bos_id(self) -> int:
    return self.token_id("<|audio_bos|>")

  @property
  def audio_eos_id(self) -> int:
    return self.token_id("<|audio_eos|>")

  def save(self, path: str | os.PathLike) -> None:
    """Writes tokenizer.json and tokenizer_config.json (HF layout)."""
    root = pathlib.Path(path)
    root.mkdir(parents=True, exist_ok=True)
    self.tokenizer.save(str(root / "tokenizer.json"))
    added = {
      str(i): {
        "content": t.content,
        "lstrip": t.lstrip,
        "normalized": t.normalized,
        "rstrip": t.rstrip,
        "single_word": t.single_word,
        "special": t.special,
      }
      for i, t in sorted(self.tokenizer.get_added_tokens_decoder().items())
    }
    config = {
      **self.config,
      "added_tokens_decoder": added,
      "chat_template": self.chat_template,
      **{k: self.special.get(k) for k in _SPECIAL_KEYS},
    }
    (root / "tokenizer_config.json").write_text(
      json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def build_default(
  out_dir: str | os.PathLike,
  corpus: Iterable[str],
  vocab_size: int = DEFAULT_VOCAB_SIZE,
) -> Tokenizer:
  """Trains a Qwen2-style byte-level BPE on `corpus` and saves it there.

  `vocab_size` counts the special and tag tokens. The same corpus gives the
  same files.
  """
  extra = len(SPECIAL_TOKENS) + len(TAG_TOKENS)
  if vocab_size < 256 + extra + 1:
    raise ValueError(
      f"vocab_size={vocab_size} is below the 256 bytes + {extra} special "
      "tokens a byte-level BPE needs; pick at least 512."
    )
  tok = tokenizers.Tokenizer(models.BPE())
  tok.normalizer = normalizers.NFC()
  tok.pre_tokenizer = pre_tokenizers.Sequence(
    [
      pre_tokenizers.Split(
        tokenizers.Regex(QWEN2_PATTERN), behavior="isolated", invert=False
      ),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]
  )
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
    vocab_size=vocab_size - extra,
    min_frequency=2,
    show_progress=False,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
  )
  tok.train_from_iterator(corpus, trainer)
  tok.add_special_tokens(
    [
      tokenizers.AddedToken(t, special=True, normalized=False)
      for t in SPECIAL_TOKENS
    ]
  )
  tok.add_tokens(
    [
      tokenizers.AddedToken(t, special=False, normalized=False)
      for t in TAG_TOKENS
    ]
  )
  config = {
    "tokenizer_class": "Qwen2Tokenizer",
    "model_max_length": 32768,
    "clean_up_tokenization_spaces": False,
    "split_special_tokens": False,
    "errors": "replace",
    "add_prefix_space": False,
  }
  special = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
  result = Tokenizer(tok, special=special, config=config)
  result.save(out_dir)
  return result


def default_dir(audio: bool = False) -> pathlib.Path:
  """Where the default tokenizer is cached ($EMOJAX_CACHE or ~/.cache)."""
  cache = os.environ.get("EMOJAX_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "emojax"
  )
  name = DEFAULT_NAME + ("-audio" if audio else "")
  return pathlib.Path(cache) / "tokenizer" / name


def _default_corpus() -> Iterable[str]:
  return synth.text_corpus(seed=0, n=4000)


def ensure_default(audio: bool = False) -> Tokenizer:
  """Loads the default tokenizer, building it on first use.

  `audio` adds Qwen2.5-Omni's audio tokens (AUDIO_TOKENS) after every id
  of the plain one, so the two agree on all other ids.
  """
  target = default_dir(audio)
  if not (target / "tokenizer.json").exists():
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
      if audio:
        with_audio(ensure_default()).save(tmp)
      else:
        build_default(tmp, _default_corpus())
      # Another process may have finished first; its files are identical.
      if not target.exists():
        os.replace(tmp, target)
    except OSError:
      if not (target / "tokenizer.json").exists():
        raise
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  return Tokenizer.from_dir(target)


def with_audio(tok: Tokenizer) -> Tokenizer:
  """A copy of `tok` with AUDIO_TOKENS appended as special tokens and the
  default chat template (which renders audio items)."""
  inner = tokenizers.Tokenizer.from_str(tok.tokenizer.to_str())
  inner.add_special_tokens(
    [
      tokenizers.AddedToken(t, special=True, normalized=False)
      for t in AUDIO_TOKENS
    ]
  )
  return Tokenizer(inner, special=tok.special, config=tok.config)


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(prog="python -m emojax.data.tokenizer")
  parser.add_argument(
    "--build", action="store_true", help="build the default tokenizer"
  )
  parser.add_argument("--out", default=None, help="folder (default: cache)")
  args = parser.parse_args(argv)
  if not args.build:
    parser.print_help()
    return 2
  if args.out:
    tok = build_default(args.out, _default_corpus())
    where = args.out
  else:
    tok = ensure_default()
    where = default_dir()
  print(f"tokenizer with {tok.vocab_size} ids in {where}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
