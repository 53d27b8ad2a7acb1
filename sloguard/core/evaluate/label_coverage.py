"""Labelled slices are judged once enough of their labels are in (issue 12, "no flapping").

A quality slice judged when its first labels have arrived rests on whichever labels came first:
it can read bad, page, and read good again an hour later when the rest arrive. So a labelled
slice is judged only when

    labelled answered predictions / answered predictions of the slice >= min_share
    or the tick is at least `wait` after the slice ended (by then the labels that will come, came)

(`models.<m>.label_coverage: {min_share: 0.4, wait: <label_delay>}`, per SLO
`budgeting.label_coverage`). Until then the slice counts neither good nor bad and the SLO's burn
windows end before it (`burn_rates_to`); budget events state the rule and how many slices wait
(`label_coverage`). The answered predictions are counted per slice in the labelled ring at
prediction time (slices.py), the labelled ones when their label joins. `min_share: 0` judges on
whatever labels have come, as before.

`LabelWaits` remembers each waiting slice and the tick from which it is judged anyway, so a slice
whose labels stop coming is judged at its deadline without a new label to trigger it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sloguard.core.evaluate.slices import Block, Judgement
from sloguard.core.messages.outputs import LabelCoverage
from sloguard.core.spec.model import Slo
from sloguard.core.spec.timeutil import format_duration


def labelled_share(counts: np.ndarray, block: Block, predictions_col: int) -> tuple[float, float]:
    """(labelled pairs, answered predictions) of a slice's ring totals."""
    pairs = counts[block.start] if block.kind == "regression" else counts[block.cols].sum()
    return float(pairs), float(counts[predictions_col])


@dataclass
class LabelWaits:
    """Per (key index, SLO index): the waiting slices' starts and the tick each is judged anyway."""

    waiting: dict[tuple[int, int], dict[float, float]] = field(default_factory=dict)

    def gate(self, key: int, i: int, slo: Slo, block: Block, predictions_col: int, counts: np.ndarray,
             start: float, now: float, j: Judgement) -> Judgement:
        """The judgement to count: `j`, or an uncounted one while the slice waits for its labels."""
        b = slo.budgeting
        end = start + b.slice_s
        pairs, predictions = labelled_share(counts, block, predictions_col)
        share = pairs / predictions if predictions else 1.0
        mine = self.waiting.get((key, i))
        if share >= b.min_label_share or now >= end + b.label_wait_s:
            if mine is not None and mine.pop(start, None) is not None and not mine:
                del self.waiting[(key, i)]
            return j
        self.waiting.setdefault((key, i), {})[start] = end + b.label_wait_s
        return Judgement(j.value, 0, "unjudged", j.details)

    def due(self, key: int, i: int, now: float) -> set[float]:
        """Starts of this key's and SLO's waiting slices whose deadline has come (to judge now)."""
        mine = self.waiting.get((key, i))
        if not mine:
            return set()
        return {s for s, deadline in mine.items() if deadline <= now}

    def count(self, key: int, i: int) -> int:
        return len(self.waiting.get((key, i), ()))


def describe(slo: Slo, waiting: int) -> LabelCoverage:
    """The budget event's `label_coverage`: the rule, and how many slices wait for labels."""
    b = slo.budgeting
    return LabelCoverage(min_share=b.min_label_share,
                         wait=format_duration(b.label_wait_s) if b.label_wait_s else "0s", waiting_slices=waiting)
