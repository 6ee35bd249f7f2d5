"""The rollout engine: prefill + decode with a KV cache, G samples a prompt.

from emojax import rollout
out = rollout.generate(params, cfg, batch, rng, num_generations=8,
                       max_new_tokens=64)
"""

from emojax.rollout.rollout import Rollout
from emojax.rollout.sampler import generate, release_caches
from emojax.rollout.sampling import SamplingParams

__all__ = ["Rollout", "SamplingParams", "generate", "release_caches"]
