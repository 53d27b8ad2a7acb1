"""What evaluating one model needs from the config, derived once and shared by every stage.

A `ModelPlan` is pure config: the bucket columns and windows (`aggregate.ModelLayout`), the slice
rings' blocks (`slices.SliceLayout`), the drift references, and the SLO groups each stage loops
over. The parser, the shards and the judge each build it from the same config, so they agree on
every column without sending layouts around.
"""

from __future__ import annotations

import math
import zlib
from functools import cached_property

from sloguard.core.evaluate.aggregate import ModelLayout
from sloguard.core.evaluate.slices import SliceLayout
from sloguard.core.spec.adjustments import ModelAdjustments
from sloguard.core.spec.model import Config, Slo
from sloguard.core.spec.sli import METRIC
from sloguard.core.spec.timeutil import format_duration
from sloguard.core.stats.drift_bins import reference_from_dict
from sloguard.core.stats.segment_refs import segment_references

#: Metric SLIs judged per slice on a quantile sketch of one value per event.
QUANTILE_KINDS = ("latency_quantile", "freshness_quantile", "threshold_quantile")


class ModelPlan:
    """Config-derived layout of one model's evaluation (see the module docstring)."""

    def __init__(self, config: Config, model: str) -> None:
        self.config = config
        self.name = model
        self.layout = ModelLayout(config, model)
        self.model = self.layout.model
        self.slos: tuple[Slo, ...] = self.layout.slos
        self.attrs = self.model.segments
        self.interval_s = config.evaluation_interval_s
        self.shards = config.shards
        # the judge runs as `parts` keyed steps, each judging the SLOs whose name hashes to it (a
        # stable split: a changed SLO list moves no other SLO), so its work spreads over workers
        self.parts = config.judge_parts or 1
        self.part_of = [zlib.crc32(s.name.encode()) % self.parts for s in self.layout.slos]
        self.references = {f: reference_from_dict(d) for f, d in self.model.reference.items()}
        # segment key -> feature -> its own reference on the model's bins (where the baseline had data)
        self.segment_references = segment_references(self.references, self.model.segment_reference)
        self.slices = SliceLayout(self.model, self.slos, config.allowed_lateness_s, self.references)
        self.quantile_slos = [
            (i, s) for i, s in enumerate(self.slos) if s.sli.kind in QUANTILE_KINDS
        ]
        self.sliced = [(i, s) for i, s in enumerate(self.slos) if i in self.slices.blocks]
        self.burn_windows = [sorted({x for r in s.rules for x in (r.long_window_s, r.short_window_s)})
                             for s in self.slos]
        self.window_label = {w: format_duration(w) for w in self.layout.windows}
        self.longest_slice_s = max((s.budgeting.slice_s for s in self.slos), default=0)
        labelled_slices = [s.budgeting.slice_s for _, s in self.sliced if s.sli.spec.labelled]
        # late labels re-judge slices every 5 minutes (or the shortest labelled slice), not every tick
        self.rejudge_s = max(self.interval_s, min([300, *labelled_slices]) // self.interval_s * self.interval_s)
        self.retention_s = max(config.longest_window_s, self.model.no_data_after_s)
        self.labelled = bool(self.slices.labelled)

    @cached_property
    def adjustments(self) -> ModelAdjustments:
        """This model's silences and budget adjustments (adjustments.py); falsy when there are none."""
        return ModelAdjustments([a for a in self.config.adjustments if a.model == self.name], self.slos,
                                self.layout.columns, self.metric, self.interval_s)

    @cached_property
    def fingerprint(self) -> dict:
        """What shapes this model's state (sloguard/core/evaluate/state.py): recorded with every snapshot."""
        from sloguard.core.evaluate.state import fingerprint

        return fingerprint(self)

    def tick_after(self, ts: float) -> float:
        """The first tick strictly after `ts`: from then on an event known at `ts` counts."""
        return (math.floor(ts / self.interval_s) + 1) * self.interval_s

    def window_ends(self, t: float) -> list[float]:
        """Per SLO, where its windows end at tick t: the tick, or for timeslice SLOs the last slice
        boundary (between two judged slices nothing new is known)."""
        return [t - t % s.budgeting.slice_s if m else t for s, m in zip(self.slos, self.metric, strict=True)]

    @cached_property
    def metric(self) -> list[bool]:
        return [s.sli.family == METRIC for s in self.slos]
