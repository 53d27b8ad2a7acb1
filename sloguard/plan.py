"""What evaluating one model needs from the config, derived once and shared by every stage.

A `ModelPlan` is pure config: the bucket columns and windows (`aggregate.ModelLayout`), the slice
rings' blocks (`slices.SliceLayout`), the drift references, and the SLO groups each stage loops
over. The parser, the shards and the judge each build it from the same config, so they agree on
every column without sending layouts around.
"""

from __future__ import annotations

import math
from functools import cached_property

from sloguard.adjustments import ModelAdjustments
from sloguard.aggregate import ModelLayout
from sloguard.config import Config, Slo, StateMismatch
from sloguard.drift import reference_from_dict
from sloguard.segment_refs import segment_references
from sloguard.sli import METRIC
from sloguard.slices import SliceLayout
from sloguard.timeutil import format_duration


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
        self.references = {f: reference_from_dict(d) for f, d in self.model.reference.items()}
        # segment key -> feature -> its own reference on the model's bins (where the baseline had data)
        self.segment_references = segment_references(self.references, self.model.segment_reference)
        self.slices = SliceLayout(self.model, self.slos, config.allowed_lateness_s, self.references)
        self.quantile_slos = [
            (i, s) for i, s in enumerate(self.slos) if s.sli.kind in ("latency_quantile", "freshness_quantile")
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
    def layout_names(self) -> dict[str, tuple[str, ...]]:
        """What shapes this model's state: counter columns, slice-ring blocks, windows, shards."""
        return {
            "columns": self.layout.names,
            "labelled": tuple(self.slices.labelled),
            "live": tuple(self.slices.live),
            "windows": tuple(str(w) for w in self.layout.windows),
            "shards": (str(self.shards),),
            "slos": tuple(f"{s.name}:{s.sli.kind}:{s.window_s}:{s.budgeting.slice_s}" for s in self.slos),
        }

    def check_state(self, layout: dict[str, tuple[str, ...]] | None) -> None:
        """Refuse recovery state written for another layout (it is laid out by SLO position)."""
        if layout is None or layout == self.layout_names:
            return
        old, new = set(layout.get("slos", ())), set(self.layout_names["slos"])
        names = sorted({x.split(":")[0] for x in old ^ new})
        what = (f"SLOs changed: {', '.join(names)}" if names else
                "the SLOs were reordered" if old == new and layout.get("slos") != self.layout_names["slos"] else
                "its shard count or slice layout changed")
        raise StateMismatch(
            f"the recovery state of model {self.name!r} was written for a different config ({what}); "
            "restore that config, or start with a new --recovery-dir (state is kept by SLO position)")

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
