"""The one error type for bad checkpoints and configs."""


class CheckpointError(ValueError):
  """A checkpoint or its config cannot be used; the message says why."""
