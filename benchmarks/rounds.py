"""Ratios taken in rounds, shared by the throughput benchmarks.

This host's speed drifts by 20 % and more between minutes, so each ratio is taken within one round
of runs made back to back (never one side's best of N against the other's), the round with the
median ratio is shown in full, and every round's ratio is printed beside it.
"""

from __future__ import annotations


def median_round(ratios: list[float]) -> int:
    """The index of the round whose ratio is the median (the upper one of an even count)."""
    return sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]


def each_round(ratios: list[float]) -> str:
    """`   rounds: 0.13, 0.14, 0.13` when there was more than one round, else nothing."""
    return f"   rounds: {', '.join(f'{r:.2f}' for r in ratios)}" if len(ratios) > 1 else ""
