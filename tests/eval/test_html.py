"""completions.html: escaping, AU colouring, filters, image sources."""

import re

from emojax.eval import html, score


def _page(tmp_path, examples, **kwargs):
  ev = score.evaluate(examples)
  return html.page(examples, ev, str(tmp_path), **kwargs)


def test_completion_text_is_escaped_and_aus_coloured(tmp_path):
  text = (
    "<think>cheeks up (AU6), brows down (AU4) <script>alert(1)</script>"
    "</think><answer>happy</answer>"
  )
  ex = score.Example(text, ("happiness",), ("AU6", "AU12"))
  page = _page(tmp_path, [ex])
  assert "<script>alert" not in page
  assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
  assert '<span class="au-ok">AU6</span>' in page
  assert '<span class="au-bad">AU4</span>' in page
  assert '<span class="chip miss">AU12</span>' in page  # Gold, not named.


def test_unbalanced_tags_leave_no_open_span(tmp_path):
  ex = score.Example("<think>half a thought", ("anger",))
  body = _page(tmp_path, [ex]).split("<main>")[1].split("</main>")[0]
  assert body.count("<span") == body.count("</span>")
  assert 'data-invalid="1"' in body and 'data-unparseable="1"' in body


def test_image_bytes_are_written_when_not_embedded(tmp_path):
  png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
  ex = score.Example("<answer>sad</answer>", ("sadness",), image=png)
  page = _page(tmp_path, [ex], embed=False)
  (src,) = re.findall(r'<img src="([^"]+)"', page)
  assert (tmp_path / src).read_bytes() == png
  page = _page(tmp_path, [ex], embed=True)
  assert 'src="data:image/png;base64,' in page
