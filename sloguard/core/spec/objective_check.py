"""Warnings `sloguard validate` prints about configs that are valid but will not behave as meant.

**Objectives inside the baseline's normal variation.** A metric SLO judges each slice against its
objective. If the objective sits within the spread of the values the model showed on known-good
history (between the 5th and 95th percentile of the baseline's per-slice values,
`slice_values` in the baseline file), or healthy slices miss it more often than the error budget
allows, the SLO pages on noise: a disparate-impact objective of 0.8 on a baseline median of 0.805
misses half the slices. The expected false-page rate is what the SLO's page rules would do on
slices that miss the objective independently with the baseline's share `p`:

    simulate SIM_DAYS x 30 days of Bernoulli(p) slices (seeded: the same config always gives the
    same number), roll each page rule's long and short windows over them (bad slices / slices in
    the window >= burn rate x (1 - target) over both), apply the resolve hold, count firings

It is computable for metric SLOs whose baseline has per-slice values (`sloguard baseline` writes
them); ratio SLOs have no per-slice distribution to draw from.

**Segments nobody listed.** A fairness attribute missing from `models.<m>.segments` is added to
them (fairness compares the groups that segment keys count), so every SLO gets a budget and
alerts per group; validate says so.
"""

from __future__ import annotations

import math

import numpy as np

from sloguard.core.spec.model import Config, Slo
from sloguard.core.spec.sli import METRIC
from sloguard.core.spec.timeutil import format_duration

SIM_DAYS = 10  # simulated months of slices per rule
MIN_BASELINE_SLICES = 20  # fewer baseline slices say too little about the spread


def miss_share(slo: Slo, values: list[float]) -> float:
    """Share of baseline slices whose value misses the objective."""
    v = np.asarray(values, dtype=np.float64)
    good = v >= slo.objective if slo.sli.spec.direction == ">=" else v <= slo.objective
    return float(1.0 - good.mean())


def false_pages_per_30d(slo: Slo, p_bad: float, seed: int = 0) -> tuple[float, float]:
    """(page firings per 30 days, share of time a page fires) on independent slices that miss the
    objective with probability `p_bad` (see the module docstring)."""
    width = slo.budgeting.slice_s
    month = 30 * 86_400 // width
    n = SIM_DAYS * month
    bad = np.random.default_rng(seed).random(n) < p_bad
    csum = np.concatenate(([0], np.cumsum(bad)))
    firing = np.zeros(n, bool)
    for rule in slo.rules:
        if rule.severity != "page":
            continue
        need = rule.burn_rate * (1 - slo.slo_target)
        holds = np.ones(n, bool)
        for w in (rule.long_window_s, rule.short_window_s):
            k = max(1, w // width)
            count = csum[k:] - csum[:-k]
            window = np.zeros(n, bool)
            window[k - 1:] = count / k >= need - 1e-12
            holds &= window
        firing |= _held(holds, max(1, math.ceil(slo.resolve_hold_s / width)) if slo.resolve_hold_s else 0)
    onsets = int(firing[0]) + int(np.count_nonzero(firing[1:] & ~firing[:-1]))
    return onsets / SIM_DAYS, float(firing.mean())


def _held(holds: np.ndarray, hold: int) -> np.ndarray:
    """A rule's firing state with the resolve hold: it stays firing until false for `hold` slices."""
    if not hold or not holds.any():
        return holds
    idx = np.flatnonzero(holds)
    firing = np.zeros_like(holds)
    ends = np.minimum(idx + hold + 1, holds.size)  # a true slice keeps it firing through the next `hold`
    start = np.zeros(holds.size + 1, np.int64)
    np.add.at(start, idx, 1)
    np.add.at(start, ends, -1)
    firing[:] = np.cumsum(start)[:-1] > 0
    return firing


def objective_warnings(config: Config) -> list[str]:
    """Metric SLOs whose objective the baseline's normal variation reaches (see the module docstring)."""
    out = []
    for i, slo in enumerate(config.slos):
        values = config.models[slo.model].slice_values.get(slo.name)
        if slo.sli.family != METRIC or not values or len(values) < MIN_BASELINE_SLICES or math.isnan(slo.objective):
            continue
        p5, p50, p95 = np.quantile(values, [0.05, 0.5, 0.95]).tolist()
        p_bad = miss_share(slo, values)
        within = p5 <= slo.objective <= p95
        if not within and p_bad <= 1 - slo.slo_target:
            continue
        pages, share = false_pages_per_30d(slo, p_bad)
        where = ("sits within the baseline's normal variation" if within
                 else "is missed by healthy slices more often than its budget allows")
        out.append(
            f"slos[{i}] ({slo.name}).objective: {slo.objective:g} {where} (per-slice {slo.sli.kind} on "
            f"{len(values)} baseline slices of {format_duration(slo.budgeting.slice_s)}: 5th percentile "
            f"{p5:.4g}, median {p50:.4g}, 95th {p95:.4g}; {p_bad:.0%} of them miss it, against "
            f"{1 - slo.slo_target:.0%} of slices its target allows): on noise alone it would page about "
            f"{pages:.3g} times per 30 days and fire {share:.0%} of the time; move the objective past the "
            f"baseline's spread (or lower the target)"
        )
    return out


def segment_warnings(config: Config) -> list[str]:
    """Attributes added to a model's segments because its fairness SLOs compare their groups."""
    from sloguard.core.messages.intersections import SEPARATOR

    return [
        f"models.{m.name}.fairness.{'attributes' if SEPARATOR in attr else 'attribute'}: {attr!r} is not in "
        f"models.{m.name}.segments, so it was added to "
        f"them: every SLO of {m.name} gets a budget and alerts per {attr} (list it in segments to say so)"
        for m in config.models.values() for attr in m.added_segments
    ]
