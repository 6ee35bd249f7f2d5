"""Walking a jaxpr in tests: what a traced function will run."""

from collections.abc import Iterator

import jax.extend.core


def equations(jaxpr, primitive: str, *, not_inside: str = "") -> Iterator:
  """Every equation of `primitive` in jaxpr, nested jaxprs included (loop
  bodies, custom-VJP rules, shard_map bodies, Pallas kernels), except in
  the bodies of `not_inside` equations."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == primitive:
      yield eqn
    if eqn.primitive.name == not_inside:
      continue
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      yield from equations(sub, primitive, not_inside=not_inside)
