"""Data: FACS knowledge, emotion wheel, datasets, tokenizer, prompts."""
