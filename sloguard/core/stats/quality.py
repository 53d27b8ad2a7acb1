"""Model-quality metrics computed from mergeable counts (confusion matrices and error sums).

A 30-day window cannot keep raw events, so each time slice keeps only counts that add up:

- classification: ``[tp, fp, fn, tn]`` (`CONFUSION` order), one one-hot row per joined
  (prediction, label) pair;
- regression: ``[n, abs_err, sq_err]`` (`REGRESSION` order): the count, sum |y - yhat| and
  sum (y - yhat)^2.

The counts of two slices summed equal the counts of their union, so every metric here is exact
over any window built from slices (unlike averaging per-slice metrics). A metric whose denominator
is zero is NaN, never an exception: a slice with no positives has no recall, and
`metric_samples` tells the evaluator how many samples a value rests on (for ``min_samples``).

Labels arrive later than predictions and are joined by id upstream; this module only turns the
joined values into rows and rows into metrics. It does no I/O and has no per-event Python loops.

This is not a general metrics library: threshold-free metrics (ROC AUC, log loss) need score
histograms, not confusion counts, and are out of scope here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

CONFUSION = ("tp", "fp", "fn", "tn")
REGRESSION = ("n", "abs_err", "sq_err")  # count, sum |y - yhat|, sum (y - yhat)^2
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "fpr", "label_rate", "positive_rate")
REGRESSION_METRICS = ("mae", "rmse")

TP, FP, FN, TN = range(4)
_EYE4 = np.eye(4)


def canonical(value: object) -> str:
    """The string a prediction or label value compares as, so JSON ``1``, ``1.0``, ``true`` and ``"1"`` agree.

    - bool (also numpy bool): ``"1"`` / ``"0"``;
    - integer: its decimal digits (``1`` -> ``"1"``);
    - finite float with an integer value: the integer's digits (``1.0`` -> ``"1"``, ``-0.0`` -> ``"0"``);
    - other float: the shortest round-trip repr (``0.5`` -> ``"0.5"``; ``nan``, ``inf``, ``-inf``);
    - string: unchanged (no trimming, no case folding: ``"yes"``, ``"True"`` and ``"1.0"`` are
      class names of their own and do not equal ``"1"``);
    - ``None`` (JSON null): ``"null"``; anything else: ``str(value)``.

    >>> [canonical(v) for v in (1, "1", 1.0, True, "yes", 0.25)]
    ['1', '1', '1', '1', 'yes', '0.25']
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isfinite(f) and f.is_integer():
            return str(int(f))
        return repr(f)
    if value is None:
        return "null"
    return str(value)


def _equals_canonical(values: Sequence | np.ndarray, target: str) -> np.ndarray:
    """Bool per value: ``canonical(value) == target``, computed once per distinct value.

    Values that compare equal in Python (``1 == 1.0 == True``) always have the same canonical
    string, so deduplicating with a dict and looking every value up in the set of matching keys
    (a C-level ``map``) gives the same answer as calling `canonical` on each value.
    """
    if isinstance(values, np.ndarray):
        values = values.tolist()
    n = len(values)
    try:
        distinct = dict.fromkeys(values)
    except TypeError:  # unhashable values (JSON lists/objects): slow but correct
        return np.fromiter((canonical(v) == target for v in values), bool, count=n)
    matching = {v for v in distinct if canonical(v) == target}
    return np.fromiter(map(matching.__contains__, values), bool, count=n)


def predicted_positive(
    predictions: Sequence | np.ndarray,
    scores: np.ndarray | None,
    positive: object,
    threshold: float | None,
) -> np.ndarray:
    """Bool per event: did the model predict the positive class?

    With a `threshold`, ``score >= threshold`` (a NaN or missing score counts as *not* positive,
    so a broken scorer shows up as lost recall rather than as a crash). Without one,
    ``canonical(prediction) == canonical(positive)``; `scores` is then ignored and may be None.
    """
    if threshold is not None:
        if scores is None:
            raise ValueError("scores are required when a threshold is given")
        s = np.asarray(scores, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return s >= threshold  # NaN >= t is False
    return _equals_canonical(predictions, canonical(positive))


def label_positive(labels: Sequence | np.ndarray, positive: object) -> np.ndarray:
    """Bool per label: ``canonical(label) == canonical(positive)``."""
    return _equals_canonical(labels, canonical(positive))


def confusion_index(pred_pos: np.ndarray, label_pos: np.ndarray) -> np.ndarray:
    """The confusion cell of each pair as an int in `CONFUSION` order: tp=0, fp=1, fn=2, tn=3."""
    p = np.asarray(pred_pos, dtype=bool)
    y = np.asarray(label_pos, dtype=bool)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"pred_pos and label_pos must be 1-D of equal length, got {p.shape} and {y.shape}")
    # tp=0 (p, y), fp=1 (p, not y), fn=2 (not p, y), tn=3 (not p, not y)
    return 2 * (~p).astype(np.intp) + (~y)


def confusion_rows(pred_pos: np.ndarray, label_pos: np.ndarray) -> np.ndarray:
    """An n x 4 float matrix, one one-hot row per joined pair in ``tp, fp, fn, tn`` order.

    Summing rows (over a slice, a window, a group) gives the confusion counts of that set.

    >>> confusion_rows(np.array([True, True, False]), np.array([True, False, False])).sum(axis=0)
    array([1., 1., 0., 1.])
    """
    return _EYE4[confusion_index(pred_pos, label_pos)]


def confusion_counts(pred_pos: np.ndarray, label_pos: np.ndarray) -> np.ndarray:
    """``confusion_rows(...).sum(axis=0)`` without materialising the rows (one `bincount`)."""
    return np.bincount(confusion_index(pred_pos, label_pos), minlength=4).astype(np.float64)


def regression_rows(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """An n x 3 float matrix ``[1, |e|, e^2]`` with ``e = label - prediction``, one row per pair.

    A pair where either value is NaN or infinite gives an all-zero row: it is not counted (``n``
    excludes it) and adds no error. Callers that must count such pairs as bad data can find them
    with ``rows[:, 0] == 0``.
    """
    yhat = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if yhat.shape != y.shape or y.ndim != 1:
        raise ValueError(f"predictions and labels must be 1-D of equal length, got {yhat.shape} and {y.shape}")
    ok = np.isfinite(y) & np.isfinite(yhat)
    e = np.where(ok, y - yhat, 0.0)
    return np.column_stack((ok.astype(np.float64), np.abs(e), e * e))


def _check(counts: np.ndarray, width: int, kind: str) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.shape != (width,):
        raise ValueError(f"{kind} counts must have shape ({width},), got {c.shape}")
    return c


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def classification_metric(name: str, counts: np.ndarray) -> float:
    """A classification metric from confusion counts ``[tp, fp, fn, tn]``; NaN when its denominator is 0.

    With n = tp + fp + fn + tn:

    - accuracy      = (tp + tn) / n
    - precision     = tp / (tp + fp)
    - recall        = tp / (tp + fn)            (true-positive rate, sensitivity)
    - f1            = 2 tp / (2 tp + fp + fn)   (harmonic mean of precision and recall)
    - fpr           = fp / (fp + tn)            (false-positive rate, fall-out)
    - label_rate    = (tp + fn) / n             (share of positive labels: a recommender's click-through rate)
    - positive_rate = (tp + fp) / n             (share predicted positive: selection / alert rate)

    These match scikit-learn's ``accuracy_score``, ``precision_score``, ``recall_score`` and
    ``f1_score`` (binary, ``pos_label`` = the positive class) wherever those are defined; where
    scikit-learn substitutes ``zero_division`` (0 by default) this returns NaN, so an empty slice
    is "no data", not "metric is zero".

    >>> classification_metric("precision", np.array([8, 2, 4, 86]))
    0.8
    >>> classification_metric("precision", np.array([0, 0, 3, 97]))
    nan
    """
    tp, fp, fn, tn = _check(counts, 4, "confusion").tolist()
    if name == "accuracy":
        return _ratio(tp + tn, tp + fp + fn + tn)
    if name == "precision":
        return _ratio(tp, tp + fp)
    if name == "recall":
        return _ratio(tp, tp + fn)
    if name == "f1":
        return _ratio(2 * tp, 2 * tp + fp + fn)
    if name == "fpr":
        return _ratio(fp, fp + tn)
    if name == "label_rate":
        return _ratio(tp + fn, tp + fp + fn + tn)
    if name == "positive_rate":
        return _ratio(tp + fp, tp + fp + fn + tn)
    raise ValueError(f"unknown classification metric {name!r}; expected one of {CLASSIFICATION_METRICS}")


def regression_metric(name: str, counts: np.ndarray) -> float:
    """A regression metric from ``[n, abs_err, sq_err]``; NaN when n == 0.

    - mae  = abs_err / n            (scikit-learn ``mean_absolute_error``)
    - rmse = sqrt(sq_err / n)       (scikit-learn ``root_mean_squared_error``)

    >>> regression_metric("rmse", np.array([4.0, 4.0, 16.0]))
    2.0
    """
    n, abs_err, sq_err = _check(counts, 3, "regression").tolist()
    if name == "mae":
        return _ratio(abs_err, n)
    if name == "rmse":
        return math.sqrt(sq_err / n) if n > 0 else math.nan
    raise ValueError(f"unknown regression metric {name!r}; expected one of {REGRESSION_METRICS}")


def metric_samples(name: str, counts: np.ndarray) -> int:
    """How many samples a metric's value rests on: its denominator, for ``min_samples`` per slice.

    accuracy, label_rate, positive_rate: n; precision: tp + fp (predicted positives);
    recall: tp + fn (actual positives); f1: tp + fp + fn (true negatives do not enter it);
    fpr: fp + tn (actual negatives); mae, rmse: n of the regression counts.

    >>> metric_samples("recall", np.array([8, 2, 4, 86]))
    12
    """
    if name in REGRESSION_METRICS:
        return round(_check(counts, 3, "regression").tolist()[0])
    tp, fp, fn, tn = _check(counts, 4, "confusion").tolist()
    samples = {
        "accuracy": tp + fp + fn + tn,
        "precision": tp + fp,
        "recall": tp + fn,
        "f1": tp + fp + fn,
        "fpr": fp + tn,
        "label_rate": tp + fp + fn + tn,
        "positive_rate": tp + fp + fn + tn,
    }
    if name not in samples:
        raise ValueError(f"unknown metric {name!r}; expected one of {CLASSIFICATION_METRICS + REGRESSION_METRICS}")
    return round(samples[name])
