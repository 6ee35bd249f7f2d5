"""Facial-R1 / FEA-20K JSONL (also make_data's output and VLM-R1 rows).

Layout, as RobitsG/Facial-R1 reads it (src/open-r1-multimodal/src/open_r1/
grpo_jsonl.py @0c3fc1c): one JSON object per line with `image` (a path, or
a list of one path, relative to an image folder), `labels` (list of emotion
words; `labels[0]` is the answer), `AUs` (list like ["AU6", "AU12"]),
`description` (the `<think>..</think><answer>..</answer>` reasoning), and
optional `question`, `meta_info`, `is_valid` (rows with is_valid=false are
dropped, as Facial-R1 does). VLM-R1-style rows may instead carry `problem`,
`solution` ("<answer>x</answer>") or `conversations`
([{"from": "human"|"gpt", "value": ...}]); those fill the gaps.
"""

import re

from etils import epath

from emojax.data import errors
from emojax.data.tfds import common

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class EmojaxFacialR1(common.ManualBuilder):
  """One split per `*.jsonl` in manual_dir (split = file stem)."""

  name = "emojax_facial_r1"
  HOMEPAGE = "https://github.com/RobitsG/Facial-R1"
  DESCRIPTION = "Facial-R1 / FEA-20K emotion + AU + reasoning JSONL."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the JSONL files (e.g. train.jsonl, test.jsonl) in manual_dir, with the
  images at the paths their `image` field names, relative to manual_dir or
  to an `images/` folder beside the files.
  """

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    # tfds refuses a split with no examples, so empty files (make_data's
    # sft.jsonl with --num_sft=0) are not splits.
    files = [f for f in sorted(root.glob("*.jsonl")) if f.read_bytes().strip()]
    if not files:
      raise self._missing(root / "*.jsonl", "non-empty JSONL files")
    return {
      common.split_name(f.stem): self._generate_examples(root, f) for f in files
    }

  def _generate_examples(self, root: epath.Path, file: epath.Path):
    with file.open("rb") as f:
      numbered = list(enumerate(f, start=1))
    yield from self._parse_all(
      numbered, lambda item: self._parse(root, file, *item)
    )

  def _parse(self, root: epath.Path, file: epath.Path, line: int, raw: bytes):
    source = file.name
    row = common.json_object(raw, source, line)
    if row is None:
      return None
    if row.get("is_valid", True) is False:
      return None
    description, question = _conversation(row)
    words = row.get("labels")
    if words is None:
      match = _ANSWER_RE.search(row.get("solution") or "")
      words = [match.group(1).strip()] if match else []
    if isinstance(words, str):
      words = [words]
    return common.example(
      source,
      line,
      image=self._image(root, file, row, line),
      labels=common.labels(words, source, line),
      aus=common.aus(row.get("AUs") or [], source, line),
      description=row.get("description") or description,
      caption=row.get("caption") or "",
      text=question,
    )

  def _image(self, root, file, row, line) -> bytes:
    name = row.get("image")
    if isinstance(name, list):
      if len(name) != 1:
        raise errors.BadExampleError(
          f"{len(name)} images in one row; emojax takes one per row.",
          source=file.name,
          line=line,
          field="image",
        )
      name = name[0]
    if not name:
      return b""
    for base in (file.parent, root, root / "images"):
      if (base / name).exists():
        return common.read_image(base / name, file.name, line)
    return common.read_image(file.parent / name, file.name, line)


def _conversation(row: dict) -> tuple[str, str]:
  """(assistant reply, question) from `conversations`/`problem`/`question`."""
  reply, question = "", row.get("question") or row.get("problem") or ""
  for turn in row.get("conversations") or []:
    if turn.get("from") in ("gpt", "assistant"):
      reply = reply or turn.get("value", "")
    elif turn.get("from") in ("human", "user"):
      question = question or turn.get("value", "")
  return reply, question.replace("<image>", "").strip()
