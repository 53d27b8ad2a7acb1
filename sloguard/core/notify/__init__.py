"""Notification policy: incidents from pages, grouping, inhibition, pacing."""
