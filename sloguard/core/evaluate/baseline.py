"""`sloguard baseline`: reference distributions and baseline metrics from known-good history.

A baseline file (JSON) holds, per model:

* ``metrics``: for every metric SLO (quality, fairness, latency quantiles, ...), the **median of
  its per-slice values** over the history, slices with too few samples left out: the seed's
  "baseline over a stable period". Relative objectives (`relative_to_baseline`,
  `max_degradation`) are resolved against these numbers. The values come from the same
  `ModelEvaluator` that judges live slices, so a baseline and a live slice measure alike.
* ``reference``: per feature, quantile bins and their shares (numbers) or category shares
  (strings) from `drift.py`, which drift SLIs compare every slice against.
* ``segment_references``: per segment key with at least `segment_min_values` values of a feature,
  its own shares on those bins (segment_refs.py): drift SLOs compare that key's slices with them,
  so a feature that differs by segment by design does not drift in every segment.
* ``calibration``: per positive class, the isotonic map from score to P(label positive) fitted on
  the history's labelled scores (calibration_history.py), which estimated quality SLIs read.
* ``multivariate_reference``: per feature set of a `multivariate_drift` SLO, the PCA its slices'
  reconstruction errors are measured with (multivariate_drift.py).
* ``slice_values``: per metric SLO, its per-slice values over the history (at most
  `MAX_SLICE_VALUES`, evenly spaced in rank), from which `validate` tells whether an objective sits
  within the baseline's normal variation and how often it would page on noise (objective_check.py).

The builder is pure: the CLI reads the files and feeds it parsed batches.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from sloguard.core.evaluate.calibration_history import ScoreLabelHistory
from sloguard.core.evaluate.evaluator import ModelEvaluator, split_by_model
from sloguard.core.messages.batch import ParsedBatch, as_numbers
from sloguard.core.spec.model import Config
from sloguard.core.spec.timeutil import to_rfc3339
from sloguard.core.stats.drift_bins import categorical_reference, numeric_reference
from sloguard.core.stats.multivariate_drift import MIN_REFERENCE_ROWS, PcaReference, reference_key
from sloguard.core.stats.segment_refs import DEFAULT_MIN_VALUES, segment_shares

MAX_SLICE_VALUES = 2000  # per SLO in the baseline file's slice_values
# sliced SLIs that read what the baseline is building
_REFERENCE_READERS = ("estimated", "estimation_error", "multivariate")


class BaselineBuilder:
    """Feed it parsed batches of a known-good period; `result()` gives one baseline per model."""

    def __init__(self, config: Config, bins: int = 50, max_categories: int = 50,
                 segment_min_values: int = DEFAULT_MIN_VALUES) -> None:
        self.bins = bins
        self.max_categories = max_categories
        self.segment_min_values = segment_min_values
        # Drift, estimated and multivariate SLOs read the references being built here: leave them out.
        self.config = dataclasses.replace(config, slos=tuple(s for s in config.slos if s.sli.kind != "drift"
                                                             and s.sli.spec.sliced not in _REFERENCE_READERS))
        self.models = list(config.models)
        self.feature_sets = {m: sorted({tuple(sorted(s.sli.params["features"])) for s in config.slos_of(m)
                                        if s.sli.spec.sliced == "multivariate"}) for m in self.models}
        self.evaluators: dict[str, ModelEvaluator] = {}
        for m in self.models:
            ev = ModelEvaluator(self.config, m)
            ev.slice_log = {}
            self.evaluators[m] = ev
        self.values: dict[str, dict[str, list[list[Any]]]] = {m: {} for m in self.models}
        self.segments: dict[str, list[list[str | None]]] = {m: [] for m in self.models}  # per attribute
        self.events = dict.fromkeys(self.models, 0)
        self.labels = dict.fromkeys(self.models, 0)
        self.span = dict.fromkeys(self.models, (math.inf, -math.inf))
        self.scored = {m: ScoreLabelHistory({str(s.sli.params["positive"]) for s in config.slos_of(m)
                                             if "positive" in s.sli.params}) for m in self.models}

    def add(self, parsed: ParsedBatch) -> None:
        """Fold one parsed batch (inference, labels, features) into the history."""
        for m, batch in split_by_model(parsed, self.models):
            if batch.inference is not None and len(batch.inference):
                cols = batch.inference
                self.events[m] += len(cols)
                lo, hi = self.span[m]
                self.span[m] = (min(lo, float(cols.ts.min())), max(hi, float(cols.ts.max())))
                for feature in dict.fromkeys([*self.config.models[m].features,
                                              *(f for fs in self.feature_sets[m] for f in fs)]):
                    self.values[m].setdefault(feature, []).append([f.get(feature) for f in cols.features])
                if not self.segments[m]:
                    self.segments[m] = [[] for _ in cols.segments]
                for kept, values in zip(self.segments[m], cols.segments, strict=True):
                    kept.extend(values)
            if batch.labels is not None:
                self.labels[m] += len(batch.labels)
            self.scored[m].add(batch.inference, batch.labels)
            if self.evaluators[m].plan.slos:
                self.evaluators[m].process(batch)

    def result(self) -> dict[str, dict[str, Any]]:
        """Per model: the baseline document (see the module docstring)."""
        out = {}
        for m in self.models:
            ev = self.evaluators[m]
            if ev.plan.slos:
                ev.finish()
                # labels stamped after the last tick count too: let two more ticks pass
                ev.advance(ev.state.watermark + 2 * ev.interval_s)
            metrics, slices = self._metrics(ev)
            lo, hi = self.span[m]
            refs = self._references(m)
            out[m] = {
                "model": m,
                "period": {"from": to_rfc3339(lo), "to": to_rfc3339(hi)} if math.isfinite(lo) else None,
                "events": self.events[m],
                "labels": self.labels[m],
                "metrics": metrics,
                "slices": slices,
                "slice_values": self._slice_values(ev),
                "calibration": self.scored[m].calibrations(),
                "multivariate_reference": self._pca_references(m),
                "reference": refs,
                "segment_references": self._segment_references(m, refs),
            }
        return out

    @staticmethod
    def _metrics(ev: ModelEvaluator) -> tuple[dict[str, float], dict[str, int]]:
        per_slo: dict[int, list[float]] = {}
        for (i, _start), (value, verdict) in (ev.slice_log or {}).items():
            if verdict != "unjudged" and math.isfinite(value):
                per_slo.setdefault(i, []).append(value)
        metrics = {ev.plan.slos[i].name: round(float(np.median(v)), 6) for i, v in sorted(per_slo.items())}
        return metrics, {ev.plan.slos[i].name: len(v) for i, v in sorted(per_slo.items())}

    @staticmethod
    def _slice_values(ev: ModelEvaluator) -> dict[str, list[float]]:
        """Per metric SLO, its judged slices' values, sorted (evenly thinned past MAX_SLICE_VALUES)."""
        per_slo: dict[int, list[float]] = {}
        for (i, _start), (value, verdict) in (ev.slice_log or {}).items():
            if verdict != "unjudged" and math.isfinite(value):
                per_slo.setdefault(i, []).append(value)
        out = {}
        for i, values in sorted(per_slo.items()):
            v = np.sort(np.array(values))
            if v.size > MAX_SLICE_VALUES:
                v = v[np.linspace(0, v.size - 1, MAX_SLICE_VALUES).round().astype(int)]
            out[ev.plan.slos[i].name] = [round(float(x), 6) for x in v]
        return out

    def _segment_references(self, model: str, refs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Per segment key with enough values of a feature: its shares on the model reference's bins."""
        from sloguard.core.stats.drift_bins import reference_from_dict

        attrs = self.config.models[model].segments
        out: dict[str, dict[str, Any]] = {}
        for feature, d in refs.items():
            ref = reference_from_dict(d)
            values = [v for chunk in self.values[model][feature] for v in chunk]
            for attr, segs in zip(attrs, self.segments[model], strict=True):
                by_value: dict[str, list[Any]] = {}
                for seg, v in zip(segs, values, strict=True):
                    if seg is not None and v is not None:
                        by_value.setdefault(seg, []).append(v)
                for seg, vs in sorted(by_value.items()):
                    if len(vs) < self.segment_min_values:
                        continue  # too few: this key is compared with the model's reference
                    shares = segment_shares(ref, vs)
                    if shares is not None:
                        out.setdefault(f"{attr}={seg}", {})[feature] = shares
        return out

    def _pca_references(self, model: str) -> dict[str, dict[str, Any]]:
        """Per multivariate drift feature set: PCA on the rows where at least one feature is a number."""
        out = {}
        for features in self.feature_sets[model]:
            columns = [as_numbers([v for chunk in self.values[model].get(f, []) for v in chunk]) for f in features]
            if not columns or not len(columns[0]):
                continue
            rows = np.column_stack(columns)
            rows = rows[~np.isnan(rows).all(axis=1)]
            if len(rows) >= MIN_REFERENCE_ROWS and not np.isnan(rows).all(axis=0).any():
                out[reference_key(features)] = PcaReference.fit(features, rows).to_dict()
        return out

    def _references(self, model: str) -> dict[str, dict[str, Any]]:
        refs = {}
        for feature, chunks in self.values[model].items():
            values = [v for chunk in chunks for v in chunk if v is not None]
            if not values:
                continue
            numbers = as_numbers(values)
            if np.isnan(numbers).mean() < 0.5:  # mostly numbers: a numeric feature
                ref = numeric_reference(numbers[~np.isnan(numbers)], self.bins)
            else:
                ref = categorical_reference(values, self.max_categories)
            refs[feature] = ref.to_dict()
        return refs
