"""The SLO ecosystem: OpenSLO documents and Prometheus rules from the config."""
