"""Mergeable statistics: windows, budgets, sketches, quality, fairness, drift, canary tests."""
