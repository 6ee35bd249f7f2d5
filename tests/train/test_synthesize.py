"""The synthesis stage's verify-and-retry loop, with a scripted model.

The model is replaced by a function of the prompt, so the test states
exactly which rows pass on which attempt and checks what was kept, the
retry feedback the model was shown, and the give-up paths.
"""

import types

from emojax.train import stage_synthesize, stages


def _truth(row) -> tuple[list[str], str]:
  aus = [a.decode() if isinstance(a, bytes) else a for a in row["AUs"]]
  label = row["labels"][0]
  return aus, label.decode() if isinstance(label, bytes) else label


def _scripted(run, source, prompts_seen):
  """Train row 0 passes at once, row 1 on its third try, the rest never."""
  index_of = {int(source[j]["line"]): j for j in range(len(source))}

  def generate(run_, params, batch, rng, **sampling):
    texts = []
    for p, line in enumerate(batch["line"]):
      ids = [int(i) for i in batch["input_ids"][p] if i != 0]
      prompt = run.tokenizer.decode(ids)
      j = index_of[int(line)]
      prompts_seen.setdefault(j, []).append(prompt)
      aus, label = _truth(source[j])
      right = (
        f"<think>I see {', '.join(aus) or 'a calm face'}.</think>"
        f"<answer>{label}</answer>"
      )
      tries = len(prompts_seen[j])
      ok = j == 0 or (j == 1 and tries == 3)
      texts.append(right if ok else "<think>AU99</think><answer>x</answer>")
    return types.SimpleNamespace(text=texts)

  return generate


def test_verify_retry_and_give_up(smoke_config, tmp_path, monkeypatch):
  c = smoke_config
  c.synthesize.num_examples, c.synthesize.batch_size = 4, 4
  c.synthesize.max_retry, c.synthesize.max_prompt_len = 3, 2048
  run = stages.make_run(c, str(tmp_path / "run"))
  source = run.data.as_data_source("train")
  seen = {}
  monkeypatch.setattr(
    stage_synthesize.generation, "generate", _scripted(run, source, seen)
  )
  stage = stage_synthesize.build(run, 2, params=None, restored=None)
  metrics = stage.step(0)
  kept = stage.progress()["kept"]
  assert [(r["index"], r["attempts"]) for r in kept] == [(0, 1), (1, 3)]
  assert metrics["pass_rate"] == 0.5 and metrics["prompt_too_long"] == 0
  # Rows 2-3 were tried 1 + max_retry times, each retry showing the last
  # response and what was wrong with it.
  assert len(seen[2]) == len(seen[3]) == 4 and len(seen[1]) == 3
  assert "AU99" in seen[2][1] and "AU99" not in seen[2][0]
  assert "The emotion label must be" in seen[2][1]

  # A prompt budget that fits first attempts (text, template and 16 image
  # tokens) but no retry: failing rows stop, nothing crashes.
  seen.clear()
  longest = max(
    len(
      run.tokenizer.encode(stage_synthesize._prompt(run, dict(source[j]), []))
    )
    for j in range(4)
  )
  c.synthesize.max_prompt_len = longest + 40
  stage = stage_synthesize.build(run, 2, params=None, restored=None)
  metrics = stage.step(0)
  assert metrics["prompt_too_long"] == 3
  assert [(r["index"], r["attempts"]) for r in stage.progress()["kept"]] == [
    (0, 1)
  ]
