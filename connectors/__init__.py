"""Kafka configuration and admin, the embedded dev broker, and other edges to the outside world."""
