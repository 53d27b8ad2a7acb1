"""Score calibration for estimated quality (CBPE): isotonic regression of labels on scores.

A classifier's `score` is a probability only if it is calibrated: among predictions scored 0.8,
80 % should turn out positive. CBPE (cbpe.py) sums calibrated probabilities into expected
confusion counts, so it first maps each score to P(label positive | score), learnt on the
baseline's labelled history (`sloguard baseline --labels`).

The map is isotonic regression (pool adjacent violators, Zadrozny & Elkan 2002; the calibrator
NannyML's CBPE uses, through scikit-learn's `IsotonicRegression(out_of_bounds="clip")`): the
non-decreasing step function closest in squared error to the labels, read between its knots by
linear interpolation and clipped outside them, exactly as scikit-learn predicts. Only the knots
that bound a constant run are kept, so a baseline file holds a few hundred numbers at most.

This is not a general calibration library: one binary target, scores in [0, 1], no Platt scaling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IsotonicCalibration:
    """A fitted isotonic map from score to P(positive): knots `score_knots` -> `probability_knots`.

    >>> c = IsotonicCalibration.fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]))
    >>> c.probability(np.array([0.1, 0.25, 0.4])).round(3).tolist()
    [0.0, 0.5, 1.0]
    """

    score_knots: np.ndarray  # float64, strictly increasing
    probability_knots: np.ndarray  # float64, non-decreasing, in [0, 1]
    samples: int  # labelled scored predictions it was fitted on

    @staticmethod
    def fit(score: np.ndarray, label_positive: np.ndarray) -> IsotonicCalibration:
        """Fit on scored, labelled predictions (NaN scores are left out)."""
        score = np.asarray(score, np.float64)
        y = np.asarray(label_positive, np.float64)
        ok = ~np.isnan(score)
        score, y = score[ok], y[ok]
        if not score.size:
            raise ValueError("no scored, labelled predictions to calibrate on")
        x, inverse = np.unique(score, return_inverse=True)  # ties: their mean label, weighted by count
        weight = np.bincount(inverse).astype(np.float64)
        mean = np.bincount(inverse, y) / weight
        fitted = pool_adjacent_violators(mean, weight)
        keep = np.ones(len(x), bool)  # interior points of a constant run add nothing to interpolation
        keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        return IsotonicCalibration(x[keep], fitted[keep], int(score.size))

    def probability(self, score: np.ndarray) -> np.ndarray:
        """Calibrated P(positive) per score: linear between knots, clipped outside; NaN stays NaN."""
        out = np.interp(score, self.score_knots, self.probability_knots)
        out[np.isnan(score)] = np.nan
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "isotonic",
            "samples": self.samples,
            "score": [round(float(v), 9) for v in self.score_knots],
            "probability": [round(float(v), 9) for v in self.probability_knots],
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> IsotonicCalibration:
        score = np.asarray(d["score"], np.float64)
        probability = np.asarray(d["probability"], np.float64)
        if score.ndim != 1 or score.shape != probability.shape or not score.size:
            raise ValueError("'score' and 'probability' must be lists of the same non-zero length")
        if np.any(np.diff(score) <= 0) or np.any(np.diff(probability) < 0):
            raise ValueError("knots must be increasing in score and non-decreasing in probability")
        if probability.min() < 0 or probability.max() > 1:
            raise ValueError("probabilities must lie in [0, 1]")
        return IsotonicCalibration(score, probability, int(d.get("samples", 0)))


def pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit to `values` (Ayer et al. 1955).

    One pass with a stack of blocks; a loop over distinct scores at baseline time only (never per
    event at run time).
    """
    means: list[float] = []
    mass: list[float] = []
    sizes: list[int] = []
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        means.append(v)
        mass.append(w)
        sizes.append(1)
        while len(means) > 1 and means[-2] >= means[-1]:
            w2, w1 = mass.pop(), mass[-1]
            m2 = means.pop()
            means[-1] = (means[-1] * w1 + m2 * w2) / (w1 + w2)
            mass[-1] = w1 + w2
            merged = sizes.pop()
            sizes[-1] += merged
    return np.repeat(np.array(means), sizes)
