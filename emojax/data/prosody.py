"""Prosody cues of one utterance (EmotionCoT's labels) and their caption.

EmotionThinker's EmotionCoT annotates each clip with speaker traits and
prosody levels (dingdongwang/EmotionThinker
`EmotionCoT/pipeline/prosody_labeling.py` and `api_call.py`): gender, age
level, pitch / energy / speed level, intonation contour and stressed words.
emojax keeps them in a row's `caption` (what the clip sounds like, as a
face row's caption says what the face does) in one fixed form,

    speaker: female, young adult; pitch: high; energy: high; speed: fast;
    intonation: rising; stressed: never, again

so the prompt can show them and a judge can check reasoning against them.
`from_record` reads the pipeline's field names and the aliases its
`api_call.py` lists for the released files.
"""

import dataclasses

LEVELS = {
  "pitch": ("low", "normal", "high"),
  "energy": ("low", "normal", "high"),
  "speed": ("slow", "normal", "fast"),
  "intonation": (
    "rising",
    "falling",
    "rising-falling",
    "falling-rising",
    "flat",
    "expressive",
  ),
  "gender": ("male", "female"),
  "age": ("child", "teenager", "young adult", "middle-aged", "elderly"),
}
# Pipeline values that mean "no reading" (its contour check gives up on
# short or noisy clips): the cue is left out rather than made up.
UNKNOWN = ("", "unknown", "uncertain", "too_short", "none", "n/a")

# Cue -> the record fields it may be stored under, best first
# (`api_call.py` FIELD_ALIASES; the first is the pipeline's own name).
ALIASES = {
  "gender": ("gender", "gender_new", "speaker_gender"),
  "age": ("age_level", "age_group", "speaker_age"),
  "pitch": ("pitch_level",),
  "energy": ("energy_level",),
  "speed": ("speed_level",),
  "intonation": ("intonation", "intonation_contour", "contour_shape"),
  "stressed": ("stressed_words", "stress", "stress_words", "stressed_word"),
}


class CueError(ValueError):
  """A cue value outside EmotionCoT's vocabulary (names the field)."""

  def __init__(self, field: str, value, allowed):
    self.field = field
    super().__init__(
      f"{value!r} is not a {field} level; use one of {', '.join(allowed)} "
      "(or unknown)."
    )


@dataclasses.dataclass(frozen=True)
class Cues:
  """One clip's cues; None where the annotation has no reading."""

  gender: str | None = None
  age: str | None = None
  pitch: str | None = None
  energy: str | None = None
  speed: str | None = None
  intonation: str | None = None
  stressed: tuple[str, ...] = ()

  def levels(self) -> dict[str, str]:
    """The cues with a level (every field but `stressed`) that are known."""
    names = [f.name for f in dataclasses.fields(self) if f.name != "stressed"]
    return {n: getattr(self, n) for n in names if getattr(self, n)}


def level(name: str, value) -> str | None:
  """A canonical level ('Young Adult' -> 'young adult'), None if unknown."""
  v = " ".join(str(value or "").replace("_", " ").split()).lower()
  v = v.replace("middle aged", "middle-aged")
  v = v.replace("rising falling", "rising-falling")
  v = v.replace("falling rising", "falling-rising")
  if v in UNKNOWN or v.replace(" ", "_") in UNKNOWN:
    return None
  if v not in LEVELS[name]:
    raise CueError(name, value, LEVELS[name])
  return v


def _words(value) -> tuple[str, ...]:
  if isinstance(value, str):
    value = value.replace(";", ",").split(",")
  words = (str(w).strip().strip("'\"").strip() for w in value or ())
  return tuple(w for w in words if w and w.lower() not in UNKNOWN)


def from_record(record: dict) -> Cues:
  """Cues from an EmotionCoT record; raises CueError naming the field."""
  found = {}
  for cue, names in ALIASES.items():
    name = next((n for n in names if record.get(n) not in (None, "", [])), None)
    if name is None:
      continue
    try:
      found[cue] = (
        _words(record[name]) if cue == "stressed" else level(cue, record[name])
      )
    except CueError as e:
      raise CueError(name, record[name], LEVELS[cue]) from e
  return Cues(**found)


def caption(cues: Cues) -> str:
  """The fixed one-line form (module docstring); empty parts left out."""
  parts = []
  speaker = [v for v in (cues.gender, cues.age) if v]
  if speaker:
    parts.append("speaker: " + ", ".join(speaker))
  for name in ("pitch", "energy", "speed", "intonation"):
    if getattr(cues, name):
      parts.append(f"{name}: {getattr(cues, name)}")
  if cues.stressed:
    parts.append("stressed: " + ", ".join(cues.stressed))
  return "; ".join(parts)


def parse_caption(text: str) -> Cues:
  """`caption`'s inverse; raises CueError on a value it does not know."""
  found: dict = {}
  for part in text.split(";"):
    key, _, value = part.partition(":")
    key, value = key.strip(), value.strip()
    if key == "speaker":
      for v in value.split(","):
        v = v.strip()
        cue = "gender" if v in LEVELS["gender"] else "age"
        found[cue] = level(cue, v)
    elif key == "stressed":
      found["stressed"] = _words(value)
    elif key in LEVELS:
      found[key] = level(key, value)
  return Cues(**found)
