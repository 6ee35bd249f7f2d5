"""Training: state and optimiser, SFT / GRPO / synthesis stages, the loop."""
