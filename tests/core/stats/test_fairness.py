"""Tests for sloguard.core.stats.fairness: group rates, gaps and ratios from per-group confusion counts.

The oracle is Fairlearn on the same seeded events: `equal_opportunity_difference`,
`demographic_parity_difference` / `_ratio`, and `MetricFrame(false_positive_rate).difference()`
for the FPR half of equalized odds. Groups under `min_support` must be reported and left out,
which is checked against Fairlearn run on the judged groups only.
"""

from __future__ import annotations

import doctest
import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.stats import fairness as fairness_module
from sloguard.core.stats.fairness import FAIRNESS_METRICS, FairnessResult, GroupRate, confusion_by_group, fairness
from sloguard.core.stats.quality import confusion_counts

flm = pytest.importorskip("fairlearn.metrics")


def test_doctests_run() -> None:
    result = doctest.testmod(fairness_module)
    assert result.attempted > 0
    assert result.failed == 0


def _events(seed: int, n: int = 6000, n_groups: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0/1 labels and predictions whose base rate and error rates differ by group."""
    rng = np.random.default_rng(seed)
    names = np.array([f"mt_{i}" for i in range(n_groups)])
    g = names[rng.integers(0, n_groups, n)]
    code = np.searchsorted(names, g)
    base = rng.uniform(0.05, 0.5, n_groups)[code]
    tpr = rng.uniform(0.5, 0.95, n_groups)[code]
    fpr = rng.uniform(0.01, 0.2, n_groups)[code]
    y = (rng.random(n) < base).astype(int)
    yhat = np.where(y == 1, rng.random(n) < tpr, rng.random(n) < fpr).astype(int)
    return y, yhat, g


def _per_group(y: np.ndarray, yhat: np.ndarray, g: np.ndarray) -> dict[str, np.ndarray]:
    return confusion_by_group(g, yhat == 1, y == 1)


def _frame(metric: Callable[..., float], y: np.ndarray, yhat: np.ndarray, g: np.ndarray) -> flm.MetricFrame:
    return flm.MetricFrame(metrics=metric, y_true=y, y_pred=yhat, sensitive_features=g)


@pytest.mark.parametrize("seed", range(6))
def test_matches_fairlearn(seed: int) -> None:
    y, yhat, g = _events(seed)
    per_group = _per_group(y, yhat, g)
    kw = {"sensitive_features": g}
    tpr = fairness("tpr_gap", per_group, min_support=1)
    fpr = fairness("fpr_gap", per_group, min_support=1)
    dpd = fairness("positive_rate_gap", per_group, min_support=1)
    dpr = fairness("disparate_impact", per_group, min_support=1)
    assert tpr.value == pytest.approx(flm.equal_opportunity_difference(y, yhat, **kw), rel=1e-12)
    assert fpr.value == pytest.approx(_frame(flm.false_positive_rate, y, yhat, g).difference(), rel=1e-12)
    assert fpr.value == pytest.approx(flm.false_positive_rate_difference(y, yhat, **kw), rel=1e-12)
    assert max(tpr.value, fpr.value) == pytest.approx(flm.equalized_odds_difference(y, yhat, **kw), rel=1e-12)
    assert dpd.value == pytest.approx(flm.demographic_parity_difference(y, yhat, **kw), rel=1e-12)
    assert dpr.value == pytest.approx(flm.demographic_parity_ratio(y, yhat, **kw), rel=1e-12)
    assert all(r.judged for r in (tpr, fpr, dpd, dpr))


@pytest.mark.parametrize("seed", range(4))
def test_group_rates_supports_and_extremes_match_fairlearn(seed: int) -> None:
    y, yhat, g = _events(seed)
    per_group = _per_group(y, yhat, g)
    cases = {
        "tpr_gap": (flm.true_positive_rate, lambda m: m == 1, "min"),
        "fpr_gap": (flm.false_positive_rate, lambda m: m == 0, "max"),
        "positive_rate_gap": (flm.selection_rate, lambda m: np.ones_like(m, bool), "min"),
        "disparate_impact": (flm.selection_rate, lambda m: np.ones_like(m, bool), "min"),
    }
    for metric, (fn, in_support, worst_end) in cases.items():
        by_group = _frame(fn, y, yhat, g).by_group
        result = fairness(metric, per_group, min_support=1)
        for rate in result.groups:
            assert rate.rate == pytest.approx(by_group[rate.group], rel=1e-12), (metric, rate.group)
            assert rate.support == int(in_support(y[g == rate.group]).sum()), (metric, rate.group)
        lo, hi = by_group.idxmin(), by_group.idxmax()
        assert (result.worst_group, result.best_group) == ((lo, hi) if worst_end == "min" else (hi, lo)), metric


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metric", FAIRNESS_METRICS)
def test_min_support_excludes_small_groups(seed: int, metric: str) -> None:
    y, yhat, g = _events(seed, n=3000, n_groups=3)
    # a tiny group with extreme rates that would dominate every gap if judged
    y_small = np.array([1, 1, 0, 0, 0, 1, 0, 0])
    yhat_small = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    y_all = np.concatenate([y, y_small])
    yhat_all = np.concatenate([yhat, yhat_small])
    g_all = np.concatenate([g, np.full(y_small.size, "tiny")])
    result = fairness(metric, _per_group(y_all, yhat_all, g_all), min_support=30)
    tiny = next(r for r in result.groups if r.group == "tiny")
    assert not tiny.judged
    assert tiny.support < 30
    assert not math.isnan(tiny.rate)  # reported all the same
    assert "tiny" not in (result.worst_group, result.best_group)
    # the value is what Fairlearn says on the judged groups alone
    fl = {
        "tpr_gap": flm.equal_opportunity_difference,
        "fpr_gap": flm.false_positive_rate_difference,
        "positive_rate_gap": flm.demographic_parity_difference,
        "disparate_impact": flm.demographic_parity_ratio,
        "equalized_odds_difference": flm.equalized_odds_difference,
        "equalized_odds_ratio": flm.equalized_odds_ratio,
    }[metric]
    assert result.value == pytest.approx(fl(y, yhat, sensitive_features=g), rel=1e-12)
    assert result.value != pytest.approx(fl(y_all, yhat_all, sensitive_features=g_all))


def test_support_is_the_rate_denominator() -> None:
    per_group = {"a": np.array([10, 5, 20, 65]), "b": np.array([3, 1, 2, 94])}  # n = 100 each
    supports = {m: {r.group: r.support for r in fairness(m, per_group, 0).groups} for m in FAIRNESS_METRICS}
    assert supports["tpr_gap"] == {"a": 30, "b": 5}
    assert supports["fpr_gap"] == {"a": 70, "b": 95}
    assert supports["positive_rate_gap"] == supports["disparate_impact"] == {"a": 100, "b": 100}
    # min_support applies to that denominator: b has 5 positives, so no TPR judgement at 30
    assert not fairness("tpr_gap", per_group, 30).judged
    assert fairness("fpr_gap", per_group, 30).judged


def test_min_support_boundary_is_inclusive() -> None:
    per_group = {"a": np.array([20, 0, 10, 0]), "b": np.array([15, 0, 15, 0])}  # 30 positives each
    assert fairness("tpr_gap", per_group, 30).judged
    assert not fairness("tpr_gap", per_group, 31).judged


@pytest.mark.parametrize("metric", FAIRNESS_METRICS)
@pytest.mark.parametrize(
    "per_group",
    [
        {},
        {"only": np.array([50, 10, 20, 500])},
        {"a": np.zeros(4), "b": np.zeros(4)},
        {"a": np.array([40, 10, 10, 40]), "b": np.zeros(4)},
    ],
)
def test_fewer_than_two_judged_groups_is_nan(metric: str, per_group: dict) -> None:
    result = fairness(metric, per_group, min_support=0)
    assert math.isnan(result.value)
    assert not result.judged
    assert result.worst_group is None and result.best_group is None
    assert len(result.groups) == len(per_group)


def test_zero_support_group_is_never_judged_even_with_min_support_zero() -> None:
    result = fairness("tpr_gap", {"a": np.array([0, 5, 0, 5]), "b": np.array([5, 0, 5, 0])}, min_support=0)
    a = result.groups[0]
    assert a.group == "a" and a.support == 0 and math.isnan(a.rate) and not a.judged


def test_disparate_impact_edges() -> None:
    nobody = {"a": np.array([0, 0, 10, 90]), "b": np.array([0, 0, 5, 95])}
    assert math.isnan(fairness("disparate_impact", nobody, 0).value)  # 0 / 0
    assert fairness("positive_rate_gap", nobody, 0).value == 0.0
    one_side = {"a": np.array([0, 0, 10, 90]), "b": np.array([5, 5, 0, 90])}
    assert fairness("disparate_impact", one_side, 0).value == 0.0
    equal = {"a": np.array([5, 5, 10, 80]), "b": np.array([1, 9, 0, 90])}
    assert fairness("disparate_impact", equal, 0).value == pytest.approx(1.0)


def test_worst_group_direction() -> None:
    per_group = {
        "low": np.array([10, 40, 40, 10]),  # TPR 0.2, FPR 0.8, selection 0.5
        "high": np.array([45, 5, 5, 45]),  # TPR 0.9, FPR 0.1, selection 0.5
        "mid": np.array([5, 5, 5, 85]),  # TPR 0.5, FPR ~0.056, selection 0.1
    }
    tpr = fairness("tpr_gap", per_group, 0)
    assert (tpr.worst_group, tpr.best_group) == ("low", "high")  # lowest TPR is worst
    assert tpr.value == pytest.approx(0.7)
    fpr = fairness("fpr_gap", per_group, 0)
    assert (fpr.worst_group, fpr.best_group) == ("low", "mid")  # highest FPR is worst
    di = fairness("disparate_impact", per_group, 0)
    assert di.value == pytest.approx(0.2)
    assert (di.worst_group, di.best_group) == ("mid", "high")  # tie at 0.5: first name wins
    flagged = fairness("disparate_impact", per_group, 0, positive_is_adverse=True)
    assert (flagged.worst_group, flagged.best_group) == ("high", "mid")  # fraud flags: most flagged is worst
    assert flagged.value == di.value


def test_result_independent_of_dict_order() -> None:
    y, yhat, g = _events(7)
    per_group = _per_group(y, yhat, g)
    reversed_groups = dict(reversed(list(per_group.items())))
    for metric in FAIRNESS_METRICS:
        assert fairness(metric, per_group, 30) == fairness(metric, reversed_groups, 30)
    assert [r.group for r in fairness("tpr_gap", reversed_groups).groups] == sorted(per_group)


def test_unknown_metric_and_bad_shape_raise() -> None:
    with pytest.raises(ValueError, match="unknown fairness metric"):
        fairness("equalized_odds", {"a": np.zeros(4)})
    with pytest.raises(ValueError, match="shape"):
        fairness("tpr_gap", {"a": np.zeros(3), "b": np.zeros(3)})


def test_to_dict_is_strict_json() -> None:
    result = fairness("tpr_gap", {"a": np.array([0, 5, 0, 5]), "b": np.array([50, 0, 10, 0])}, min_support=30)
    d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert d == {
        "metric": "tpr_gap",
        "value": None,
        "groups": [
            {"group": "a", "rate": None, "support": 0, "judged": False},
            {"group": "b", "rate": pytest.approx(50 / 60), "support": 60, "judged": True},
        ],
        "worst_group": None,
        "best_group": None,
        "judged": False,
    }
    assert GroupRate("x", 0.5, 40, True).to_dict() == {"group": "x", "rate": 0.5, "support": 40, "judged": True}
    assert isinstance(result, FairnessResult)


# --- grouping ---------------------------------------------------------------------------------


def test_confusion_by_group_matches_a_per_group_loop() -> None:
    y, yhat, g = _events(1, n=5000, n_groups=7)
    got = confusion_by_group(g, yhat == 1, y == 1)
    assert list(got) == sorted(set(g.tolist()))
    for name, counts in got.items():
        m = g == name
        np.testing.assert_array_equal(counts, confusion_counts(yhat[m] == 1, y[m] == 1))
    assert sum(c.sum() for c in got.values()) == y.size


def test_confusion_by_group_canonicalises_group_values() -> None:
    groups = [1, "1", 1.0, True, "grocery", None, 2]
    got = confusion_by_group(groups, np.ones(7, bool), np.ones(7, bool))
    assert list(got) == ["1", "2", "grocery", "null"]
    assert got["1"].tolist() == [4.0, 0.0, 0.0, 0.0]
    assert confusion_by_group([], np.array([], bool), np.array([], bool)) == {}
    with pytest.raises(ValueError, match="values for"):
        confusion_by_group(["a"], np.array([True, False]), np.array([True, False]))


# --- mergeability -----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    n=st.integers(min_value=0, max_value=600),
    cut_frac=st.floats(min_value=0, max_value=1),
    min_support=st.integers(min_value=0, max_value=40),
)
def test_summed_halves_give_identical_results(seed: int, n: int, cut_frac: float, min_support: int) -> None:
    rng = np.random.default_rng(seed)
    y, yhat = rng.random(n) < 0.3, rng.random(n) < 0.3
    g = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    cut = int(cut_frac * n)
    whole = confusion_by_group(g, yhat, y)
    first, second = confusion_by_group(g[:cut], yhat[:cut], y[:cut]), confusion_by_group(g[cut:], yhat[cut:], y[cut:])
    merged = {k: first.get(k, np.zeros(4)) + second.get(k, np.zeros(4)) for k in first.keys() | second.keys()}
    for metric in FAIRNESS_METRICS:
        a, b = fairness(metric, merged, min_support), fairness(metric, whole, min_support)
        assert a.to_dict() == b.to_dict()  # NaN-safe comparison (NaN -> None)
