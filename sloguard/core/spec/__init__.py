"""The config file: SLO specs, SLI catalogue, alert policy, one strict YAML reader."""
