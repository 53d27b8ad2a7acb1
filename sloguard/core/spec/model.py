"""What a config file defines, as frozen values: `Config` of `Model`s, `Slo`s (an `Sli`, an `Objective`,
a `Budgeting`), `Owner`s and topics; `ConfigError` lists every problem with its field path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sloguard.core.notify.incident_policy import IncidentPolicy
from sloguard.core.spec.adjustments import Adjustment
from sloguard.core.spec.calendar import Calendar
from sloguard.core.spec.policy import AlertRule
from sloguard.core.spec.sli import CATALOGUE, SliKind
from sloguard.core.spec.timeutil import format_duration
from sloguard.core.spec.yamlfile import line_of

DEFAULT_TOPICS = {
    "inference": "ml.inference",
    "labels": "ml.labels",
    "features": "ml.features",
    "budget": "slo.budget",
    "alerts": "slo.alerts",
    "dead_letter": "slo.dead-letter",
    "decisions": "rollout.decisions",
    "incidents": "slo.incidents",
}


SEVERITIES = ("page", "ticket")


class StateMismatch(ValueError):
    """Recovery state that cannot be carried over to the config it is resumed with (sloguard/core/evaluate/state.py)."""


class ConfigError(ValueError):
    """A config that cannot work; `problems` holds one `path: message` line each. With `lines`
    (field path -> line of the file, yamlfile.key_lines) each problem is shown with its line."""

    def __init__(self, problems: list[str], source: str = "config", lines: dict[str, int] | None = None) -> None:
        self.problems = problems
        shown = []
        for p in problems:
            line = line_of(p, lines) if lines else None
            shown.append(f"line {line}: {p}" if line is not None else p)
        if len(shown) == 1:  # one problem, one line: `file: line 9: kafka.bootstrap_servers: ...`
            super().__init__(f"{source}: {shown[0]}")
        else:
            super().__init__(f"{source} is invalid:\n" + "\n".join(f"  - {line}" for line in shown))


@dataclass(frozen=True)
class Sli:
    """A configured SLI: a catalogue kind plus its parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> SliKind:
        return CATALOGUE[self.kind]

    @property
    def family(self) -> str:
        return self.spec.family


@dataclass(frozen=True)
class Budgeting:
    """How bad events turn into spent budget: per event, or per time slice (metric SLIs)."""

    method: str = "occurrences"  # occurrences | timeslices
    slice_s: int = 0
    min_samples: int = 1
    target: float = 0.0  # timeslices: the fraction of slices that must be good
    # labelled SLOs (label_coverage.py): a slice is judged once this share of its answered
    # predictions has labels, or `label_wait_s` after it ended; 0 judges on whatever labels came
    min_label_share: float = 0.0
    label_wait_s: int = 0


@dataclass(frozen=True)
class Objective:
    """The raw objective as written: absolute, or relative to the model's baseline value."""

    value: float | None = None
    relative_to_baseline: float | None = None
    max_degradation: float | None = None


@dataclass(frozen=True)
class Slo:
    """One SLO, resolved: its objective is a number and its alert rules are scaled to its window.

    For ratio SLIs `slo_target` is the objective itself; for metric SLIs the objective bounds the
    per-slice metric and `slo_target` is the share of slices that must be good.
    """

    name: str
    model: str
    dimension: str
    sli: Sli
    objective: float
    window_s: int
    budgeting: Budgeting
    rules: tuple[AlertRule, ...]
    min_events: int
    owner: str | None
    raw_objective: Objective
    baseline: float | None = None
    description: str = ""
    resolve_hold_s: int = 0  # alerts.py hysteresis: a rule false this long resolves
    calendar: Calendar | None = None  # a calendar period instead of a rolling window (calendar.py)

    @property
    def slo_target(self) -> float:
        return self.budgeting.target if self.budgeting.method == "timeslices" else self.objective

    @property
    def error_budget(self) -> float:
        """Allowed bad fraction: 1 - target."""
        return 1.0 - self.slo_target

    @property
    def window(self) -> str:
        return format_duration(self.window_s)

    @property
    def counted_window_s(self) -> int:
        """The window its counters are kept for: the SLO window, or a calendar period's span."""
        return self.calendar.span_s if self.calendar is not None else self.window_s


@dataclass(frozen=True)
class Model:
    """A model whose events sloguard watches."""

    name: str
    segments: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    no_data_after_s: int = 600
    label_delay_s: int = 7 * 86_400
    baseline: Path | None = None
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    reference: dict[str, dict[str, Any]] = field(default_factory=dict)  # feature -> drift.py reference dict
    segment_reference: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> feature -> segment_refs.py
    slice_values: dict[str, list[float]] = field(default_factory=dict)  # SLO -> baseline per-slice values
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)  # positive class -> calibration.py dict
    pca_reference: dict[str, dict[str, Any]] = field(default_factory=dict)  # "a,b" -> multivariate_drift.py dict
    added_segments: tuple[str, ...] = ()  # attributes added to `segments` that the config did not list
    fairness_attribute: str | None = None
    min_support: int = 30  # fairness: groups with fewer samples are reported, not judged
    max_pending_labels: int = 1_000_000  # label join: predictions waiting for a label, oldest evicted
    health_weights: dict[str, float] = field(default_factory=dict)  # dimension -> weight of the health score
    min_label_share: float = 0.4  # label_coverage.min_share: labelled slices wait for this share of labels
    label_wait_s: int = 7 * 86_400  # label_coverage.wait: ... or this long after the slice (default label_delay)


@dataclass(frozen=True)
class Owner:
    """Who is told about a dimension's alerts, and what the alert tells them to do."""

    route: str
    actions: tuple[str, ...] = ()
    runbook: str | None = None


@dataclass(frozen=True)
class Config:
    """A whole validated config."""

    models: dict[str, Model]
    slos: tuple[Slo, ...]
    owners: dict[str, Owner]
    evaluation_interval_s: int = 60
    allowed_lateness_s: int = 60
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    kafka: dict[str, Any] = field(default_factory=dict)
    dedupe_window_s: int = 600
    max_message_bytes: int = 65_536
    max_future_skew_s: int = 3600
    exhausted_severity: str = "ticket"
    no_data_severity: str = "page"
    shards: int = 8  # per model: the per-event stage is keyed by (model, hash of id % shards)
    # per model: the judge is keyed by (model, crc32 of SLO name % judge_parts); None: `sloguard run`
    # uses its worker count (workers per process x processes), in-process evaluation one part
    judge_parts: int | None = None
    incidents: IncidentPolicy = field(default_factory=IncidentPolicy)  # sloguard/core/notify/incident_policy.py
    source: str = "config"
    resolve_hold_s: int = 0  # alerting.resolve_hold: no-data's (SLOs carry their own)
    adjustments: tuple[Adjustment, ...] = ()  # silences and budget adjustments, every model's

    baseline_pending: bool = False  # parsed for `sloguard baseline`: relative objectives not resolved yet

    def slos_of(self, model: str) -> tuple[Slo, ...]:
        return tuple(s for s in self.slos if s.model == model)

    def owner_of(self, slo: Slo) -> Owner | None:
        if slo.owner:
            return self.owners.get(slo.owner) or Owner(route=slo.owner)
        return self.owners.get(slo.dimension) or self.owners.get("default")

    @property
    def longest_window_s(self) -> int:
        return max((s.counted_window_s for s in self.slos), default=86_400)
