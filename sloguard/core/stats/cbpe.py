"""Confidence-based performance estimation (CBPE): quality from predictions alone.

Fraud labels arrive days after the prediction; a quality budget that waits for them burns days
late. CBPE (NannyML, https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html)
reads a calibrated score p = P(label positive | score) (calibration.py) as a fractional label:
a prediction predicted positive adds p to the expected true positives and 1 - p to the expected
false positives; one predicted negative adds p to the expected false negatives and 1 - p to the
expected true negatives. The expected counts ``[tp, fp, fn, tn]`` (quality.CONFUSION order) add up
like real ones, so a slice's (or a window's) estimate is the metric of summed expectations:

    estimated precision = E[tp] / (E[tp] + E[fp])       estimated recall   = E[tp] / (E[tp] + E[fn])
    estimated F1 = 2 E[tp] / (2 E[tp] + E[fp] + E[fn])  estimated accuracy = (E[tp] + E[tn]) / n

These are NannyML's `_estimate_precision`, `_estimate_recall`, `_estimate_f1` and
`_estimate_accuracy` (nannyml/performance_estimation/confidence_based/metrics.py). The estimate is
only as good as the calibration: when the relation between score and outcome shifts (concept
drift), it is wrong, which is why realised values are shown beside it once labels arrive.
"""

from __future__ import annotations

import numpy as np

from sloguard.core.stats.calibration import IsotonicCalibration
from sloguard.core.stats.quality import classification_metric, metric_samples

ESTIMATED_METRICS = ("estimated_precision", "estimated_recall", "estimated_f1", "estimated_accuracy")


def realised_metric(estimated: str) -> str:
    """The labelled metric an estimated one predicts: estimated_precision -> precision."""
    return estimated.removeprefix("estimated_")


def expected_cells(start: int, predicted_positive: np.ndarray, probability: np.ndarray, answered: np.ndarray
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two weighted cells per prediction into a ``[tp, fp, fn, tn]`` block starting at column `start`.

    A predicted positive puts p in tp and 1 - p in fp; a predicted negative p in fn and 1 - p in tn.
    Unanswered or unscored predictions (NaN p) count nowhere. For `summary.fold_cells`.
    """
    use = answered & ~np.isnan(probability)
    positive_col = np.where(use, start + np.where(predicted_positive, 0, 2), -1)
    negative_col = np.where(use, start + np.where(predicted_positive, 1, 3), -1)
    return [(positive_col, probability), (negative_col, 1.0 - probability)]


def expected_confusion(predicted_positive: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Expected ``[tp, fp, fn, tn]`` of a set of predictions (the sum `expected_cells` folds).

    >>> expected_confusion(np.array([True, True, False]), np.array([0.9, 0.6, 0.2])).round(3).tolist()
    [1.5, 0.5, 0.2, 0.8]
    """
    pp = np.asarray(predicted_positive, bool)
    p = np.asarray(probability, np.float64)
    ok = ~np.isnan(p)
    pp, p = pp[ok], p[ok]
    return np.array([p[pp].sum(), (1 - p[pp]).sum(), p[~pp].sum(), (1 - p[~pp]).sum()])


def estimated_metric(kind: str, expected: np.ndarray) -> tuple[float, int]:
    """An estimated metric from expected counts, and the (rounded) expected samples it rests on."""
    base = realised_metric(kind)
    return classification_metric(base, expected), round(metric_samples(base, expected))


def estimate(kind: str, calibration: IsotonicCalibration, score: np.ndarray, predicted_positive: np.ndarray
             ) -> float:
    """CBPE of one metric over a set of predictions, from raw scores (tests, notebooks)."""
    return estimated_metric(kind, expected_confusion(predicted_positive, calibration.probability(score)))[0]
