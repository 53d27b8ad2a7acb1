"""Error budgets and burn rates (SRE workbook, ch. 5; DESIGN.md "Semantics").

Error budget = 1 - SLO target over the SLO window. For occurrences the budget is a share of the
events seen in the window; for timeslices it is (1 - target) x the number of slices in the window.

    burn rate over w     = (bad fraction over w) / (1 - target)
    budget remaining     = 1 - bad / ((1 - target) x total)          (may go negative)

A burn rate of 1 spends exactly the budget over the SLO window; 14.4 spends 2 % of a 30-day
budget in one hour. A window with no events has burn rate 0: silence is reported by `no-data`
alerts and the low-traffic guard, never as a healthy burn.
"""

from __future__ import annotations

from typing import Any


def burn_rate(bad: float, total: float, error_budget: float) -> float:
    """(bad / total) / error_budget; 0 when the window holds nothing."""
    if total <= 0:
        return 0.0
    return (bad / total) / error_budget


def budget_remaining(bad: float, total: float, error_budget: float) -> float:
    """Fraction of the window's budget left: 1 - bad / (error_budget x total); 1 when empty."""
    if total <= 0:
        return 1.0
    return 1.0 - bad / (error_budget * total)


def budget_text(remaining: float | None) -> str:
    """The budget left as people read it: "42% left", and once spent "exhausted, 15.3x over" (the
    budget spent 15.3 times) rather than "-1433% left". Messages keep the raw `budget_remaining`.

    >>> budget_text(0.42), budget_text(-14.33), budget_text(None)
    ('42% left', 'exhausted, 15.3x over', 'n/a')
    """
    if remaining is None:
        return "n/a"
    if remaining > 0:
        return f"{remaining:.0%} left"
    return f"exhausted, {1 - remaining:.1f}x over"


def degradation(baseline: float, current: float) -> float:
    """Relative degradation from a baseline, (baseline - current) / baseline (the seed's formula)."""
    return (baseline - current) / baseline


def degradation_burn(baseline: float, current: float, acceptable: float) -> float:
    """The seed's burn: degradation / acceptable degradation (1 = exactly at the limit)."""
    return degradation(baseline, current) / acceptable


def health_score(remaining: list[tuple[str, float]], weights: dict[str, float]) -> dict[str, Any]:
    """A composite 0-1 health score from (dimension, budget remaining) pairs, for dashboards only.

    An SLO's health is its remaining budget clamped to [0, 1]; a dimension's is its worst SLO's;
    the score is the weighted mean over the dimensions present (weight 1 unless configured, 0
    leaves a dimension out). Alerts and gates never read it: they stay per dimension.
    """
    dims: dict[str, float] = {}
    for dim, r in remaining:
        h = min(1.0, max(0.0, r))
        dims[dim] = min(dims.get(dim, 1.0), h)
    w = {d: weights.get(d, 1.0) if weights else 1.0 for d in dims}
    total = sum(w.values())
    score = sum(w[d] * h for d, h in dims.items()) / total if total else None
    return {
        "score": None if score is None else round(score, 4),
        "dimensions": {d: round(h, 4) for d, h in sorted(dims.items())},
        "weights": {d: w[d] for d in sorted(w)},
    }
