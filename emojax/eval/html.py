"""completions.html: every face beside its completion, gold and scores.

One self-contained page (inline CSS and JS, no network): a header with the
headline metrics and plots, filter buttons (wrong answers, invalid format,
unparseable answers, right answers), then one card per row. In the
completion, `<think>`/`<answer>` blocks are tinted and AUs coloured: green
when gold, red when not; gold AUs the reasoning missed are listed struck
through. Images are embedded as data URIs, or with `embed=False` linked by a
path relative to the page (bytes are then written to `images/`).
"""

import base64
import html
import os
import re
from collections.abc import Sequence

from emojax.data import facs
from emojax.eval import report
from emojax.eval.score import Evaluation, Example

PAGE_FILE = "completions.html"
_AU_TEXT = re.compile(r"\b(?:[LR][ \t-]?)?AU[ \t-]?\d+[A-E]?\b", re.IGNORECASE)
_TAG = re.compile(r"&lt;(/?)(think|answer|confidence)&gt;")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
 margin:0;background:#f4f5f7;color:#1d2433}
header{background:#1d2433;color:#fff;padding:18px 28px}
header h1{margin:0 0 10px;font-size:20px;font-weight:600}
.stats{display:flex;flex-wrap:wrap;gap:8px}
.stat{background:#2c3548;border-radius:8px;padding:6px 12px;min-width:90px}
.stat b{display:block;font-size:18px}.stat span{font-size:11px;opacity:.75}
.plots{display:flex;gap:12px;flex-wrap:wrap;padding:14px 28px 0}
.plots img{height:220px;background:#fff;border-radius:8px;padding:4px;
 box-shadow:0 1px 3px #0002;transition:height .15s}
.plots img:hover{height:460px}
nav{position:sticky;top:0;z-index:2;background:#f4f5f7ee;padding:12px 28px;
 display:flex;gap:8px;flex-wrap:wrap;border-bottom:1px solid #dde}
nav button{border:1px solid #c5cbd6;background:#fff;border-radius:16px;
 padding:5px 14px;cursor:pointer;font:inherit}
nav button.on{background:#1d2433;color:#fff;border-color:#1d2433}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));
 gap:14px;padding:14px 28px 40px}
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;
 display:flex;gap:14px;padding:12px;border-left:5px solid #9aa3b2}
.card.right{border-left-color:#2e9e5b}.card.wrong{border-left-color:#d64545}
.face{flex:0 0 136px;text-align:center;font-size:11px;color:#667}
.face img{width:128px;height:128px;object-fit:contain;border-radius:6px;
 image-rendering:pixelated;background:#eee}
.body{flex:1;min-width:0}
.row{margin:2px 0 6px}.k{color:#667;font-size:12px;margin-right:4px}
.chip{display:inline-block;border-radius:10px;padding:0 8px;margin:1px 2px;
 font-size:12px;background:#eef0f4}
.ok{background:#d8f3e2;color:#17663a}.bad{background:#fbdcdc;color:#9b1c1c}
.miss{background:#eee;color:#888;text-decoration:line-through}
.verdict{font-weight:600}.verdict.ok{background:none}.verdict.bad{background:none}
pre{white-space:pre-wrap;word-wrap:break-word;font:12.5px/1.45 ui-monospace,
 SFMono-Regular,Menlo,monospace;background:#fafbfc;border:1px solid #eceef2;
 border-radius:6px;padding:8px;margin:6px 0;max-height:260px;overflow:auto}
.tag{color:#8a8fa0}.think{background:#eef4ff}.answer{background:#fff3d6;
 font-weight:600}.confidence{background:#efe6ff}
.au-ok{color:#17663a;font-weight:700}.au-bad{color:#b42323;font-weight:700}
.rw{font-size:11px}.meta{font-size:11px;color:#99a}
.hidden{display:none}
"""

_JS = """
const cards=[...document.querySelectorAll('.card')];
document.querySelectorAll('nav button').forEach(b=>b.onclick=()=>{
 document.querySelectorAll('nav button').forEach(x=>x.classList.remove('on'));
 b.classList.add('on');const f=b.dataset.f;
 cards.forEach(c=>c.classList.toggle('hidden',f!=='all'&&!c.dataset[f]));});
"""


def _mime(data: bytes) -> str:
  if data.startswith(b"\x89PNG"):
    return "image/png"
  if data.startswith(b"\xff\xd8"):
    return "image/jpeg"
  if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
    return "image/webp"
  return "image/gif" if data.startswith(b"GIF8") else "application/octet-stream"


def data_uri(data: bytes) -> str:
  return f"data:{_mime(data)};base64,{base64.b64encode(data).decode()}"


def image_src(image, out_dir: str, index: int, embed: bool) -> str | None:
  """The `src` for one row's image (path or bytes), or None."""
  if image is None:
    return None
  if isinstance(image, str):
    if embed:
      with open(image, "rb") as f:
        return data_uri(f.read())
    return os.path.relpath(image, out_dir).replace(os.sep, "/")
  if embed:
    return data_uri(bytes(image))
  ext = {"image/png": "png", "image/jpeg": "jpg"}.get(_mime(image), "bin")
  rel = f"images/{index:06d}.{ext}"
  os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
  with open(os.path.join(out_dir, rel), "wb") as f:
    f.write(image)
  return rel


def _highlight(text: str, gold_aus: set[str]) -> str:
  """Escaped completion with tag blocks tinted and AUs coloured."""
  escaped = html.escape(text)

  def au(m: re.Match) -> str:
    try:
      name = facs.canonical_au(html.unescape(m.group(0)))
    except ValueError:
      return m.group(0)
    cls = "au-ok" if name in gold_aus else "au-bad"
    return f'<span class="{cls}">{m.group(0)}</span>'

  escaped = _AU_TEXT.sub(au, escaped)

  def tag(m: re.Match) -> str:
    closing, name = m.groups()
    mark = f'<span class="tag">{m.group(0)}</span>'
    return mark + "</span>" if closing else f'<span class="{name}">' + mark

  # Tint only well-formed text: an unbalanced tag would leave a span open.
  opens = len(re.findall(r"&lt;(?:think|answer|confidence)&gt;", escaped))
  closes = len(re.findall(r"&lt;/(?:think|answer|confidence)&gt;", escaped))
  return _TAG.sub(tag, escaped) if opens == closes else escaped


def _chips(items, cls: str = "") -> str:
  return "".join(
    f'<span class="chip {cls}">{html.escape(i)}</span>' for i in items
  )


def _reward_chips(rewards: dict[str, float]) -> str:
  out = []
  for name, v in rewards.items():
    cls = "ok" if v > 0.5 else ("bad" if v <= 0 else "")
    out.append(f'<span class="chip rw {cls}">{name} {v:+.2f}</span>')
  return "".join(out)


def _card(ex: Example, row: dict, src: str | None, index: int) -> str:
  gold_aus = set(row["gold_aus"])
  pred_aus = row["pred_aus"]
  flags = []
  if row["correct"] is False:
    flags.append('data-wrong="1"')
  if row["correct"]:
    flags.append('data-right="1"')
  if not row["format_ok"]:
    flags.append('data-invalid="1"')
  if row["pred_label"] is None:
    flags.append('data-unparseable="1"')
  state = {True: "right", False: "wrong", None: ""}[row["correct"]]
  verdict = {True: ("ok", "\u2713 right"), False: ("bad", "\u2717 wrong")}
  v_cls, v_text = verdict.get(row["correct"], ("", "no gold label"))
  pred = row["pred_label"] or "(no answer)"
  aus = _chips([a for a in pred_aus if a in gold_aus], "ok")
  aus += _chips([a for a in pred_aus if a not in gold_aus], "bad")
  aus += _chips(
    sorted(gold_aus - set(pred_aus), key=lambda a: int(a[2:])), "miss"
  )
  img = (
    f'<img src="{html.escape(src)}" alt="face {index}">' if src else "no image"
  )
  conf = row["confidence"]
  conf_html = (
    f'<span class="k">confidence</span>{conf:.2f}' if conf is not None else ""
  )
  fmt_chip = (
    _chips(["format ok"], "ok")
    if row["format_ok"]
    else _chips(["bad format"], "bad")
  )
  where = html.escape(ex.where)
  completion = _highlight(ex.completion, gold_aus) or "(empty completion)"
  return (
    f'<div class="card {state}" {" ".join(flags)}>'
    f'<div class="face">{img}<div class="meta">#{index} {where}</div></div>'
    '<div class="body"><div class="row">'
    f'<span class="k">gold</span>{_chips(ex.labels)} '
    f'<span class="k">answered</span><b>{html.escape(pred)}</b> '
    f'<span class="verdict {v_cls}">{v_text}</span> {fmt_chip} {conf_html}'
    '</div><div class="row">'
    f'<span class="k">AUs in &lt;think&gt;</span>{aus or "none"}</div>'
    f"<pre>{completion}</pre>"
    f'<div class="row">{_reward_chips(row["rewards"])}</div>'
    "</div></div>"
  )


def _stats(scalars: dict[str, float]) -> str:
  out = []
  for key, label in report.HEADLINE.items():
    if key in scalars:
      value = report.fmt(scalars[key])
      out.append(f'<div class="stat"><b>{value}</b><span>{label}</span></div>')
  return "".join(out)


def page(
  examples: Sequence[Example],
  ev: Evaluation,
  out_dir: str,
  *,
  title: str = "emojax completions",
  embed: bool = True,
  plots: dict[str, str] | None = None,
) -> str:
  """The HTML text; images under out_dir are written when not embedded."""
  counts = {
    "all": len(ev.rows),
    "wrong": sum(r["correct"] is False for r in ev.rows),
    "invalid": sum(not r["format_ok"] for r in ev.rows),
    "unparseable": sum(r["pred_label"] is None for r in ev.rows),
    "right": sum(bool(r["correct"]) for r in ev.rows),
  }
  names = {
    "all": "All",
    "wrong": "Wrong answer",
    "invalid": "Invalid format",
    "unparseable": "Unparseable",
    "right": "Right",
  }
  buttons = "".join(
    f'<button data-f="{k}"{" class=on" if k == "all" else ""}>'
    f"{names[k]} ({n})</button>"
    for k, n in counts.items()
  )
  plot_imgs = ""
  for name in plots or {}:
    path = os.path.join(out_dir, plots[name])
    src = image_src(path, out_dir, 0, embed)
    plot_imgs += f'<img src="{html.escape(src)}" alt="{name}">'
  cards = "".join(
    _card(ex, row, image_src(ex.image, out_dir, i, embed), i)
    for i, (ex, row) in enumerate(zip(examples, ev.rows, strict=True))
  )
  return (
    "<!doctype html><html lang=en><head><meta charset=utf-8>"
    f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
    f"<header><h1>{html.escape(title)}</h1><div class=stats>"
    f"{_stats(ev.scalars)}</div></header>"
    f'<div class="plots">{plot_imgs}</div>'
    f"<nav>{buttons}</nav><main>{cards}</main><script>{_JS}</script>"
    "</body></html>"
  )


def write(
  out_dir: str,
  examples: Sequence[Example],
  ev: Evaluation,
  **kwargs,
) -> str:
  """Writes completions.html in out_dir and returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, PAGE_FILE)
  text = page(examples, ev, out_dir, **kwargs)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path
