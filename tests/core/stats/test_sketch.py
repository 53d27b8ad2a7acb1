"""Tests for sloguard.core.stats.sketch.LogHistogram, a DDSketch-style quantile sketch.

The oracle is numpy's exact order statistic, `np.quantile(x, q, method="lower")`: the sketch must
be within relative error alpha of it. Merging is checked against the sketch of the concatenated
data, bucket for bucket.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sloguard.core.stats.sketch import LogHistogram

EPS = 1e-9  # relative slack for float rounding at bucket edges

values = arrays(
    np.float64,
    st.integers(min_value=1, max_value=2000),
    elements=st.floats(min_value=1e-2, max_value=1e6, allow_nan=False, allow_infinity=False),
)
quantiles = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def _sketch(x: np.ndarray, alpha: float = 0.01) -> LogHistogram:
    h = LogHistogram(alpha=alpha)
    h.add(x)
    return h


def _assert_within_alpha(h: LogHistogram, x: np.ndarray, q: float) -> None:
    exact = float(np.quantile(x, q, method="lower"))
    got = h.quantile(q)
    assert abs(got - exact) <= h.alpha * exact * (1 + EPS) + 1e-12, (q, got, exact)


@settings(max_examples=200, deadline=None)
@given(values, st.lists(quantiles, min_size=1, max_size=8), st.sampled_from([0.005, 0.01, 0.05]))
def test_quantile_within_relative_error_of_numpy_lower(x: np.ndarray, qs: list[float], alpha: float) -> None:
    h = _sketch(x, alpha)
    assert h.count == x.size
    for q in [*qs, 0.0, 0.5, 0.99, 1.0]:
        _assert_within_alpha(h, x, q)


def test_quantile_on_a_seeded_lognormal_sample() -> None:
    rng = np.random.default_rng(7)
    x = rng.lognormal(mean=4.0, sigma=1.5, size=50_000)
    x = np.clip(x, 1e-2, 1e6)
    h = _sketch(x)
    for q in np.linspace(0, 1, 101):
        _assert_within_alpha(h, x, float(q))


def test_docstring_example() -> None:
    h = _sketch(np.array([1.0, 10.0, 100.0, 1000.0]))
    # floor(0.5 * 3) = 1 -> the second smallest value, 10
    assert h.quantile(0.5) == pytest.approx(10.0, rel=0.01)
    assert h.quantile(0.0) == pytest.approx(1.0, rel=0.01)
    assert h.quantile(1.0) == pytest.approx(1000.0, rel=0.01)


@settings(max_examples=100, deadline=None)
@given(values, values)
def test_merge_equals_sketch_of_concatenation(a: np.ndarray, b: np.ndarray) -> None:
    merged = _sketch(a)
    merged.merge(_sketch(b))
    whole = _sketch(np.concatenate([a, b]))
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.count == a.size + b.size


@settings(max_examples=100, deadline=None)
@given(values, values, values)
def test_merge_is_associative_and_commutative(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    sa, sb, sc = _sketch(a), _sketch(b), _sketch(c)

    left = sa.copy()
    left.merge(sb)
    left.merge(sc)  # (a + b) + c

    bc = sb.copy()
    bc.merge(sc)
    right = sa.copy()
    right.merge(bc)  # a + (b + c)

    reverse = sc.copy()
    reverse.merge(sb)
    reverse.merge(sa)  # c + b + a

    np.testing.assert_array_equal(left.counts, right.counts)
    np.testing.assert_array_equal(left.counts, reverse.counts)
    # merging never touched the operands
    np.testing.assert_array_equal(sa.counts, _sketch(a).counts)
    np.testing.assert_array_equal(sb.counts, _sketch(b).counts)


def test_merge_rejects_incompatible_sketches() -> None:
    with pytest.raises(ValueError):
        LogHistogram(alpha=0.01).merge(LogHistogram(alpha=0.02))
    with pytest.raises(ValueError):
        LogHistogram(max_value=1e7).merge(LogHistogram(max_value=1e9))


def test_nan_is_skipped() -> None:
    x = np.array([5.0, np.nan, 1.0, 300.0, np.nan, 42.0])
    clean = x[~np.isnan(x)]
    h = _sketch(x)
    assert h.count == 4
    np.testing.assert_array_equal(h.counts, _sketch(clean).counts)
    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        _assert_within_alpha(h, clean, q)


def test_empty_sketch_is_nan() -> None:
    h = LogHistogram()
    assert math.isnan(h.quantile(0.5))
    h.add(np.array([], dtype=np.float64))
    assert math.isnan(h.quantile(0.99))
    h.add(np.array([np.nan, np.nan]))
    assert h.count == 0
    assert math.isnan(h.quantile(0.0))


def test_values_at_or_below_min_value_share_one_bucket_reported_near_min_value() -> None:
    h = LogHistogram(alpha=0.01, min_value=1e-3)
    h.add(np.array([0.0, 1e-6, 1e-3, 50.0]))
    assert np.count_nonzero(h.counts) == 2  # {0, 1e-6, 1e-3} together, and 50
    # ranks 0, 1, 2 are the floored values: reported as min_value within relative error alpha
    for q in (0.0, 0.34, 0.5):
        assert h.quantile(q) == pytest.approx(1e-3, rel=0.01)
    assert h.quantile(1.0) == pytest.approx(50.0, rel=0.01)


def test_values_past_max_value_clamp() -> None:
    h = LogHistogram(max_value=1e7)
    h.add(np.array([1e9, 1e12]))
    assert h.count == 2
    assert h.quantile(1.0) == pytest.approx(1e7, rel=0.01)


def test_alpha_must_be_in_open_unit_interval() -> None:
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            LogHistogram(alpha=bad)


@settings(max_examples=50, deadline=None)
@given(values)
def test_pickle_round_trip_preserves_quantiles(x: np.ndarray) -> None:
    h = _sketch(x)
    back = pickle.loads(pickle.dumps(h))
    np.testing.assert_array_equal(back.counts, h.counts)
    assert back.alpha == h.alpha and back.min_value == h.min_value
    for q in np.linspace(0, 1, 21):
        assert back.quantile(float(q)) == h.quantile(float(q))
    # the restored sketch keeps working: adding and merging give the same as the original
    extra = np.array([3.0, 3000.0])
    back.add(extra)
    h.add(extra)
    np.testing.assert_array_equal(back.counts, h.counts)
    back.merge(h)


def test_pickle_of_empty_sketch() -> None:
    back = pickle.loads(pickle.dumps(LogHistogram(alpha=0.02)))
    assert back.count == 0 and back.alpha == 0.02
    assert math.isnan(back.quantile(0.5))


def test_copy_is_independent() -> None:
    h = _sketch(np.array([1.0, 2.0]))
    clone = h.copy()
    clone.add(np.array([100.0]))
    assert h.count == 2 and clone.count == 3
