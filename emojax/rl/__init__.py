"""RL core: group advantages, the GRPO loss family, metrics, weights."""
