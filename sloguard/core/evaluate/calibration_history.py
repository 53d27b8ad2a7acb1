"""The labelled scores of a baseline's history, joined by id, and the calibrations fitted on them.

`sloguard baseline` feeds it every batch; `calibrations()` joins each answered, scored prediction
with its label (numpy, by id) and fits one isotonic calibration (calibration.py) per positive class
the config's classification SLOs name ("1" always), for the estimated quality SLIs (cbpe.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sloguard.core.messages.batch import InferenceColumns, LabelColumns
from sloguard.core.messages.events import STATUS_CODE
from sloguard.core.stats.calibration import IsotonicCalibration
from sloguard.core.stats.quality import label_positive

MIN_CALIBRATION_PAIRS = 100  # fewer labelled scores than this: no calibration (validate says why)


class ScoreLabelHistory:
    """Scored predictions and labels of one model, kept until the baseline is written."""

    def __init__(self, positives: set[str]) -> None:
        self.positives = sorted(positives | {"1"})
        self.ids: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.label_ids: list[np.ndarray] = []
        self.labels: list[list[Any]] = []

    def add(self, inference: InferenceColumns | None, labels: LabelColumns | None) -> None:
        if inference is not None and len(inference):
            scored = (inference.status == STATUS_CODE["ok"]) & ~np.isnan(inference.score)
            if scored.any():
                self.ids.append(np.array(inference.ids, dtype=object)[scored])
                self.scores.append(inference.score[scored])
        if labels is not None and len(labels):
            self.label_ids.append(np.array(labels.ids, dtype=object))
            self.labels.append(list(labels.labels))

    def calibrations(self) -> dict[str, dict[str, Any]]:
        """Positive class -> calibration dict, for classes with at least MIN_CALIBRATION_PAIRS pairs."""
        if not self.ids or not self.label_ids:
            return {}
        ids, first = np.unique(np.concatenate(self.ids).astype(str), return_index=True)
        scores = np.concatenate(self.scores)[first]
        label_ids = np.concatenate(self.label_ids).astype(str)
        labels = np.array([v for chunk in self.labels for v in chunk], dtype=object)
        label_ids, last = np.unique(label_ids[::-1], return_index=True)  # a repeated label: the newest counts
        labels = labels[::-1][last]
        _, at_pred, at_label = np.intersect1d(ids, label_ids, assume_unique=True, return_indices=True)
        if len(at_pred) < MIN_CALIBRATION_PAIRS:
            return {}
        out = {}
        for positive in self.positives:
            y = label_positive(labels[at_label], positive)
            out[positive] = IsotonicCalibration.fit(scores[at_pred], y).to_dict()
        return out
