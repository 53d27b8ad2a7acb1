"""The pure domain core: no Kafka, Bytewax, network or clock (an import-linter contract)."""
