"""The catalogue of SLIs: what each measures, its dimension, and how it is budgeted.

Two families (DESIGN.md, "Semantics"):

* **ratio** SLIs count events ("occurrences"): good events / valid events. Availability, latency
  under a threshold, freshness under a maximum age, feature completeness, schema violations.
* **metric** SLIs compute a number per time slice (a p99, a score) and a slice is good when the
  number meets the objective. They are budgeted in time slices; `direction` says whether larger
  (`>=`) or smaller (`<=`) values are better.

Quality and fairness SLIs that rest on ground truth are *labelled*: their counts arrive when a
label joins its prediction (`labels.py`), possibly hours after the slice, and a slice is judged
again when late labels change its verdict. Drift SLIs count feature values on reference bins
(`drift.py`). Both keep per-slice counts in `slices.py`.

This module only describes SLIs; `aggregate.py` and `slices.py` count them and `evaluator.py`
judges them.
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
    labelled: bool = False  # needs ground truth joined from ml.labels
    sliced: str = ""  # counted per slice in slices.py: "confusion" | "regression" | "drift" | "selection" | "estimated"

    @property
    def fairness(self) -> bool:
        return self.dimension == "fairness"


_CLASS_PARAMS = {"positive": "value", "threshold": "fraction"}
_DRIFT_PARAMS = {
    "features": "names",
    "method": "drift_method",
    "p_value": "fraction",
    "psi_threshold": "number",
    "large_sample": "count",
}
_FAIRNESS_PARAMS = {**_CLASS_PARAMS, "attribute": "name", "min_support": "count"}


def _quality() -> tuple[SliKind, ...]:
    """Classification and regression metrics on labelled predictions, one slice at a time."""
    classification = (
        ("accuracy", ">=", "(tp + tn) / labelled predictions"),
        ("precision", ">=", "tp / (tp + fp)"),
        ("recall", ">=", "tp / (tp + fn), the true positive rate"),
        ("f1", ">=", "2 tp / (2 tp + fp + fn)"),
        ("fpr", "<=", "fp / (fp + tn), the false positive rate"),
        ("label_rate", ">=", "positive labels / labelled predictions (a recommender's click-through rate)"),
    )
    regression = (("mae", "<=", "mean |label - prediction|"), ("rmse", "<=", "sqrt(mean (label - prediction)^2)"))
    return tuple(
        SliKind(name, "quality", METRIC, dict(_CLASS_PARAMS), (), d, "", f"per slice: {doc}", True, "confusion")
        for name, d, doc in classification
    ) + tuple(
        SliKind(name, "quality", METRIC, {}, (), d, "", f"per slice: {doc}", True, "regression")
        for name, d, doc in regression
    )


def _estimated() -> tuple[SliKind, ...]:
    """Quality estimated from calibrated scores before labels arrive (CBPE, cbpe.py)."""
    kinds = (
        ("estimated_precision", "E[tp] / (E[tp] + E[fp])"),
        ("estimated_recall", "E[tp] / (E[tp] + E[fn])"),
        ("estimated_f1", "2 E[tp] / (2 E[tp] + E[fp] + E[fn])"),
        ("estimated_accuracy", "(E[tp] + E[tn]) / scored predictions"),
    )
    doc = "; expected counts from the score calibrated on the baseline's labels (CBPE)"
    error = SliKind("estimation_error", "quality", METRIC, {"metric": "estimated_metric", **_CLASS_PARAMS},
                    ("metric",), "<=", "", "per slice, once its labels are in: |estimated - realised| metric on the "
                    "labelled predictions (a calibration-drift signal); events show both values", True,
                    "estimation_error")
    return (*(SliKind(name, "quality", METRIC, dict(_CLASS_PARAMS), (), ">=", "", f"per slice: {formula}{doc}",
                      sliced="estimated") for name, formula in kinds), error)


def _fairness() -> tuple[SliKind, ...]:
    """Gaps between the groups of one attribute (Fairlearn's definitions), one slice at a time."""
    kinds = (
        ("tpr_gap", "<=", True, "max - min true positive rate over groups (equal opportunity difference)"),
        ("fpr_gap", "<=", True, "max - min false positive rate over groups"),
        (
            "positive_rate_gap",
            "<=",
            False,
            "max - min predicted-positive rate over groups (demographic parity difference)",
        ),
        (
            "disparate_impact",
            ">=",
            False,
            "min / max predicted-positive rate over groups (demographic parity "
            "ratio; the 4/5 rule is a heuristic, not a legal test)",
        ),
        ("equalized_odds_difference", "<=", True, "the larger of the TPR gap and the FPR gap over groups"),
        ("equalized_odds_ratio", ">=", True, "the smaller of min / max TPR and min / max FPR over groups"),
    )
    return tuple(
        SliKind(
            name,
            "fairness",
            METRIC,
            dict(_FAIRNESS_PARAMS),
            (),
            d,
            "",
            f"per slice: {doc}; groups below min_support are reported, not judged",
            labelled,
            "confusion" if labelled else "selection",
        )
        for name, d, labelled, doc in kinds
    )


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
            "ratio",
            "",  # any dimension: what the expression measures is the config's to say
            RATIO,
            {"good": "expression", "total": "expression"},
            ("good",),
            doc="events matching the good expression / events matching total (default: all); expr.py",
        ),
        SliKind(
            "threshold",
            "",  # any dimension: what the expression measures is the config's to say
            RATIO,
            {"field": "numeric_field", "min": "bound", "max": "bound"},
            ("field",),
            doc="events whose numeric field is within [min, max] / events with a numeric value of the field",
        ),
        SliKind(
            "threshold_quantile",
            "",  # any dimension: what the field measures is the config's to say
            METRIC,
            {"field": "numeric_field", "quantile": "fraction"},
            ("field", "quantile"),
            "<=",
            "",
            "per slice: the quantile of a numeric field of the inference events (e.g. attributes.ttft_ms); "
            "non-negative values, within 1 % (values at or below 0.001 count as 0.001)",
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
        SliKind("completeness", "data", RATIO, {}, doc="present expected feature values / expected feature values"),
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
        *_quality(),
        *_estimated(),
        SliKind(
            "low_confidence",
            "quality",
            RATIO,
            {"min_confidence": "fraction"},
            ("min_confidence",),
            doc="predictions whose confidence max(score, 1 - score) >= min_confidence / predictions with a score",
        ),
        SliKind(
            "drift",
            "drift",
            METRIC,
            _DRIFT_PARAMS,
            (),
            "<=",
            "",
            "per slice: the largest drift effect size over the features (normalised Wasserstein, Jensen-Shannon "
            "or PSI); a slice is bad when any feature drifts by the configured test and effect-size rule, "
            "after Benjamini-Hochberg across features. The objective is the effect-size threshold",
            sliced="drift",
        ),
        *_fairness(),
        SliKind(
            "multivariate_drift",
            "drift",
            METRIC,
            {"features": "names"},
            ("features",),
            "<=",
            "",
            "per slice: mean PCA reconstruction error of the features / the reference's (multivariate_drift.py): "
            "catches a change in their joint distribution, such as a flipped correlation, that per-feature "
            "tests miss",
            sliced="multivariate",
        ),
    )
}

DIMENSIONS = ("infrastructure", "quality", "drift", "data", "fairness")
