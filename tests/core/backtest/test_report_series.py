"""Downsampling of budget messages for the report (sloguard/core/backtest/report_series.py), by hand."""

from __future__ import annotations

import pytest

from sloguard.core.backtest.report_series import Grid, RunSeries
from sloguard.core.spec.timeutil import to_rfc3339

T0 = 1_767_225_600.0


def budget(minute: int, remaining: float, burn: float, segment: dict | None = None, value: float | None = None):
    event = {
        "slo": "s",
        "model": "m",
        "dimension": "drift",
        "objective": 0.1,
        "segment": segment or {},
        "ts": to_rfc3339(T0 + 60 * minute),
        "budget_remaining": remaining,
        "burn_rates": {"5m": burn},
    }
    if value is not None:
        event["value"] = value
    return event


@pytest.mark.parametrize(
    ("span_min", "max_points", "step_s", "n"),
    [
        (10, 300, 60, 11),  # short run: one bucket per tick
        (599, 300, 120, 300),  # 600 ticks -> 2 ticks per bucket
        (600, 300, 180, 201),  # 601 ticks -> 3 per bucket
    ],
)
def test_grid_buckets_are_whole_ticks_and_at_most_max_points(span_min, max_points, step_s, n):
    grid = Grid.over(T0, T0 + 60 * span_min, 60, max_points)
    assert (grid.step_s, grid.n) == (step_s, n)
    assert grid.index(T0 + 60 * span_min) == n - 1
    assert grid.index(T0 - 60) == 0


def test_buckets_keep_the_lowest_budget_the_highest_burn_and_the_last_value():
    rs = RunSeries(Grid(T0, 120, 3))
    for m, r, b, v in [(0, 1.0, 0.0, 0.05), (1, 0.8, 20.0, 0.2), (2, 0.9, 3.0, None), (3, 0.95, 1.0, 0.07)]:
        rs.add(budget(m, r, b, value=v))
    rs.add(budget(1, 0.5, 99.0, segment={"region": "eu"}))
    whole, eu = rs.keys_of("m", "s")  # whole model first
    series = rs.keys[whole]
    assert series.budget == [0.8, 0.9, None]
    assert series.burn["5m"] == [20.0, 3.0, None]
    assert series.value == [0.2, 0.07, None]
    assert (series.peak_burn, series.min_budget) == (20.0, 0.8)
    assert rs.final_budget(whole) == 0.9 and rs.final_budget(eu) == 0.5
    assert rs.keys[eu].value is None and rs.objective[("m", "s")] == 0.1
