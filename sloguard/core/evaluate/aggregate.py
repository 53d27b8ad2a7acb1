"""Pre-aggregation: a batch of parsed events becomes one counter vector per (key, interval).

`ModelLayout` decides, from a model's SLOs, which counters a bucket holds (a good and a total
column per ratio SLO, good/bad/unjudged slice columns per metric SLO, auxiliary counts for the
data-quality score) and which windows the model needs. `event_matrix` turns a batch's columns into
one row of counters per event with numpy, and `group_sum` folds the rows into one vector per
(segment key, interval) with a sort and `np.add.reduceat`, so the keyed state downstream does a
handful of vector additions per batch instead of Python work per event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sloguard.core.messages.batch import FeatureColumns, InferenceColumns
from sloguard.core.messages.events import STATUS_CODE
from sloguard.core.spec.model import Config, Slo
from sloguard.core.spec.sli import METRIC
from sloguard.core.stats.windows import WindowLayout

EVENTS, MESSAGES, REJECTED = 0, 1, 2
_OK, _ERROR = STATUS_CODE["ok"], STATUS_CODE["error"]

#: SLIs that only make sense for the whole model: a rejected message has no trustworthy segment.
WHOLE_MODEL_ONLY = {"schema_violations"}


def whole_model_only(slo: Slo) -> bool:
    """Schema violations, and fairness (it compares the groups of the whole model)."""
    return slo.sli.kind in WHOLE_MODEL_ONLY or slo.sli.spec.fairness


@dataclass(frozen=True)
class SloColumns:
    """Where one SLO's counters sit in a bucket vector."""

    good: int  # ratio: good events; metric: good slices
    total: int  # ratio: valid events; metric: bad slices
    unjudged: int = -1  # metric: slices with too few samples
    aux: tuple[int, ...] = ()  # data_quality: expected, missing, lag_known, stale


class ModelLayout:
    """The bucket columns and windows of one model, derived from its SLOs (pure config)."""

    def __init__(self, config: Config, model: str) -> None:
        self.model = config.models[model]
        self.slos = config.slos_of(model)
        self.interval_s = config.evaluation_interval_s
        names = ["events", "messages", "rejected"]
        self.columns: list[SloColumns] = []
        for slo in self.slos:
            base = len(names)
            if slo.sli.family == METRIC:
                names += [f"{slo.name}:slices_good", f"{slo.name}:slices_bad", f"{slo.name}:slices_unjudged"]
                aux: tuple[int, ...] = ()
                if slo.sli.kind == "data_quality":
                    names += [f"{slo.name}:{a}" for a in ("expected", "missing", "lag_known", "stale")]
                    aux = (base + 3, base + 4, base + 5, base + 6)
                self.columns.append(SloColumns(base, base + 1, base + 2, aux))
            else:
                names += [f"{slo.name}:good", f"{slo.name}:total"]
                self.columns.append(SloColumns(base, base + 1))
        self.names = tuple(names)
        self.ncols = len(names)
        windows = {s.counted_window_s for s in self.slos}
        # a calendar period is read from buckets its boundaries fall on (the finest any SLO needs)
        buckets: dict[int, int] = {}
        for s in self.slos:
            if s.calendar is not None:
                w = s.counted_window_s
                buckets[w] = min(buckets.get(w, s.calendar.bucket_s), s.calendar.bucket_s)
        for s in self.slos:
            for r in s.rules:
                windows |= {r.long_window_s, r.short_window_s}
        self.windows = tuple(sorted(windows))
        longest_slice = max((s.budgeting.slice_s for s in self.slos), default=0)
        self.window_layout = WindowLayout.for_windows(
            self.interval_s,
            windows,
            min_base_span_s=max(
                longest_slice + config.allowed_lateness_s + self.interval_s, self.model.no_data_after_s
            ),
            buckets=buckets,
        )

    def inference_matrix(self, cols: InferenceColumns) -> np.ndarray:
        """One row of counters per inference event (n x ncols)."""
        n = len(cols)
        m = np.zeros((n, self.ncols))
        m[:, EVENTS] = 1.0
        m[:, MESSAGES] = 1.0
        status, latency, lag = cols.status, cols.latency_ms, cols.lag_s
        n_expected = float(len(self.model.features))
        lag_known = ~np.isnan(lag)
        for slo, c in zip(self.slos, self.columns, strict=True):
            kind, p = slo.sli.kind, slo.sli.params
            if kind == "availability":
                m[:, c.good] = status == _OK
                m[:, c.total] = 1.0
            elif kind == "latency":
                timed = status != _ERROR
                m[:, c.good] = timed & (latency <= p["threshold_ms"])
                m[:, c.total] = timed
            elif kind == "freshness" and p["source"] == "inference":
                m[:, c.good] = lag_known & (lag <= p["max_age"])
                m[:, c.total] = lag_known
            elif kind == "completeness":
                m[:, c.good] = n_expected - cols.n_missing
                m[:, c.total] = n_expected
            elif kind == "schema_violations":
                m[:, c.good] = 1.0
                m[:, c.total] = 1.0
            elif kind in ("ratio", "threshold"):
                flags = cols.ratio_flags  # evaluated in the parse step (ratio_sli.py)
                m[:, c.good], m[:, c.total] = flags[f"{slo.name}:good"], flags[f"{slo.name}:total"]
            elif kind == "low_confidence":
                scored = ~np.isnan(cols.score)
                m[:, c.good] = scored & (np.maximum(cols.score, 1 - cols.score) >= p["min_confidence"])
                m[:, c.total] = scored
            elif kind == "data_quality":
                expected, missing, known, stale = c.aux
                m[:, expected] = n_expected
                m[:, missing] = cols.n_missing
                m[:, known] = lag_known
                m[:, stale] = lag_known & (lag > p["max_age"])
        return m

    def feature_matrix(self, cols: FeatureColumns) -> np.ndarray:
        """One row of counters per ml.features event (whole-model key only)."""
        m = np.zeros((len(cols), self.ncols))
        m[:, MESSAGES] = 1.0
        for slo, c in zip(self.slos, self.columns, strict=True):
            kind, p = slo.sli.kind, slo.sli.params
            if kind == "freshness" and p["source"] == "features":
                m[:, c.good] = cols.lag_s <= p["max_age"]
                m[:, c.total] = 1.0
            elif kind == "schema_violations":
                m[:, c.good] = 1.0
                m[:, c.total] = 1.0
        return m

    def message_vector(self, n_valid: int, n_rejected: int) -> np.ndarray:
        """Counters for messages that only count toward the schema SLI (labels, rejections)."""
        v = np.zeros(self.ncols)
        v[MESSAGES] = n_valid
        v[REJECTED] = n_rejected
        for slo, c in zip(self.slos, self.columns, strict=True):
            if slo.sli.kind == "schema_violations":
                v[c.good] = n_valid
                v[c.total] = n_valid + n_rejected
        return v

    def slice_vector(self, slo_index: int, verdict: str) -> np.ndarray:
        """A vector counting one judged slice: verdict is good, bad or unjudged."""
        c = self.columns[slo_index]
        v = np.zeros(self.ncols)
        v[{"good": c.good, "bad": c.total, "unjudged": c.unjudged}[verdict]] = 1.0
        return v


def _runs(group: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`positions` ordered by group (stable), their groups in that order, and where each run starts."""
    order = positions[np.argsort(group[positions], kind="stable")]
    g = group[order]
    return order, g, np.flatnonzero(np.r_[True, g[1:] != g[:-1]])


def group_sum(group: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum `rows` per distinct `group` id: returns (distinct ids ascending, sums per id)."""
    order, g, starts = _runs(group, np.arange(len(group)))
    return g[starts], np.add.reduceat(rows[order], starts, axis=0)


def by_group(group: np.ndarray, positions: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
    """`(g, positions of g ascending)` for each distinct `group[j]`, ascending: one stable sort.

    `positions` (default all) restricts to those positions. Looping `flatnonzero(group == g)` over
    the distinct values costs O(n) per value; blocks and chunks number in the dozens, so the sort wins.
    """
    positions = np.arange(len(group)) if positions is None else positions
    if not len(positions):
        return []
    order, g, starts = _runs(group, positions)
    return list(zip(g[starts].tolist(), np.split(order, starts[1:]), strict=True))
