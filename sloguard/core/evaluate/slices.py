"""Per-slice counts for the SLIs judged from summaries: quality, fairness and drift.

Each key keeps up to two rings of per-slice counter vectors (single-tier `Windows`):

* **labelled**: confusion counts (tp, fp, fn, tn) and regression sums (n, sum |e|, sum e^2),
  added when a label joins its prediction (`labels.py`), in the *prediction's* slice. The ring
  spans the label delay, so a label hours or days late still lands in its slice, and the slice is
  judged again (`evaluator.py`). One extra column per labelled SLO records the verdict currently
  counted for the slice, so a changed verdict can be retracted, and one counts the slice's answered
  predictions (at prediction time), so the share that has labels is known (label_coverage.py).
* **live**: counts known at prediction time: predicted-positive counts for the label-free
  fairness SLIs, and feature values on reference bins for drift (`drift.py`). It spans a slice
  and the allowed lateness.

Columns come in `Block`s shared by every SLO with the same parameters (precision and recall with
the same positive class and threshold read one confusion block). Counts are built per batch with
one `np.bincount` per segmentation over (key, slice, column), never per event in Python.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sloguard.core.messages.batch import InferenceColumns, as_numbers
from sloguard.core.messages.events import STATUS_CODE
from sloguard.core.spec.model import Model, Slo
from sloguard.core.stats.calibration import IsotonicCalibration
from sloguard.core.stats.cbpe import estimated_metric, expected_cells
from sloguard.core.stats.drift import DriftRule, FeatureDrift
from sloguard.core.stats.drift import judge as judge_drift
from sloguard.core.stats.fairness import fairness
from sloguard.core.stats.multivariate_drift import PcaReference, error_cells, error_ratio, reference_key
from sloguard.core.stats.quality import (
    canonical,
    classification_metric,
    confusion_index,
    metric_samples,
    predicted_positive,
    regression_metric,
)
from sloguard.core.stats.windows import Tier, WindowLayout, Windows

Cells = tuple[np.ndarray, np.ndarray | None]  # per event: a column (-1: none) and an optional weight

GOOD, BAD, UNJUDGED = 1.0, 2.0, 3.0
VERDICT_CODE = {"good": GOOD, "bad": BAD, "unjudged": UNJUDGED}
VERDICT_NAME = {v: k for k, v in VERDICT_CODE.items()}


@dataclass(frozen=True)
class Block:
    """Adjacent columns of a ring: a confusion matrix, regression sums, or a feature's bins."""

    name: str
    kind: str  # confusion | selection | regression | drift | verdict | predictions
    start: int
    width: int
    positive: str = "1"
    threshold: float | None = None
    feature: str = ""
    reference_error: float = math.nan  # multivariate: the reference's mean reconstruction error

    @property
    def cols(self) -> slice:
        return slice(self.start, self.start + self.width)


def _block_name(slo: Slo) -> str:
    kind = slo.sli.spec.sliced
    if kind in ("confusion", "selection", "estimated", "estimation_error"):
        return f"{kind}:{slo.sli.params['positive']}:{slo.sli.params.get('threshold')}"
    return kind


class SliceLayout:
    """Which blocks a model's sliced SLOs need, in which ring, and the rings' time layout."""

    def __init__(self, model: Model, slos: tuple[Slo, ...], lateness_s: int, references: dict[str, Any]) -> None:
        self.references = references
        self.calibrations = {c: IsotonicCalibration.from_dict(d) for c, d in model.calibration.items()}
        self.pca = {k: PcaReference.from_dict(d) for k, d in model.pca_reference.items()}
        self.labelled: dict[str, Block] = {}
        self.live: dict[str, Block] = {}
        self.blocks: dict[int, list[Block]] = {}  # SLO index -> the blocks it reads
        self.verdict_col: dict[int, int] = {}  # labelled SLO index -> its verdict column
        for i, slo in enumerate(slos):
            kind = slo.sli.spec.sliced
            if not kind:
                continue
            if kind == "drift":
                self.blocks[i] = [
                    self._block(self.live, f"drift:{f}", "drift", feature=f) for f in slo.sli.params["features"]
                ]
                continue
            if kind == "estimation_error":  # realised and expected confusion of the same labelled pairs
                p = slo.sli.params
                confusion = self._block(self.labelled, _block_name(slo).replace(kind, "confusion", 1), "confusion",
                                        p["positive"], p.get("threshold"))
                expected = self._block(self.labelled, _block_name(slo).replace(kind, "expected", 1), "expected",
                                       p["positive"], p.get("threshold"), feature=confusion.name)
                self.blocks[i] = [confusion, expected]
                continue
            if kind == "multivariate":
                key = reference_key(slo.sli.params["features"])
                block = self._block(self.live, f"multivariate:{key}", kind, feature=key)
                self.blocks[i] = [dataclasses.replace(block, reference_error=self.pca[key].reference_error)]
                continue
            ring = self.labelled if slo.sli.spec.labelled else self.live
            p = slo.sli.params
            self.blocks[i] = [self._block(ring, _block_name(slo), kind, p.get("positive", "1"), p.get("threshold"))]
        for i, slo in enumerate(slos):
            if i in self.blocks and slo.sli.spec.labelled:  # named by SLO: recovery state maps by name
                self.verdict_col[i] = self._width(self.labelled)
                self.labelled[f"verdict:{slo.name}"] = Block(f"verdict:{slo.name}", "verdict", self.verdict_col[i], 1)
        self.predictions_col = -1  # the labelled ring's count of answered predictions per slice
        if self.labelled:
            self.predictions_col = self._width(self.labelled)
            self.labelled["predictions"] = Block("predictions", "predictions", self.predictions_col, 1)
        labelled_w = [s.budgeting.slice_s for i, s in enumerate(slos) if i in self.blocks and s.sli.spec.labelled]
        live_w = [s.budgeting.slice_s for i, s in enumerate(slos) if i in self.blocks and not s.sli.spec.labelled]
        # each ring's bucket divides its own SLOs' slices (a 1-minute drift slice must not make the
        # labelled ring, which spans the label delay, ten times longer)
        self.labelled_base_s = math.gcd(*labelled_w) if labelled_w else 0
        self.live_base_s = math.gcd(*live_w) if live_w else 0
        self.labelled_ncols, self.live_ncols = self._width(self.labelled), self._width(self.live)
        self.labelled_layout = (
            self._ring(self.labelled_base_s, max(labelled_w) + lateness_s + model.label_delay_s)
            if self.labelled
            else None
        )
        self.live_layout = self._ring(self.live_base_s, max(live_w) + lateness_s) if self.live else None

    def _block(
        self,
        ring: dict[str, Block],
        name: str,
        kind: str,
        positive: str = "1",
        threshold: float | None = None,
        feature: str = "",
    ) -> Block:
        if name not in ring:
            width = {"confusion": 4, "selection": 4, "estimated": 4, "expected": 4, "regression": 3,
                     "multivariate": 2}.get(kind)
            if width is None:
                width = self.references[feature].bins()
            ring[name] = Block(name, kind, self._width(ring), width, positive, threshold, feature)
        return ring[name]

    @staticmethod
    def _width(ring: dict[str, Block]) -> int:
        return max((b.start + b.width for b in ring.values()), default=0)

    @staticmethod
    def _ring(base_s: int, span_s: int) -> WindowLayout:
        span = span_s + 2 * base_s
        return WindowLayout(base_s, (Tier(base_s, math.ceil(span / base_s) + 2, span),), {})

    def new_rings(self) -> tuple[Windows | None, Windows | None]:
        """Empty (labelled, live) rings for a new key."""
        return (
            Windows(self.labelled_layout, self.labelled_ncols) if self.labelled_layout else None,
            Windows(self.live_layout, self.live_ncols) if self.live_layout else None,
        )

    # ---- cells: which column each event counts in ------------------------------------------------

    def prediction_columns(self, cols: InferenceColumns) -> dict[str, np.ndarray]:
        """What a prediction must keep while it waits for its label (besides time and key codes)."""
        out: dict[str, np.ndarray] = {}
        for b in self.labelled.values():
            if b.kind == "confusion":
                out[b.name] = predicted_positive(cols.predictions, cols.score, b.positive, b.threshold)
            elif b.kind == "regression":
                out[b.name] = as_numbers(cols.predictions)
            elif b.kind == "expected":  # the calibrated probability, for the estimate on the labelled pairs
                out[b.name] = self.calibrations[canonical(b.positive)].probability(cols.score)
        return out

    def labelled_cells(self, pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> list[Cells]:
        """Cells of joined pairs: one confusion cell per block, regression sums as weights.

        `truth` holds the labels as `pieces.label_piece` reads them: `positive:<class>` booleans
        per confusion block's positive class, `number` for regression.
        """
        cells: list[Cells] = []
        for b in self.labelled.values():
            if b.kind == "confusion":
                cells.append((b.start + confusion_index(pred[b.name], truth[f"positive:{b.positive}"]), None))
            elif b.kind == "regression":
                err = truth["number"] - pred[b.name]
                ok = ~np.isnan(err)
                col = np.where(ok, b.start, -1)
                cells += [(col, None), (col + ok, np.abs(err)), (col + 2 * ok, err * err)]
            elif b.kind == "expected":
                pp = pred[b.feature]
                cells += expected_cells(b.start, pp, pred[b.name], np.ones(len(pp), bool))
        return cells

    def live_cells(self, cols: InferenceColumns) -> list[Cells]:
        """Cells counted at prediction time: predicted positives per group, features on bins."""
        cells: list[Cells] = []
        for b in self.live.values():
            if b.kind == "selection":  # answered requests only: a failed one selected nobody
                pp = predicted_positive(cols.predictions, cols.score, b.positive, b.threshold)
                cell = b.start + np.where(pp, 1, 3)  # fp / tn cells: selection, label unknown
                cells.append((np.where(cols.status == STATUS_CODE["ok"], cell, -1), None))
            elif b.kind == "estimated":  # CBPE: calibrated probabilities as fractional confusion counts
                pp = predicted_positive(cols.predictions, cols.score, b.positive, b.threshold)
                probability = self.calibrations[canonical(b.positive)].probability(cols.score)
                cells += expected_cells(b.start, pp, probability, cols.status == STATUS_CODE["ok"])
            elif b.kind == "multivariate":  # PCA reconstruction error of each prediction's features
                pca = self.pca[b.feature]
                values = np.column_stack([as_numbers(cols.feature(f)) for f in pca.features])
                cells += error_cells(b.start, pca.errors(values), cols.status == STATUS_CODE["ok"])
            elif b.kind == "drift":
                ref = self.references[b.feature]
                values = cols.feature(b.feature)
                index = ref.bin_index(as_numbers(values) if ref.kind == "numeric" else values)
                cells.append((np.where(index >= 0, b.start + index, -1), None))
        return cells


# ---- judging one slice ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """A slice's metric value, the samples it rests on, its verdict and what explains it."""

    value: float
    samples: int
    verdict: str  # good | bad | unjudged
    details: Any = None


def judge_slice(
    slo: Slo,
    blocks: list[Block],
    counts: np.ndarray,
    groups: dict[str, np.ndarray] | None,
    drift: list[FeatureDrift] | None = None,
) -> Judgement:
    """Judge one slice of a sliced SLO from its ring totals `counts` (and, for fairness, per group).

    Quality: the metric on the slice's confusion counts or regression sums (quality.py), judged
    with at least `min_samples` in its denominator. Fairness: the gap over the attribute's groups
    (fairness.py). Drift: `drift` holds this key's features, judged by `drift_family` together
    with every other key's; the slice is bad when any feature drifts, its value the largest effect.
    """
    kind, spec, need = slo.sli.kind, slo.sli.spec, slo.budgeting.min_samples
    if spec.sliced == "drift":
        return _judge_drift(slo, drift or [])
    if spec.fairness:
        per_group = {g: c[blocks[0].cols] for g, c in (groups or {}).items()}
        res = fairness(kind, per_group, int(slo.sli.params["min_support"]))
        samples = sum(g.support for g in res.groups if g.judged)
        verdict = "unjudged" if not res.judged or samples < need else _compare(slo, res.value)
        return Judgement(res.value, samples, verdict, res.to_dict())
    c = counts[blocks[0].cols]
    if spec.sliced == "estimated":
        value, samples = estimated_metric(kind, c)
        verdict = "unjudged" if samples < need or math.isnan(value) else _compare(slo, value)
        return Judgement(value, samples, verdict, {"expected": [round(float(x), 3) for x in c]})
    if spec.sliced == "estimation_error":
        return _judge_estimation_error(slo, counts[blocks[0].cols], counts[blocks[1].cols])
    if spec.sliced == "multivariate":
        reference_error = blocks[0].reference_error
        value, samples = error_ratio(c, reference_error)
        verdict = "unjudged" if samples < need or math.isnan(value) else _compare(slo, value)
        return Judgement(value, samples, verdict, {"features": list(slo.sli.params["features"]),
                                                   "mean_error": None if not samples else round(float(c[1] / c[0]), 6),
                                                   "reference_error": round(reference_error, 6)})
    if spec.sliced == "regression":
        value, samples = regression_metric(kind, c), int(c[0])
    else:
        value, samples = classification_metric(kind, c), metric_samples(kind, c)
    verdict = "unjudged" if samples < need or math.isnan(value) else _compare(slo, value)
    return Judgement(value, samples, verdict)


def _judge_estimation_error(slo: Slo, realised_counts: np.ndarray, expected_counts: np.ndarray) -> Judgement:
    """|CBPE estimate - realised metric| on one slice's labelled predictions, both reported."""
    metric = slo.sli.params["metric"]
    realised = classification_metric(metric, realised_counts)
    estimated = classification_metric(metric, expected_counts)
    value, samples = abs(estimated - realised), metric_samples(metric, realised_counts)
    verdict = "unjudged" if samples < slo.budgeting.min_samples or math.isnan(value) else _compare(slo, value)
    return Judgement(value, samples, verdict, {
        "metric": metric, "estimated": None if math.isnan(estimated) else round(estimated, 6),
        "realised": None if math.isnan(realised) else round(realised, 6),
        "labelled": round(float(realised_counts.sum()))})


def _compare(slo: Slo, value: float) -> str:
    if math.isnan(value):
        return "unjudged"
    good = value >= slo.objective if slo.sli.spec.direction == ">=" else value <= slo.objective
    return "good" if good else "bad"


def drift_rule(slo: Slo) -> DriftRule:
    """The drift.py rule of a drift SLO: its objective is the effect-size (or PSI) threshold."""
    p = slo.sli.params
    psi_rule = p["method"] == "psi"
    return DriftRule(
        method=p["method"],
        p_value=p["p_value"],
        effect_threshold=0.1 if psi_rule else slo.objective,
        psi_threshold=slo.objective if psi_rule else p["psi_threshold"],
        large_sample=int(p["large_sample"]),
        min_samples=slo.budgeting.min_samples,
    )


def drift_family(
    slo: Slo, blocks: list[Block], counts: dict[str, np.ndarray], references: dict[str, Any],
    by_segment: dict[str, dict[str, Any]] | None = None,
) -> dict[str, list[FeatureDrift]]:
    """Judge one slice of a drift SLO for every key at once: `counts[key]` is that key's ring totals.

    Each key is compared with its own reference where the baseline has one (`by_segment`, see
    segment_refs.py), else with the model's. Benjamini-Hochberg runs over the whole family,
    features x segment keys, so adding segments or features does not add false alarms (no open
    tool controls this).
    """
    own = by_segment or {}
    refs = {(k, b.feature): own.get(k, {}).get(b.feature) or references[b.feature] for k in counts for b in blocks}
    per = {(k, b.feature): counts[k][b.cols] for k in counts for b in blocks}
    results = judge_drift(refs, per, drift_rule(slo))  # type: ignore[arg-type]
    out: dict[str, list[FeatureDrift]] = {k: [] for k in counts}
    for (k, feature), r in zip(refs, results, strict=True):
        out[k].append(dataclasses.replace(r, feature=feature))
    return out


def _judge_drift(slo: Slo, results: list[FeatureDrift]) -> Judgement:
    judged = [r for r in results if r.judged]
    samples = max((r.n for r in results), default=0)
    if not judged:
        return Judgement(math.nan, samples, "unjudged", [r.to_dict() for r in results])
    value = max((r.psi if slo.sli.params["method"] == "psi" else r.effect_size) for r in judged)
    verdict = "bad" if any(r.drifted for r in judged) else "good"
    return Judgement(float(value), samples, verdict, [r.to_dict() for r in results])


def _g(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def explain(slo: Slo, details: Any, value: float | None) -> str:
    """A sentence for an alert: which features drift, which group is worst off."""
    if slo.sli.spec.sliced == "drift":
        drifting = [d for d in details if d.get("drifted")]
        if not drifting:
            return ""
        parts = [
            f"{d['feature']} ({d['effect']} {_g(d['effect_size'])}, {d['test']} p={_g(d['p_value'], 2)}, "
            f"psi {_g(d['psi'])})"
            for d in drifting
        ]
        return "; drifting: " + ", ".join(parts)
    if slo.sli.spec.sliced == "multivariate" and details.get("mean_error") is not None:
        return (f"; {', '.join(details['features'])} break their joint distribution: mean reconstruction error "
                f"{_g(details['mean_error'])} against {_g(details['reference_error'])} on the reference")
    if slo.sli.spec.fairness:
        worst, best = details.get("worst_group"), details.get("best_group")
        rates = {g["group"]: g["rate"] for g in details.get("groups", [])}
        if worst is None or rates.get(worst) is None:
            return ""
        attr = slo.sli.params["attribute"]
        return (
            f"; worst group {attr}={worst}: rate {_g(rates[worst])} against {_g(rates.get(best))} for {best} "
            f"({slo.sli.kind} {_g(details.get('value'))}, objective {slo.sli.spec.direction} {slo.objective:g})"
        )
    return ""
