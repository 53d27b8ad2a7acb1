"""Budget messages folded into bounded, downsampled series for the HTML report (pure, no I/O).

The run's span [t0, t1] is cut into at most `max_points` buckets of `step_s` (a whole number of
evaluation ticks). Per key and bucket the report keeps what a reader must not miss:

    budget remaining   the bucket's minimum (the burn-down never looks better than it was)
    burn rate per window   the bucket's maximum (a spike over a threshold stays visible)
    value              the bucket's last per-slice statistic (metric SLIs: drift, fairness, ...)

Memory is keys x windows x buckets, whatever the length of the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sloguard.core.backtest.alert_quality import Key, key_of, parse_ts


@dataclass(frozen=True)
class Grid:
    t0: float
    step_s: float
    n: int

    @staticmethod
    def over(t0: float, t1: float, tick_s: float, max_points: int = 300) -> Grid:
        ticks = max(1, math.ceil((t1 - t0) / tick_s) + 1)
        per_bucket = max(1, math.ceil(ticks / max_points))
        step = tick_s * per_bucket
        return Grid(t0, step, max(1, math.floor((t1 - t0) / step) + 1))

    def index(self, t: float) -> int:
        return min(self.n - 1, max(0, int((t - self.t0) // self.step_s)))


@dataclass
class KeySeries:
    budget: list[float | None]
    burn: dict[str, list[float | None]] = field(default_factory=dict)
    value: list[float | None] | None = None
    peak_burn: float = 0.0  # the highest burn rate seen on any window: ranks keys worth showing
    min_budget: float = 1.0


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _max(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


class RunSeries:
    """Per key downsampled series of one run's budget messages; `add` them in any order."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.keys: dict[Key, KeySeries] = {}
        self.dimension: dict[tuple[str, str], str] = {}  # (model, slo) -> dimension
        self.objective: dict[tuple[str, str], float] = {}
        self.health: dict[str, dict[str, Any]] = {}  # model -> the newest whole-model health message

    def add(self, event: dict[str, Any]) -> None:
        i = self.grid.index(parse_ts(event["ts"]))
        key = key_of(event)
        ks = self.keys.get(key)
        if ks is None:
            ks = self.keys[key] = KeySeries([None] * self.grid.n)
            self.dimension[key[:2]] = event.get("dimension", "")
            self.objective[key[:2]] = event.get("objective")
        remaining = event.get("budget_remaining")
        if remaining is not None:
            ks.budget[i] = _min(ks.budget[i], round(remaining, 4))
            ks.min_budget = min(ks.min_budget, remaining)
        for window, rate in (event.get("burn_rates") or {}).items():
            series = ks.burn.setdefault(window, [None] * self.grid.n)
            series[i] = _max(series[i], round(rate, 3))
            ks.peak_burn = max(ks.peak_burn, rate)
        if "value" in event:
            if ks.value is None:
                ks.value = [None] * self.grid.n
            if event["value"] is not None:
                ks.value[i] = round(event["value"], 5)
        if "health" in event and not is_segment(key):
            self.health[key[0]] = event["health"]

    def models(self) -> list[str]:
        return sorted({k[0] for k in self.keys})

    def slos(self, model: str) -> list[str]:
        return sorted({k[1] for k in self.keys if k[0] == model})

    def keys_of(self, model: str, slo: str) -> list[Key]:
        """The SLO's keys, whole model first, then the most burnt."""
        keys = [k for k in self.keys if k[:2] == (model, slo)]
        return sorted(keys, key=lambda k: (bool(is_segment(k)), -self.keys[k].peak_burn, k))

    def final_budget(self, key: Key) -> float | None:
        return next((b for b in reversed(self.keys[key].budget) if b is not None), None)


def is_segment(key: Key) -> bool:
    """True when the key is a segment, not the whole model."""
    return key[2] != "{}"
