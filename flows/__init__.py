"""Bytewax dataflows that wire the pure core (`sloguard`) to sources and sinks."""
