"""Micro-benchmark of the accounting hot path."""
