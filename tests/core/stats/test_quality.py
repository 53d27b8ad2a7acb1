"""Tests for sloguard.core.stats.quality: canonical values, confusion/regression rows and metrics from counts.

The oracle is scikit-learn on the same seeded events: the metric computed from summed
`confusion_rows` / `regression_rows` must equal sklearn's metric on the raw events. Where sklearn
substitutes `zero_division`, sloguard must return NaN instead. Mergeability is checked with
hypothesis: counts of two halves added give exactly the counts (and metrics) of the whole.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.stats import quality
from sloguard.core.stats.quality import (
    CLASSIFICATION_METRICS,
    CONFUSION,
    REGRESSION,
    REGRESSION_METRICS,
    canonical,
    classification_metric,
    confusion_counts,
    confusion_index,
    confusion_rows,
    label_positive,
    metric_samples,
    predicted_positive,
    regression_metric,
    regression_rows,
)

skm = pytest.importorskip("sklearn.metrics")


def test_doctests_run() -> None:
    result = doctest.testmod(quality)
    assert result.attempted > 0
    assert result.failed == 0


def test_column_orders() -> None:
    assert CONFUSION == ("tp", "fp", "fn", "tn")
    assert REGRESSION == ("n", "abs_err", "sq_err")


# --- canonical values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        ("1", "1"),
        (1.0, "1"),
        (True, "1"),
        (False, "0"),
        (0, "0"),
        (0.0, "0"),
        (-0.0, "0"),
        (-3, "-3"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (np.int64(7), "7"),
        (np.float64(7.0), "7"),
        (np.float32(0.5), "0.5"),
        (np.True_, "1"),
        (np.False_, "0"),
        ("yes", "yes"),
        ("True", "True"),  # strings are class names: no case folding or boolean parsing
        ("1.0", "1.0"),  # nor numeric parsing
        (" 1", " 1"),  # nor trimming
        (None, "null"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
    ],
)
def test_canonical(value: object, expected: str) -> None:
    assert canonical(value) == expected


def test_json_equivalent_values_agree() -> None:
    assert len({canonical(v) for v in (1, "1", 1.0, True, np.int8(1), np.float64(1.0))}) == 1
    assert canonical("yes") != canonical(1)
    assert canonical("1.0") != canonical(1.0)


json_values = st.one_of(
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_infinity=True, allow_nan=True, width=16),
    st.sampled_from([0.5, 1.0, 0.0, -0.0, 2.0]),
    st.booleans(),
    st.none(),
    st.sampled_from(["1", "0", "1.0", "yes", "no", "true", "fraud", "nan", "null", ""]),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(json_values, max_size=40), positive=json_values)
def test_label_positive_equals_elementwise_canonical(values: list, positive: object) -> None:
    # the dedup-and-lookup fast path must agree with calling canonical() on every value
    expected = np.array([canonical(v) == canonical(positive) for v in values], dtype=bool)
    got = label_positive(values, positive)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(predicted_positive(values, None, positive, None), expected)


def test_label_positive_mixed_json_types() -> None:
    labels = [1, "1", 1.0, True, 0, "0", False, "yes", None, math.nan, 2]
    np.testing.assert_array_equal(
        label_positive(labels, "1"), [True, True, True, True, False, False, False, False, False, False, False]
    )
    np.testing.assert_array_equal(label_positive(labels, 1), label_positive(labels, "1"))
    np.testing.assert_array_equal(label_positive(labels, "yes"), [False] * 7 + [True] + [False] * 3)


def test_label_positive_accepts_numpy_and_unhashable_values() -> None:
    np.testing.assert_array_equal(label_positive(np.array([0, 1, 1, 0]), "1"), [False, True, True, False])
    np.testing.assert_array_equal(label_positive(np.array([0.0, 1.0]), True), [False, True])
    # a JSON list or object as a label is not hashable: still answered, never a crash
    np.testing.assert_array_equal(label_positive([[1], {"a": 1}, 1, "1"], "1"), [False, False, True, True])
    assert label_positive([], "1").shape == (0,)


def test_predicted_positive_threshold() -> None:
    scores = np.array([0.1, 0.5, 0.49999, 0.9, np.nan, np.inf, -np.inf])
    got = predicted_positive(["0"] * 7, scores, "1", 0.5)
    np.testing.assert_array_equal(got, [False, True, False, True, False, True, False])  # >= is inclusive


def test_predicted_positive_without_threshold_ignores_scores() -> None:
    got = predicted_positive(["fraud", "legit", "fraud"], np.array([0.0, 1.0, np.nan]), "fraud", None)
    np.testing.assert_array_equal(got, [True, False, True])


def test_predicted_positive_threshold_needs_scores() -> None:
    with pytest.raises(ValueError, match="scores"):
        predicted_positive(["1"], None, "1", 0.5)


# --- confusion rows ---------------------------------------------------------------------------


def test_confusion_rows_order_and_one_hot() -> None:
    p = np.array([True, True, False, False])
    y = np.array([True, False, True, False])
    rows = confusion_rows(p, y)
    np.testing.assert_array_equal(rows, np.eye(4))  # tp, fp, fn, tn
    assert rows.dtype == np.float64
    np.testing.assert_array_equal(confusion_index(p, y), [0, 1, 2, 3])


def test_confusion_rows_empty_and_mismatched() -> None:
    assert confusion_rows(np.array([], bool), np.array([], bool)).shape == (0, 4)
    np.testing.assert_array_equal(confusion_counts(np.array([], bool), np.array([], bool)), np.zeros(4))
    with pytest.raises(ValueError, match="equal length"):
        confusion_rows(np.array([True]), np.array([True, False]))


def _random_events(seed: int, n: int) -> tuple[list, list, np.ndarray]:
    """String labels/predictions ("fraud"/"legit") with a few percent positives, and scores."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rng.uniform(0.02, 0.5)
    flip = rng.random(n) < rng.uniform(0.0, 0.4)
    yhat = y ^ flip
    scores = np.clip(np.where(y, 0.7, 0.3) + rng.normal(0, 0.25, n), 0, 1)
    names = np.array(["legit", "fraud"])
    return names[y.astype(int)].tolist(), names[yhat.astype(int)].tolist(), scores


def _sklearn_metrics(y_true: list, y_pred: list, pos: str, neg: str) -> dict[str, float]:
    tn, fp, _fn, _tp = skm.confusion_matrix(y_true, y_pred, labels=[neg, pos]).ravel()
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, pos_label=pos, zero_division=np.nan),
        "recall": skm.recall_score(y_true, y_pred, pos_label=pos, zero_division=np.nan),
        "f1": skm.f1_score(y_true, y_pred, pos_label=pos, zero_division=np.nan),
        "fpr": fp / (fp + tn),
        "label_rate": np.mean(np.asarray(y_true) == pos),
        "positive_rate": np.mean(np.asarray(y_pred) == pos),
    }


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [50, 5000])
def test_classification_metrics_match_sklearn(seed: int, n: int) -> None:
    labels, preds, _ = _random_events(seed, n)
    counts = confusion_rows(predicted_positive(preds, None, "fraud", None), label_positive(labels, "fraud")).sum(axis=0)
    expected = _sklearn_metrics(labels, preds, "fraud", "legit")
    for name in CLASSIFICATION_METRICS:
        assert classification_metric(name, counts) == pytest.approx(expected[name], rel=1e-12, nan_ok=True), name
    assert metric_samples("accuracy", counts) == n


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_thresholded_scores_match_sklearn(seed: int, threshold: float) -> None:
    labels, _, scores = _random_events(seed, 3000)
    scores[::97] = np.nan  # a missing score is a negative prediction
    y_pred = np.where(np.nan_to_num(scores, nan=-1.0) >= threshold, "fraud", "legit").tolist()
    counts = confusion_counts(predicted_positive([], scores, "fraud", threshold), label_positive(labels, "fraud"))
    expected = _sklearn_metrics(labels, y_pred, "fraud", "legit")
    for name in CLASSIFICATION_METRICS:
        assert classification_metric(name, counts) == pytest.approx(expected[name], rel=1e-12, nan_ok=True), name


def test_integer_labels_against_sklearn_binary_defaults() -> None:
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, 1000)
    yhat = rng.integers(0, 2, 1000)
    # JSON may deliver predictions as floats and labels as bools: canonical() makes them agree
    counts = confusion_counts(
        predicted_positive(yhat.astype(float).tolist(), None, 1, None), label_positive(y.astype(bool).tolist(), "1")
    )
    assert classification_metric("precision", counts) == pytest.approx(skm.precision_score(y, yhat))
    assert classification_metric("recall", counts) == pytest.approx(skm.recall_score(y, yhat))
    assert classification_metric("f1", counts) == pytest.approx(skm.f1_score(y, yhat))
    assert classification_metric("accuracy", counts) == pytest.approx(skm.accuracy_score(y, yhat))


def test_confusion_counts_equals_summed_rows() -> None:
    rng = np.random.default_rng(3)
    p, y = rng.random(10_000) < 0.3, rng.random(10_000) < 0.1
    np.testing.assert_array_equal(confusion_counts(p, y), confusion_rows(p, y).sum(axis=0))


# --- undefined cases and samples --------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSIFICATION_METRICS)
def test_empty_counts_are_nan_not_errors(name: str) -> None:
    assert math.isnan(classification_metric(name, np.zeros(4)))
    assert metric_samples(name, np.zeros(4)) == 0


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("precision", [0, 0, 5, 95]),  # nothing predicted positive
        ("recall", [0, 3, 0, 97]),  # no positive labels
        ("f1", [0, 0, 0, 100]),  # only true negatives
        ("fpr", [10, 0, 5, 0]),  # no negative labels
    ],
)
def test_undefined_metric_is_nan_where_sklearn_says_zero(name: str, counts: list[int]) -> None:
    assert math.isnan(classification_metric(name, np.array(counts)))
    assert metric_samples(name, np.array(counts)) == 0


def test_defined_edge_values() -> None:
    assert classification_metric("f1", np.array([0, 3, 2, 95])) == 0.0  # defined, and zero
    assert classification_metric("precision", np.array([5, 0, 0, 0])) == 1.0
    assert classification_metric("fpr", np.array([0, 0, 0, 7])) == 0.0


def test_metric_samples_are_the_denominators() -> None:
    c = np.array([8, 2, 4, 86])
    assert {name: metric_samples(name, c) for name in CLASSIFICATION_METRICS} == {
        "accuracy": 100,
        "precision": 10,
        "recall": 12,
        "f1": 14,
        "fpr": 88,
        "label_rate": 100,
        "positive_rate": 100,
    }
    assert metric_samples("mae", np.array([17.0, 3.0, 2.0])) == 17
    assert isinstance(metric_samples("recall", c.astype(float)), int)


def test_unknown_metric_and_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="unknown classification metric"):
        classification_metric("auc", np.zeros(4))
    with pytest.raises(ValueError, match="unknown regression metric"):
        regression_metric("mape", np.zeros(3))
    with pytest.raises(ValueError, match="unknown metric"):
        metric_samples("auc", np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        classification_metric("accuracy", np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        regression_metric("mae", np.zeros((2, 3)))


def test_metrics_return_python_floats() -> None:
    assert type(classification_metric("precision", np.array([8, 2, 4, 86]))) is float
    assert type(regression_metric("mae", np.array([2, 3, 5]))) is float


# --- regression -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.lognormal(3, 1, 2000)
    yhat = y + rng.normal(0, 5, 2000)
    counts = regression_rows(yhat, y).sum(axis=0)
    assert counts[0] == 2000
    assert regression_metric("mae", counts) == pytest.approx(skm.mean_absolute_error(y, yhat), rel=1e-12)
    assert regression_metric("rmse", counts) == pytest.approx(math.sqrt(skm.mean_squared_error(y, yhat)), rel=1e-12)


def test_regression_rows_skip_non_finite_pairs() -> None:
    rng = np.random.default_rng(11)
    y = rng.normal(10, 3, 500)
    yhat = y + rng.normal(0, 1, 500)
    y[::50] = np.nan
    yhat[7::60] = np.inf
    rows = regression_rows(yhat, y)
    ok = np.isfinite(y) & np.isfinite(yhat)
    np.testing.assert_array_equal(rows[:, 0] == 0, ~ok)  # the documented way to find skipped pairs
    np.testing.assert_array_equal(rows[~ok], 0.0)
    counts = rows.sum(axis=0)
    assert counts[0] == ok.sum()
    assert regression_metric("mae", counts) == pytest.approx(skm.mean_absolute_error(y[ok], yhat[ok]))
    assert regression_metric("rmse", counts) == pytest.approx(math.sqrt(skm.mean_squared_error(y[ok], yhat[ok])))


def test_regression_empty_is_nan() -> None:
    for name in REGRESSION_METRICS:
        assert math.isnan(regression_metric(name, np.zeros(3)))
    rows = regression_rows(np.array([np.nan]), np.array([1.0]))
    assert math.isnan(regression_metric("rmse", rows.sum(axis=0)))
    assert regression_rows(np.array([]), np.array([])).shape == (0, 3)


def test_regression_rows_accept_integer_lists() -> None:
    rows = regression_rows(np.array([1, 2, 3]), np.array([1, 4, 0]))
    np.testing.assert_array_equal(rows, [[1, 0, 0], [1, 2, 4], [1, 3, 9]])


# --- mergeability -----------------------------------------------------------------------------

bool_pairs = st.integers(min_value=0, max_value=300).flatmap(
    lambda n: st.tuples(*[st.lists(st.booleans(), min_size=n, max_size=n)] * 2)
)


@settings(max_examples=200, deadline=None)
@given(pairs=bool_pairs, data=st.data())
def test_confusion_counts_merge_by_addition(pairs: tuple[list[bool], list[bool]], data: st.DataObject) -> None:
    p, y = np.array(pairs[0], bool), np.array(pairs[1], bool)
    cut = data.draw(st.integers(min_value=0, max_value=p.size))
    whole = confusion_rows(p, y).sum(axis=0)
    merged = confusion_rows(p[:cut], y[:cut]).sum(axis=0) + confusion_rows(p[cut:], y[cut:]).sum(axis=0)
    np.testing.assert_array_equal(merged, whole)
    for name in CLASSIFICATION_METRICS:
        a, b = classification_metric(name, merged), classification_metric(name, whole)
        assert a == b or (math.isnan(a) and math.isnan(b)), name
        assert metric_samples(name, merged) == metric_samples(name, whole)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(finite | st.just(math.nan), finite), max_size=200),
    data=st.data(),
)
def test_regression_counts_merge_by_addition(pairs: list[tuple[float, float]], data: st.DataObject) -> None:
    yhat = np.array([a for a, _ in pairs], dtype=float)
    y = np.array([b for _, b in pairs], dtype=float)
    cut = data.draw(st.integers(min_value=0, max_value=len(pairs)))
    whole = regression_rows(yhat, y).sum(axis=0)
    merged = regression_rows(yhat[:cut], y[:cut]).sum(axis=0) + regression_rows(yhat[cut:], y[cut:]).sum(axis=0)
    assert merged[0] == whole[0]  # counts are exact; float error sums agree to rounding
    for name in REGRESSION_METRICS:
        assert regression_metric(name, merged) == pytest.approx(
            regression_metric(name, whole), rel=1e-9, abs=1e-6, nan_ok=True
        )


def test_label_matching_large_mixed_input() -> None:
    # 200k JSON labels of mixed types (canonical() runs once per distinct value)
    labels = ["fraud", "legit", 1, 0.0, True] * 40_000
    np.testing.assert_array_equal(label_positive(labels, "fraud")[:5], [True, False, False, False, False])
    assert label_positive(labels, 1).sum() == 80_000  # 1 and True
