"""Gateway benchmark: direct vs a bare proxy vs Orchestra vs LiteLLM (see run.py)."""
