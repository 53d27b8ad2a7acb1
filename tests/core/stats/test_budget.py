"""Tests for sloguard.core.stats.budget: burn rates and budget remaining (SRE workbook, ch. 5).

    burn rate        = (bad / total) / (1 - target)
    budget remaining = 1 - bad / ((1 - target) x total)
    degradation burn = ((baseline - current) / baseline) / acceptable degradation
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.stats.budget import budget_remaining, burn_rate, degradation, degradation_burn

totals = st.integers(min_value=1, max_value=10**9)
targets = st.sampled_from([0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999]) | st.floats(0.5, 0.99999)


@st.composite
def bad_total_budget(draw: st.DrawFn) -> tuple[int, int, float]:
    total = draw(totals)
    bad = draw(st.integers(min_value=0, max_value=total))
    return bad, total, 1 - draw(targets)


@settings(max_examples=300, deadline=None)
@given(bad_total_budget())
def test_burn_rate_formula(case: tuple[int, int, float]) -> None:
    bad, total, budget = case
    exact = Fraction(bad, total) / Fraction(budget)
    assert burn_rate(bad, total, budget) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(bad_total_budget())
def test_budget_remaining_formula(case: tuple[int, int, float]) -> None:
    bad, total, budget = case
    exact = 1 - Fraction(bad) / (Fraction(budget) * total)
    got = budget_remaining(bad, total, budget)
    assert got == pytest.approx(float(exact), rel=1e-12, abs=1e-12)
    # over the SLO window itself, remaining = 1 - burn rate
    assert got == pytest.approx(1 - burn_rate(bad, total, budget), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("bad", "total", "target", "burn", "remaining"),
    [
        (0, 1000, 0.999, 0.0, 1.0),
        (1, 1000, 0.999, 1.0, 0.0),  # exactly the budget
        (10, 1000, 0.999, 10.0, -9.0),  # ten budgets: remaining goes negative
        (144, 10_000, 0.999, 14.4, -13.4),  # the fast-burn threshold
        (5, 1000, 0.99, 0.5, 0.5),
        (1000, 1000, 0.9, 10.0, -9.0),  # everything bad
    ],
)
def test_hand_computed_values(bad, total, target, burn, remaining) -> None:
    assert burn_rate(bad, total, 1 - target) == pytest.approx(burn, rel=1e-9, abs=1e-12)
    assert budget_remaining(bad, total, 1 - target) == pytest.approx(remaining, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("total", [0, 0.0, -1])
def test_empty_window_burns_nothing_and_keeps_the_whole_budget(total) -> None:
    assert burn_rate(0, total, 0.001) == 0.0
    assert budget_remaining(0, total, 0.001) == 1.0


def test_timeslice_budget() -> None:
    # 30 days of 5-minute slices, target 0.99: budget is 86.4 slices; 43.2 bad slices use half
    slices = 30 * 24 * 12
    assert budget_remaining(43.2, slices, 0.01) == pytest.approx(0.5)
    assert burn_rate(43.2, slices, 0.01) == pytest.approx(0.5)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=1e-3, max_value=1e3),
    st.floats(min_value=0.0, max_value=2.0),
    st.floats(min_value=1e-3, max_value=1.0),
)
def test_degradation_burn_formula(baseline: float, ratio: float, acceptable: float) -> None:
    current = baseline * ratio
    expected = (Fraction(baseline) - Fraction(current)) / Fraction(baseline) / Fraction(acceptable)
    got = degradation_burn(baseline, current, acceptable)
    assert got == pytest.approx(float(expected), rel=1e-9, abs=1e-9)
    assert degradation(baseline, current) == pytest.approx(
        float((Fraction(baseline) - Fraction(current)) / Fraction(baseline)), rel=1e-9, abs=1e-12)


def test_degradation_burn_hand_values() -> None:
    # precision baseline 0.90, acceptable 5 % degradation
    assert degradation_burn(0.90, 0.855, 0.05) == pytest.approx(1.0)  # exactly at the limit
    assert degradation_burn(0.90, 0.90, 0.05) == 0.0
    assert degradation_burn(0.90, 0.81, 0.05) == pytest.approx(2.0)
    assert degradation_burn(0.90, 0.99, 0.05) == pytest.approx(-2.0)  # better than baseline


def test_budget_text_clamps_an_overspent_budget_for_people() -> None:
    from sloguard.core.stats.budget import budget_text

    assert budget_text(0.425) == "42% left"
    assert budget_text(0.0) == "exhausted, 1.0x over"
    assert budget_text(-14.33) == "exhausted, 15.3x over"  # spent 15.3 budgets, not "-1433% left"
    assert budget_text(None) == "n/a"
