"""CBPE: isotonic calibration against scikit-learn, estimated metrics against NannyML's CBPE."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.stats.calibration import IsotonicCalibration, pool_adjacent_violators
from sloguard.core.stats.cbpe import ESTIMATED_METRICS, estimate, estimated_metric, expected_cells, expected_confusion


def _miscalibrated(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are a monotone but miscalibrated map of the true probability (score = p ** 0.5)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(rng.normal(-1.5 + shift, 1.6, n))))
    y = rng.random(n) < p
    return np.sqrt(p), y


def test_isotonic_matches_sklearn():
    from sklearn.isotonic import IsotonicRegression

    score, y = _miscalibrated(5000, 1)
    score = np.round(score, 3)  # ties, as real scores have
    ours = IsotonicCalibration.fit(score, y)
    theirs = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(score, y.astype(float))
    grid = np.r_[-0.1, np.linspace(0, 1, 1001), 1.1]
    np.testing.assert_allclose(ours.probability(grid), theirs.predict(grid), atol=1e-12)
    assert len(ours.score_knots) < 400  # only the ends of constant runs are kept


def test_calibration_round_trips_and_rejects_bad_knots():
    c = IsotonicCalibration.fit(*_miscalibrated(500, 2))
    back = IsotonicCalibration.from_dict(c.to_dict())
    np.testing.assert_allclose(back.probability(np.linspace(0, 1, 11)), c.probability(np.linspace(0, 1, 11)),
                               atol=1e-8)
    with pytest.raises(ValueError, match="increasing"):
        IsotonicCalibration.from_dict({"score": [0.5, 0.2], "probability": [0.1, 0.2]})
    with pytest.raises(ValueError, match="no scored"):
        IsotonicCalibration.fit(np.array([np.nan]), np.array([True]))


@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0.1, 5)), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_pav_is_monotone_and_keeps_the_mean(pairs):
    values, weights = (np.array(v) for v in zip(*pairs, strict=True))
    fit = pool_adjacent_violators(values, weights)
    assert np.all(np.diff(fit) >= -1e-9)
    assert np.dot(fit, weights) == pytest.approx(np.dot(values, weights), rel=1e-9, abs=1e-9)


def test_hand_computed_expected_counts():
    # p: 0.9 and 0.6 predicted positive, 0.2 predicted negative
    c = expected_confusion(np.array([True, True, False]), np.array([0.9, 0.6, 0.2]))
    np.testing.assert_allclose(c, [1.5, 0.5, 0.2, 0.8])
    assert estimated_metric("estimated_precision", c) == (pytest.approx(0.75), 2)
    assert estimated_metric("estimated_recall", c)[0] == pytest.approx(1.5 / 1.7)
    assert estimated_metric("estimated_f1", c)[0] == pytest.approx(3.0 / 3.7)
    assert estimated_metric("estimated_accuracy", c)[0] == pytest.approx(2.3 / 3)


def test_cells_fold_to_the_expected_counts():
    rng = np.random.default_rng(3)
    pp, p = rng.random(200) < 0.3, rng.random(200)
    p[::17] = np.nan
    answered = rng.random(200) < 0.9
    cells = expected_cells(4, pp, p, answered)
    counts = np.zeros(8)
    for col, w in cells:
        ok = col >= 0
        np.add.at(counts, col[ok], w[ok])
    np.testing.assert_allclose(counts[4:], expected_confusion(pp[answered], p[answered]))
    assert not counts[:4].any()


@pytest.mark.parametrize("metric", ESTIMATED_METRICS)
@pytest.mark.filterwarnings("ignore")
def test_matches_nannyml_cbpe(metric, monkeypatch):
    """NannyML's CBPE on the same reference and analysis chunks: equal within 1e-9.

    The reference scores are miscalibrated (score = sqrt(p)), so NannyML decides to calibrate
    (`needs_calibration`) with scikit-learn's isotonic regression, as sloguard always does.
    """
    monkeypatch.setenv("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML reports usage over the network otherwise
    nml = pytest.importorskip("nannyml")
    pd = pytest.importorskip("pandas")
    threshold = 0.5
    ref_score, ref_y = _miscalibrated(20000, 4)
    chunks = [_miscalibrated(2000, 10 + i, shift=i * 0.4) for i in range(4)]
    score = np.concatenate([s for s, _ in chunks])
    y = np.concatenate([t for _, t in chunks])

    def frame(s, t):
        return pd.DataFrame({"p": s, "yhat": (s >= threshold).astype(int), "y": t.astype(int)})

    name = metric.removeprefix("estimated_")
    cbpe = nml.CBPE(y_pred_proba="p", y_pred="yhat", y_true="y", problem_type="classification_binary",
                    metrics=[name], chunk_size=2000)
    cbpe.fit(frame(ref_score, ref_y))
    assert cbpe.needs_calibration
    theirs = cbpe.estimate(frame(score, y)).filter(period="analysis").to_df()[(name, "value")].to_numpy()

    calibration = IsotonicCalibration.fit(ref_score, ref_y)
    ours = [estimate(metric, calibration, s, s >= threshold) for s, _ in chunks]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


def test_estimation_error_arithmetic():
    from types import SimpleNamespace

    from sloguard.core.evaluate.slices import _judge_estimation_error

    slo = SimpleNamespace(sli=SimpleNamespace(params={"metric": "precision"}, spec=SimpleNamespace(direction="<=")),
                          budgeting=SimpleNamespace(min_samples=10), objective=0.1)
    realised = np.array([6.0, 14.0, 2.0, 78.0])  # precision 0.3
    expected = np.array([10.0, 10.0, 3.0, 77.0])  # estimated 0.5
    j = _judge_estimation_error(slo, realised, expected)
    assert j.value == pytest.approx(0.2) and j.verdict == "bad" and j.samples == 20
    assert j.details == {"metric": "precision", "estimated": 0.5, "realised": 0.3, "labelled": 100}
