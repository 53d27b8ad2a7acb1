"""Evaluation: the sharded ingest and label join, windows per key, judging ticks."""
