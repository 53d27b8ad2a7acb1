"""Rollout policy: canary analysis turned into promote, hold or rollback decisions."""
