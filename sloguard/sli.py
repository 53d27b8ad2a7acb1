"""The catalogue of SLIs: what each measures, its dimension, and how it is budgeted.

Two families (DESIGN.md, "Semantics"):

* **ratio** SLIs count events ("occurrences"): good events / valid events. Availability, latency
  under a threshold, freshness under a maximum age, feature completeness, schema violations.
* **metric** SLIs compute a number per time slice (a p99, a score) and a slice is good when the
  number meets the objective. They are budgeted in time slices; `direction` says whether larger
  (`>=`) or smaller (`<=`) values are better.

This module only describes SLIs; `summary.py` counts them and `evaluator.py` judges them.
"""

from __future__ import annotations

from dataclasses import dataclass

RATIO = "ratio"
METRIC = "metric"


@dataclass(frozen=True)
class SliKind:
    """One SLI of the catalogue: its name, dimension, family and parameters."""

    name: str
    dimension: str
    family: str  # RATIO | METRIC
    params: dict[str, str]  # parameter -> "number" | "fraction" | "duration" | "source" | "names"
    required: tuple[str, ...] = ()
    direction: str = ">="  # metric SLIs: a slice is good when value <direction> objective
    unit: str = ""
    doc: str = ""


CATALOGUE: dict[str, SliKind] = {
    k.name: k
    for k in (
        SliKind("availability", "infrastructure", RATIO, {}, doc="requests with status ok / all"),
        SliKind(
            "latency",
            "infrastructure",
            RATIO,
            {"threshold_ms": "number"},
            ("threshold_ms",),
            doc="ok and timed-out requests answered within threshold_ms / those requests",
        ),
        SliKind(
            "latency_quantile",
            "infrastructure",
            METRIC,
            {"quantile": "fraction"},
            ("quantile",),
            "<=",
            "ms",
            "per slice: the quantile of latency_ms (ok and timeout requests)",
        ),
        SliKind(
            "freshness",
            "data",
            RATIO,
            {"max_age": "duration", "source": "source"},
            ("max_age",),
            doc="events whose features are younger than max_age / events with "
            "a feature time (inference: ts - feature_ts; features: ts - event_ts)",
        ),
        SliKind(
            "freshness_quantile",
            "data",
            METRIC,
            {"quantile": "fraction", "source": "source"},
            ("quantile",),
            "<=",
            "s",
            "per slice: the quantile of the feature lag in seconds",
        ),
        SliKind(
            "completeness", "data", RATIO, {}, doc="present expected feature values / expected feature values"
        ),
        SliKind(
            "schema_violations",
            "data",
            RATIO,
            {},
            doc="valid messages / all messages of the model (rejected ones dead-lettered)",
        ),
        SliKind(
            "data_quality",
            "data",
            METRIC,
            {"max_age": "duration"},
            ("max_age",),
            ">=",
            "",
            "per slice: min(1 - missing-feature rate, 1 - stale rate) (the seed's score)",
        ),
    )
}

DIMENSIONS = ("infrastructure", "quality", "drift", "data", "fairness")
