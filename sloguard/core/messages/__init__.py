"""Input events and their columnar batches; the output message types."""
