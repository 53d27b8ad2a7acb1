"""sloguard: error budgets for ML systems.

The `sloguard` package is the pure domain core: events, config, windows, SLIs, budgets and
alert rules, in plain Python and numpy. It does no I/O and never reads the clock; time arrives
with the events or as an argument. `flows/` wires it into Bytewax and `connectors/` talks to
Kafka, Slack and HTTP.
"""

__version__ = "0.1.0"
