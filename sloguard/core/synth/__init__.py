"""Synthetic scenarios: generated traffic with injected incidents."""
