"""Group fairness of a binary classifier from per-group confusion counts.

Fairness compares the groups of one attribute (e.g. ``segment.merchant_type``). Each group keeps
mergeable confusion counts ``[tp, fp, fn, tn]`` (see `sloguard.core.stats.quality`), so a window's fairness is
computed from summed slice counts, never from raw events. A group whose rate rests on fewer than
``min_support`` samples is reported (``judged=False``) but left out of the comparison: with ten
samples a group's rate swings by 0.1 from a single event.

Metrics (names follow Fairlearn, https://fairlearn.org/main/user_guide/assessment/common_fairness_metrics.html):

==================  ============================  =====================================================
metric              per-group rate (support)      value over judged groups (Fairlearn equivalent)
==================  ============================  =====================================================
tpr_gap             tp / (tp + fn)  (positives)   max - min  (``equal_opportunity_difference``)
fpr_gap             fp / (fp + tn)  (negatives)   max - min  (``false_positive_rate_difference``, the
                                                  FPR half of ``equalized_odds_difference``)
positive_rate_gap   (tp + fp) / n   (all)         max - min  (``demographic_parity_difference``)
disparate_impact    (tp + fp) / n   (all)         min / max  (``demographic_parity_ratio``)
equalized_odds_     TPR and FPR     (positives    max(TPR max - min, FPR max - min)
difference                           and negatives) (``equalized_odds_difference``)
equalized_odds_     TPR and FPR     (positives    min(TPR min / max, FPR min / max)
ratio                                and negatives) (``equalized_odds_ratio``)
==================  ============================  =====================================================

For the equalized-odds pair a group is judged when both its positives and its negatives reach
``min_support`` (its support is the smaller of the two), so both rates compare the same groups;
the value's ``component`` says which rate (tpr or fpr) made it.

Differences from Fairlearn, on purpose: with fewer than two judged groups the value is NaN (not
judged) where Fairlearn returns 0 or 1; a group whose rate is undefined (support 0) is never
judged; and ``disparate_impact`` is NaN when no judged group selects anyone (0 / 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sloguard.core.stats.quality import canonical, confusion_index

FAIRNESS_METRICS = ("tpr_gap", "fpr_gap", "positive_rate_gap", "disparate_impact", "equalized_odds_difference",
                    "equalized_odds_ratio")
EQUALIZED_ODDS = ("equalized_odds_difference", "equalized_odds_ratio")

# metric -> (numerator columns, denominator columns) over [tp, fp, fn, tn]
_RATES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tpr_gap": ((0,), (0, 2)),
    "fpr_gap": ((1,), (1, 3)),
    "positive_rate_gap": ((0, 1), (0, 1, 2, 3)),
    "disparate_impact": ((0, 1), (0, 1, 2, 3)),
}


@dataclass(frozen=True)
class GroupRate:
    """One group's rate for a fairness metric, the samples it rests on, and whether it was compared."""

    group: str
    rate: float  # NaN when support == 0
    support: int  # the rate's denominator
    judged: bool  # support >= min_support (and > 0): included in the gap / ratio

    def to_dict(self) -> dict:
        return {"group": self.group, "rate": _json_float(self.rate), "support": self.support, "judged": self.judged}


@dataclass(frozen=True)
class FairnessResult:
    """A fairness metric over the groups of one attribute.

    ``value`` is NaN and ``judged`` False when fewer than two groups have enough support.
    ``best_group`` / ``worst_group`` are the two judged groups whose rates make the value (None
    when not judged); which end is "worst" is described in `fairness`.
    """

    metric: str
    value: float
    groups: tuple[GroupRate, ...]
    worst_group: str | None
    best_group: str | None
    judged: bool
    component: str | None = None  # equalized odds: the rate (tpr | fpr) whose gap or ratio is the value

    def to_dict(self) -> dict:
        out = {
            "metric": self.metric,
            "value": _json_float(self.value),
            "groups": [g.to_dict() for g in self.groups],
            "worst_group": self.worst_group,
            "best_group": self.best_group,
            "judged": self.judged,
        }
        if self.component is not None:
            out["component"] = self.component
        return out


def _json_float(x: float) -> float | None:
    """NaN is not JSON: report it as null."""
    return None if math.isnan(x) else float(x)


def fairness(
    metric: str,
    per_group: dict[str, np.ndarray],
    min_support: int = 30,
    *,
    positive_is_adverse: bool = False,
) -> FairnessResult:
    """Compare one rate across groups; ``per_group[g]`` is group g's confusion counts ``[tp, fp, fn, tn]``.

    - ``tpr_gap``: max - min true-positive rate (recall) over judged groups, Fairlearn's
      ``equal_opportunity_difference``. Worst group: the lowest TPR (its positives are missed most).
    - ``fpr_gap``: max - min false-positive rate, Fairlearn's ``false_positive_rate_difference``
      (``equalized_odds_difference`` is the larger of this and ``tpr_gap``). Worst group: the
      highest FPR (its negatives are wrongly flagged most).
    - ``positive_rate_gap``: max - min selection rate (tp + fp) / n, Fairlearn's
      ``demographic_parity_difference``.
    - ``disparate_impact``: min / max selection rate, Fairlearn's ``demographic_parity_ratio``.
      Values below 0.8 fail the "four-fifths rule", a rule of thumb from the US Uniform Guidelines
      on Employee Selection Procedures (29 CFR 1607.4(D)) for flagging possible adverse impact. It
      is a screening heuristic, not a legal test of discrimination, and not a threshold that makes
      a model fair.

    For the two selection-rate metrics the worst group is the lowest selection rate when a positive
    prediction is favourable (approval, recommendation: the default), and the highest when
    ``positive_is_adverse`` (fraud flags, blocks). The value does not depend on that choice.

    A group is judged when its support (the rate's denominator: positives for TPR, negatives for
    FPR, all samples for selection rate) is at least ``min_support`` and above 0; other groups are
    reported with ``judged=False`` and excluded. Groups are reported sorted by name; ties between
    equal rates go to the first name.

    >>> r = fairness("tpr_gap", {"a": np.array([40, 5, 10, 45]), "b": np.array([30, 5, 20, 45])})
    >>> round(r.value, 6), r.worst_group, r.best_group
    (0.2, 'b', 'a')
    """
    if metric in EQUALIZED_ODDS:
        return equalized_odds(metric, per_group, min_support)
    if metric not in _RATES:
        raise ValueError(f"unknown fairness metric {metric!r}; expected one of {FAIRNESS_METRICS}")
    num_cols, den_cols = _RATES[metric]
    names = sorted(per_group)
    if names:
        counts = np.stack([np.asarray(per_group[g], dtype=np.float64) for g in names])
        if counts.shape[1:] != (4,):
            raise ValueError(f"per-group counts must have shape (4,), got {counts.shape[1:]}")
    else:
        counts = np.zeros((0, 4))
    num = counts[:, num_cols].sum(axis=1)
    den = counts[:, den_cols].sum(axis=1)
    rates = np.divide(num, den, out=np.full(len(names), np.nan), where=den > 0)
    judged = (den >= min_support) & (den > 0)
    groups = tuple(
        GroupRate(g, float(r), round(s), bool(j)) for g, r, s, j in zip(names, rates, den, judged, strict=True)
    )

    idx = np.flatnonzero(judged)
    if idx.size < 2:
        return FairnessResult(metric, math.nan, groups, None, None, False)
    r = rates[idx]
    lo, hi = int(idx[np.argmin(r)]), int(idx[np.argmax(r)])
    rmin, rmax = rates[lo], rates[hi]
    if metric != "disparate_impact":
        value = rmax - rmin
    elif rmax > 0:
        value = rmin / rmax
    else:
        value = math.nan  # no judged group selects anyone: 0 / 0
    if metric == "fpr_gap" or (metric in ("positive_rate_gap", "disparate_impact") and positive_is_adverse):
        worst, best = hi, lo
    else:
        worst, best = lo, hi
    return FairnessResult(metric, float(value), groups, names[worst], names[best], True)


def equalized_odds(metric: str, per_group: dict[str, np.ndarray], min_support: int = 30) -> FairnessResult:
    """Equalized odds (Hardt et al. 2016) over groups judged on both rates: see the module docstring.

    ``equalized_odds_difference`` = max(TPR gap, FPR gap); ``equalized_odds_ratio`` = min(TPR
    min / max, FPR min / max), Fairlearn's functions of the same names (``agg="worst_case"``).
    The groups reported carry the deciding component's rates; its worst group is the lowest TPR or
    the highest FPR.

    >>> a, b = np.array([40, 5, 10, 45]), np.array([30, 5, 20, 45])
    >>> r = equalized_odds("equalized_odds_difference", {"a": a, "b": b})
    >>> round(r.value, 6), r.component, r.worst_group
    (0.2, 'tpr', 'b')
    """
    names = sorted(per_group)
    counts = np.stack([np.asarray(per_group[g], np.float64) for g in names]) if names else np.zeros((0, 4))
    positives, negatives = counts[:, 0] + counts[:, 2], counts[:, 1] + counts[:, 3]
    support = np.minimum(positives, negatives)
    judged = (support >= min_support) & (support > 0)
    idx = np.flatnonzero(judged)
    rates = {"tpr": np.divide(counts[:, 0], positives, out=np.full(len(names), np.nan), where=positives > 0),
             "fpr": np.divide(counts[:, 1], negatives, out=np.full(len(names), np.nan), where=negatives > 0)}

    def groups_of(component: str) -> tuple[GroupRate, ...]:
        return tuple(GroupRate(g, float(r), round(s), bool(j))
                     for g, r, s, j in zip(names, rates[component], support, judged, strict=True))

    if idx.size < 2:
        return FairnessResult(metric, math.nan, groups_of("tpr"), None, None, False)
    scores = {}
    for component, r in rates.items():
        lo, hi = int(idx[np.argmin(r[idx])]), int(idx[np.argmax(r[idx])])
        ratio = r[lo] / r[hi] if r[hi] > 0 else math.nan
        value = r[hi] - r[lo] if metric == "equalized_odds_difference" else ratio
        worst, best = (lo, hi) if component == "tpr" else (hi, lo)
        scores[component] = (float(value), worst, best)
    pick = max if metric == "equalized_odds_difference" else min
    finite = {c: v for c, v in scores.items() if not math.isnan(v[0])}
    if not finite:
        return FairnessResult(metric, math.nan, groups_of("tpr"), None, None, False)
    component = pick(finite, key=lambda c: finite[c][0])
    value, worst, best = finite[component]
    return FairnessResult(metric, value, groups_of(component), names[worst], names[best], True, component)


def confusion_by_group(
    groups: Sequence | np.ndarray, pred_pos: np.ndarray, label_pos: np.ndarray
) -> dict[str, np.ndarray]:
    """Confusion counts ``[tp, fp, fn, tn]`` per group, keyed by ``canonical(group)``, in one `bincount`.

    ``groups`` holds each event's attribute value (e.g. its merchant type); the result is what
    `fairness` takes, and what a time slice keeps per group.

    >>> confusion_by_group(["a", "b", "a"], np.array([True, False, False]), np.array([True, True, False]))
    {'a': array([1., 0., 0., 1.]), 'b': array([0., 0., 1., 0.])}
    """
    cell = confusion_index(pred_pos, label_pos)
    values = groups.tolist() if isinstance(groups, np.ndarray) else list(groups)
    if len(values) != cell.size:
        raise ValueError(f"groups has {len(values)} values for {cell.size} predictions")
    try:
        distinct = dict.fromkeys(values)
    except TypeError:
        values = [canonical(v) for v in values]
        distinct = dict.fromkeys(values)
    names = sorted({canonical(v) for v in distinct})
    position = {name: i for i, name in enumerate(names)}
    code_of = {v: position[canonical(v)] for v in distinct}
    codes = np.fromiter(map(code_of.__getitem__, values), np.intp, count=len(values))
    table = np.bincount(codes * 4 + cell, minlength=4 * len(names)).reshape(len(names), 4).astype(np.float64)
    return {name: table[i] for i, name in enumerate(names)}
