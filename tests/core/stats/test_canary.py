"""Tests for sloguard.core.stats.canary: the tests against hand computations and scipy, and the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sloguard.core.stats.canary import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    BudgetContext,
    Counts,
    blast_radius,
    compare_histograms,
    compare_ratio,
    compare_samples,
    mann_whitney_from_histograms,
    two_proportion_ztest,
)

DAY = 86_400


def statsmodels_ztest(x1: float, n1: float, x2: float, n2: float) -> tuple[float, float]:
    """statsmodels.stats.proportion.proportions_ztest([x1, x2], [n1, n2], alternative="larger"),
    written out by hand: pooled proportion, z, upper normal tail via erfc."""
    p1, p2 = x1 / n1, x2 / n2
    p = (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return z, 0.5 * math.erfc(z / math.sqrt(2))


@pytest.mark.parametrize(
    "x1,n1,x2,n2",
    [(30, 1000, 20, 1000), (60, 2000, 40, 20000), (5, 5000, 50, 50000), (1, 1200, 0, 1500), (900, 1000, 850, 1000)],
)
def test_ztest_matches_the_statsmodels_formula(x1: int, n1: int, x2: int, n2: int) -> None:
    z, p = two_proportion_ztest(x1, n1, x2, n2)
    ez, ep = statsmodels_ztest(x1, n1, x2, n2)
    assert z == pytest.approx(ez, rel=1e-12)
    assert p == pytest.approx(ep, rel=1e-9, abs=1e-300)


def test_ztest_hand_numbers() -> None:
    # 3 % vs 2 % on 1000 each: pooled 0.025, se = sqrt(0.025 * 0.975 * 0.002) = 0.0069821
    z, p = two_proportion_ztest(30, 1000, 20, 1000)
    assert z == pytest.approx(0.01 / math.sqrt(0.025 * 0.975 * 0.002))
    assert z == pytest.approx(1.43223, abs=1e-5)
    assert p == pytest.approx(0.07604, abs=1e-5)  # normal table: P(Z >= 1.432) = 0.0760


def test_ztest_squared_is_the_uncorrected_chi_square() -> None:
    z, p = two_proportion_ztest(60, 2000, 40, 20000, alternative="two-sided")
    chi2, p_chi, _, _ = stats.chi2_contingency([[60, 1940], [40, 19960]], correction=False)
    assert z**2 == pytest.approx(chi2, rel=1e-10)
    assert p == pytest.approx(p_chi, rel=1e-8)


def test_ztest_alternatives_and_degenerate_cases() -> None:
    z, larger = two_proportion_ztest(10, 1000, 30, 1000, alternative="larger")
    _, smaller = two_proportion_ztest(10, 1000, 30, 1000, alternative="smaller")
    assert z < 0 and larger + smaller == pytest.approx(1.0)
    assert two_proportion_ztest(0, 5000, 0, 50000) == (0.0, 1.0)  # nobody failed: no evidence
    assert two_proportion_ztest(10, 10, 5, 5) == (0.0, 1.0)
    with pytest.raises(ValueError):
        two_proportion_ztest(0, 0, 1, 10)
    with pytest.raises(ValueError):
        two_proportion_ztest(1, 10, 1, 10, alternative="bigger")


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mann_whitney_from_histograms_equals_scipy_on_expanded_samples(alternative: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(3, 30))
    c = rng.integers(0, 60, bins)
    s = rng.integers(0, 80, bins)
    if seed == 2:
        c = np.roll(c, 2)  # a shifted canary
    values = np.arange(bins, dtype=float)  # any increasing representative per bin
    ref = stats.mannwhitneyu(np.repeat(values, c), np.repeat(values, s), alternative=alternative, method="asymptotic")
    u, p = mann_whitney_from_histograms(c, s, alternative)
    assert u == pytest.approx(ref.statistic, rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_from_histograms_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        mann_whitney_from_histograms([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        mann_whitney_from_histograms([0, 0], [1, 2])
    with pytest.raises(ValueError):
        mann_whitney_from_histograms([1, -1], [1, 2])
    assert mann_whitney_from_histograms([0, 5, 0], [0, 7, 0])[1] == 1.0  # all ties: no evidence


def test_compare_ratio_fails_a_worse_canary_with_the_p_value_in_the_reason() -> None:
    c = compare_ratio("fraud-availability", Counts(250, 5000), Counts(50, 50_000))
    assert c.verdict == FAIL
    assert c.p_value is not None and c.p_value < 0.05
    assert c.effect == pytest.approx(0.05 - 0.001)
    assert "p = " in c.message and "< 0.05" in c.message and "canary is worse" in c.message
    assert c.as_dict()["canary"] == {"bad": 250.0, "total": 5000.0, "bad_rate": 0.05}


def test_compare_ratio_passes_an_equal_or_better_canary() -> None:
    assert compare_ratio("s", Counts(5, 5000), Counts(50, 50_000)).verdict == PASS
    assert compare_ratio("s", Counts(0, 5000), Counts(50, 50_000)).verdict == PASS
    # significant but smaller than the tolerated difference
    c = compare_ratio("s", Counts(80, 5000), Counts(500, 50_000), min_effect=0.01)
    assert c.p_value is not None and c.p_value < 0.05 and c.verdict == PASS


def test_compare_ratio_with_too_little_traffic_is_inconclusive_never_a_pass() -> None:
    # even a perfect-looking canary: 0 errors out of 50 says nothing
    c = compare_ratio("s", Counts(0, 50), Counts(50, 50_000), min_samples=1000)
    assert c.verdict == INCONCLUSIVE
    assert "only 50 canary events" in c.message and "need 1000" in c.message
    assert compare_ratio("s", Counts(0, 0), Counts(0, 0)).verdict == INCONCLUSIVE
    # and a terrible one too: no verdict before the minimum
    assert compare_ratio("s", Counts(40, 50), Counts(50, 50_000), min_samples=1000).verdict == INCONCLUSIVE


def test_blast_radius_by_hand() -> None:
    budget = BudgetContext(error_budget=0.001, remaining=0.5, window_s=30 * DAY)
    b = blast_radius(0.002, budget)  # burn 2x: the half left lasts 0.5 x 30 d / 2 = 7.5 d
    assert b.burn_rate == pytest.approx(2.0)
    assert b.time_to_exhaustion_s == pytest.approx(7.5 * DAY)
    assert b.exhausts
    b = blast_radius(0.0004, budget)  # burn 0.4x: 37.5 d, longer than the window
    assert b.time_to_exhaustion_s == pytest.approx(37.5 * DAY)
    assert not b.exhausts
    assert not blast_radius(0.0, budget).exhausts
    assert blast_radius(0.0001, BudgetContext(0.001, 0.0, 30 * DAY)).exhausts


def test_compare_ratio_reports_the_blast_radius() -> None:
    budget = BudgetContext(error_budget=0.001, remaining=0.2, window_s=30 * DAY)
    c = compare_ratio("s", Counts(6, 10_000), Counts(50, 100_000), budget=budget)
    assert c.verdict == PASS  # 0.06 % vs 0.05 %: not significant
    assert c.blast is not None and c.blast_exceeded  # but burn 0.6x > 0.2 left
    assert c.as_dict()["blast_radius"]["exhausts_budget"] is True


def test_compare_samples_detects_a_latency_shift() -> None:
    rng = np.random.default_rng(7)
    stable = rng.lognormal(3.0, 0.4, 5000)
    slow = rng.lognormal(3.1, 0.4, 2000)
    same = rng.lognormal(3.0, 0.4, 2000)
    c = compare_samples("lat", slow, stable, unit="ms")
    ref = stats.mannwhitneyu(slow, stable, alternative="greater")
    assert c.verdict == FAIL and c.p_value == pytest.approx(ref.pvalue)
    assert c.effect is not None and c.effect > 0
    assert "ms" in c.message
    assert compare_samples("lat", same, stable).verdict == PASS
    assert compare_samples("lat", slow[:100], stable).verdict == INCONCLUSIVE
    # a metric where higher is better (e.g. a score): lower canary values are the regression
    assert compare_samples("score", -slow, -stable, higher_is_worse=False).verdict == FAIL


def test_compare_histograms_agrees_with_compare_samples_on_binned_data() -> None:
    rng = np.random.default_rng(11)
    edges = np.linspace(0, 200, 41)
    stable = rng.gamma(4, 10, 20_000)
    canary = rng.gamma(4, 11, 3_000)
    cs, _ = np.histogram(canary, edges)
    ss, _ = np.histogram(stable, edges)
    c = compare_histograms("lat", edges, cs, ss)
    ref = stats.mannwhitneyu(np.repeat(edges[:-1], cs), np.repeat(edges[:-1], ss), alternative="greater")
    assert c.verdict == FAIL
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert compare_histograms("lat", edges, cs // 10, ss, min_samples=1000).verdict == INCONCLUSIVE
    with pytest.raises(ValueError):
        compare_histograms("lat", edges[:5], cs, ss)


def test_normal_tail_is_scipy_stats_norm_sf() -> None:
    from sloguard.core.stats.canary import _sf

    for z in (-40.0, -3.0, -0.5, 0.0, 0.7, 1.96, 5.0, 12.0, 37.0, 40.0):
        assert _sf(z) == pytest.approx(float(stats.norm.sf(z)), rel=1e-14, abs=0)
