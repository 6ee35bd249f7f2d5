"""Tokenizer folders and chat templates against transformers."""

import json

import pytest
import tokenizers
import transformers
from tokenizers import decoders, models, pre_tokenizers

from emojax.data import prompts, synth
from emojax.data import tokenizer as tk

TEXTS = (
  "The inner brows are raised (AU1).",
  "<think>lips parted (AU25)</think><answer>surprise</answer>",
  "héllo wörld 123 — ünïcode\n\n  spaces\tand tabs ✓",
  "<|im_start|>user\nhi<|im_end|>\n",
)


def _conversations() -> list[list[dict]]:
  prompt = prompts.facial_r1_grpo(("anger", "fear"), au_definitions=False)
  answer = "<think>brows lowered (AU4)</think><answer>anger</answer>"
  return [
    prompts.messages(prompt),
    prompts.messages("no image here", image=False, system="Be brief."),
    prompts.messages(prompt) + [{"role": "assistant", "content": answer}],
    [{"role": "user", "content": "plain string content"}],
    [
      {
        "role": "user",
        "content": [
          {"type": "image"},
          {"type": "text", "text": "two:"},
          {"type": "image"},
          {"type": "video"},
        ],
      }
    ],
  ]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  folder = tmp_path_factory.mktemp("tok")
  tk.build_default(folder, synth.text_corpus(0, 300), vocab_size=1024)
  return folder


def test_round_trip(built):
  tok = tk.Tokenizer.from_dir(built)
  for text in TEXTS:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
  ids = tok.encode("<think>x</think><answer>fear</answer><|im_end|>")
  assert tok.decode(ids, skip_special_tokens=True) == (
    "<think>x</think><answer>fear</answer>"
  )
  # Control and tag tokens are single ids.
  for t in tk.SPECIAL_TOKENS + tk.TAG_TOKENS:
    assert len(tok.encode(t)) == 1, t
  assert tok.vocab_size <= 1024


def test_matches_transformers_on_built_folder(built):
  ours = tk.Tokenizer.from_dir(built)
  hf = transformers.AutoTokenizer.from_pretrained(built)
  assert ours.vocab_size == len(hf)
  for text in TEXTS:
    assert ours.encode(text) == hf(text)["input_ids"], text
  for msgs in _conversations():
    for gen in (True, False):
      assert ours.apply_chat_template(
        msgs, add_generation_prompt=gen
      ) == hf.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=gen
      )
  assert ours.image_pad_id == hf.convert_tokens_to_ids("<|image_pad|>")
  assert ours.vision_start_id == hf.convert_tokens_to_ids("<|vision_start|>")
  assert ours.vision_end_id == hf.convert_tokens_to_ids("<|vision_end|>")
  assert ours.pad_id == hf.pad_token_id
  assert ours.eos_ids[0] == hf.eos_token_id
  assert hf.convert_ids_to_tokens(list(ours.eos_ids)) == [
    "<|im_end|>",
    "<|endoftext|>",
  ]


def test_build_is_deterministic(built, tmp_path):
  tk.build_default(tmp_path, synth.text_corpus(0, 300), vocab_size=1024)
  for name in ("tokenizer.json", "tokenizer_config.json"):
    assert (tmp_path / name).read_bytes() == (built / name).read_bytes()


def _qwen2_style_folder(path, template: str | None):
  """A tiny hand-made Qwen2-style tokenizer folder, as the Hub ships them."""
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
  merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("a", "n")]
  for a, b in merges:
    vocab[a + b] = len(vocab)
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges))
  tok.pre_tokenizer = pre_tokenizers.Sequence(
    [
      pre_tokenizers.Split(
        tokenizers.Regex(tk.QWEN2_PATTERN), behavior="isolated"
      ),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]
  )
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens(list(tk.SPECIAL_TOKENS))
  tok.save(str(path / "tokenizer.json"))
  config = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "eos_token": "<|endoftext|>",
  }
  if template is not None:
    config["chat_template"] = template
  (path / "tokenizer_config.json").write_text(json.dumps(config))
  (path / "special_tokens_map.json").write_text(
    json.dumps({"pad_token": "<|im_end|>"})
  )
  return path


def test_loads_a_qwen2_style_folder_with_its_own_template(tmp_path):
  template = (
    "{% for m in messages %}[{{ m['role'] | upper }}] "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|image_pad|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}[ASSISTANT] {% endif %}"
  )
  folder = _qwen2_style_folder(tmp_path, template)
  ours = tk.Tokenizer.from_dir(folder)
  hf = transformers.AutoTokenizer.from_pretrained(folder)
  for text in ("the cat and the hen", " then\n\nthe"):
    assert ours.encode(text) == hf(text)["input_ids"]
    assert ours.decode(ours.encode(text)) == text
  for msgs in _conversations():
    assert ours.apply_chat_template(msgs) == hf.apply_chat_template(
      msgs, tokenize=False, add_generation_prompt=True
    )
  assert ours.eos_ids[0] == hf.eos_token_id
  assert ours.pad_id == hf.pad_token_id == ours.token_id("<|im_end|>")


def test_folder_without_template_gets_qwen2_5_vl(tmp_path):
  folder = _qwen2_style_folder(tmp_path, None)
  ours = tk.Tokenizer.from_dir(folder)
  hf = transformers.AutoTokenizer.from_pretrained(folder)
  for msgs in _conversations():
    assert ours.apply_chat_template(msgs) == hf.apply_chat_template(
      msgs,
      tokenize=False,
      add_generation_prompt=True,
      chat_template=tk.QWEN2_5_VL_CHAT_TEMPLATE,
    )


def test_generation_config_eos_ids(tmp_path):
  folder = _qwen2_style_folder(tmp_path, None)
  (folder / "generation_config.json").write_text(
    json.dumps({"eos_token_id": [258, 256]})
  )
  assert tk.Tokenizer.from_dir(folder).eos_ids == (258, 256)


def test_bad_folders_say_which_file_and_fix(tmp_path):
  with pytest.raises(
    tk.TokenizerFolderError, match="tokenizer.json is missing"
  ):
    tk.Tokenizer.from_dir(tmp_path)
  folder = _qwen2_style_folder(tmp_path, "{% for m in messages %}{{ m }")
  with pytest.raises(
    tk.TokenizerFolderError,
    match=r"tokenizer_config.json field chat_template: chat template line 1",
  ):
    tk.Tokenizer.from_dir(folder)
  (folder / "tokenizer_config.json").write_text('{"eos_token": \n oops}')
  with pytest.raises(
    tk.TokenizerFolderError, match=r"tokenizer_config.json:2:"
  ):
    tk.Tokenizer.from_dir(folder)
  (folder / "tokenizer_config.json").write_text("{}")
  (folder / "tokenizer.json").write_text("{not json")
  with pytest.raises(tk.TokenizerFolderError, match="not a tokenizers file"):
    tk.Tokenizer.from_dir(folder)


def test_ensure_default_builds_once_into_the_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("EMOJAX_CACHE", str(tmp_path))
  assert tk.default_dir() == tmp_path / "tokenizer" / tk.DEFAULT_NAME
  monkeypatch.setattr(tk, "_default_corpus", lambda: synth.text_corpus(0, 50))
  first = tk.ensure_default()
  stamp = (tk.default_dir() / "tokenizer.json").stat().st_mtime_ns
  second = tk.ensure_default()
  assert (tk.default_dir() / "tokenizer.json").stat().st_mtime_ns == stamp
  assert first.encode(TEXTS[0]) == second.encode(TEXTS[0])
  assert [p.name for p in (tmp_path / "tokenizer").iterdir()] == [
    tk.DEFAULT_NAME
  ]


def test_the_audio_variant_appends_the_audio_tokens(tmp_path, monkeypatch):
  monkeypatch.setenv("EMOJAX_CACHE", str(tmp_path))
  monkeypatch.setattr(tk, "_default_corpus", lambda: synth.text_corpus(0, 50))
  plain, heard = tk.ensure_default(), tk.ensure_default(audio=True)
  assert heard.vocab_size == plain.vocab_size + 3
  assert [heard.token_id(t) for t in tk.AUDIO_TOKENS] == [
    plain.vocab_size + i for i in range(3)
  ]
  for text in TEXTS:  # every other id is the plain tokenizer's
    assert heard.encode(text) == plain.encode(text)
  chat = prompts.messages("what do you hear?", image=False, audio=True)
  ids = heard.encode(heard.apply_chat_template(chat))
  a = heard.audio_pad_id
  assert ids[ids.index(a) - 1 : ids.index(a) + 2] == [a + 1, a, a + 2]
  # transformers reads the folder the same way.
  hf = transformers.PreTrainedTokenizerFast(
    tokenizer_file=str(tk.default_dir(audio=True) / "tokenizer.json")
  )
  assert hf.encode("<|audio_bos|><|AUDIO|><|audio_eos|>") == [a + 1, a, a + 2]
