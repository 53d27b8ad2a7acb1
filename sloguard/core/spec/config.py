"""The YAML config: models, SLOs, alert rules, owners and topics, validated for meaning.

`load_config(path)` returns a frozen `Config` or raises `ConfigError` listing every problem with
its path (`slos[2].sli.latency.threshold_ms: must be > 0`). Validation rejects what can never
work, not only what is mistyped: an alert rule whose burn rate x (1 - objective) > 1 can never
fire, and a short window must be shorter than its long one. The shape is in DESIGN.md and
README.md; `examples/` has a fraud and a recommender config.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from sloguard.core.notify.incident_policy import IncidentPolicy, parse_incident_policy
from sloguard.core.spec.adjustments import Adjustment, parse_adjustments
from sloguard.core.spec.policy import AlertRule, PolicyError, load_policy, scale_rules
from sloguard.core.spec.sli import CATALOGUE, DIMENSIONS, METRIC, RATIO, SliKind
from sloguard.core.spec.timeutil import format_duration, parse_duration
from sloguard.core.spec.yamlfile import key_lines, line_of, load_yaml
from sloguard.core.stats.drift import reference_from_dict
from sloguard.core.stats.quality import canonical

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
            shown.append(f"  - line {line}: {p}" if line is not None else f"  - {p}")
        super().__init__(f"{source} is invalid:\n" + "\n".join(shown))


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
        return max((s.window_s for s in self.slos), default=86_400)


def load_config(path: str | Path, baseline_pending: bool = False) -> Config:
    """Read, validate and resolve a YAML config file (paths inside are relative to it)."""
    path = Path(path)
    try:
        text = path.read_text()
        data = load_yaml(text)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"], str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {e}"], str(path)) from None
    try:
        return parse_config(data, base_dir=path.parent, source=str(path), baseline_pending=baseline_pending)
    except ConfigError as e:  # the same problems, each with the line of the field it names
        raise ConfigError(e.problems, str(path), key_lines(text)) from None


class _Checker:
    """Collects `path: message` problems while reading a nested mapping."""

    def __init__(self, pending: bool = False) -> None:
        self.problems: list[str] = []
        self.pending = pending  # reading a config for `sloguard baseline`: its baseline may not exist yet

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: set[str] | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.fail(f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def duration(self, value: Any, path: str, default: int | None = None) -> int | None:
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(path, str(e))
            return default

    def number(
        self,
        value: Any,
        path: str,
        lo: float,
        hi: float,
        *,
        open_lo: bool = False,
        open_hi: bool = False,
        default: float | None = None,
    ) -> float | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(path, f"must be a number, got {value!r}")
            return default
        if (value <= lo if open_lo else value < lo) or (value >= hi if open_hi else value > hi):
            lb, rb = "(" if open_lo else "[", ")" if open_hi else "]"
            self.fail(path, f"must be in {lb}{lo:g}, {hi:g}{rb}, got {value!r}")
            return default
        return float(value)

    def names(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(path, "must be a list of names")
            return ()
        if len(set(value)) != len(value):
            self.fail(path, "has duplicates")
        return tuple(value)


_TOP = {
    "rollout",  # read by connectors/controller.py (sloguard.core.rollout.policy.parse_rollout)
    "notifier",  # read by connectors/notifier_config.py
    "incidents",  # sloguard/core/notify/incident_policy.py
    "kafka",
    "evaluation_interval",
    "allowed_lateness",
    "alerting",
    "models",
    "owners",
    "slos",
    "limits",
    "scale",
    "adjustments",  # silences and budget adjustments (sloguard/core/spec/adjustments.py)
}
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def parse_config(
    data: Any, base_dir: Path | None = None, source: str = "config", baseline_pending: bool = False
) -> Config:
    """Validate a config mapping (as loaded from YAML) and resolve it into a `Config`.

    `baseline_pending` reads a config whose baseline file is what `sloguard baseline` is about to
    write: a missing file or metric is not an error and relative objectives stay NaN.
    """
    c = _Checker(baseline_pending)
    base_dir = base_dir or Path.cwd()
    if isinstance(data, dict) and "health" in data:  # weights belong to a model: say where they go
        c.fail("health", "health weights are per model: move them to models.<name>.health.weights")
        data = {k: v for k, v in data.items() if k != "health"}
    top = c.mapping(data, "(top level)", _TOP)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(c.problems, source)
    interval = c.duration(top.get("evaluation_interval"), "evaluation_interval", 60) or 60
    lateness = top.get("allowed_lateness")
    lateness_s = 0 if lateness in (0, "0", "0s") else (c.duration(lateness, "allowed_lateness", interval) or 0)

    kafka = c.mapping(top.get("kafka"), "kafka")
    topics = dict(DEFAULT_TOPICS)
    for k, v in c.mapping(kafka.get("topics"), "kafka.topics", set(DEFAULT_TOPICS)).items():
        if not isinstance(v, str) or not _TOPIC_NAME.fullmatch(v) or v in (".", ".."):
            c.fail(f"kafka.topics.{k}", f"{v!r} is not a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)")
        else:
            topics[k] = v

    limits = c.mapping(top.get("limits"), "limits", {"max_message_bytes", "max_future_skew", "dedupe_window"})
    max_bytes = c.number(limits.get("max_message_bytes"), "limits.max_message_bytes", 256, 100e6, default=65_536)
    skew = c.duration(limits.get("max_future_skew"), "limits.max_future_skew", 3600)
    dedupe = c.duration(limits.get("dedupe_window"), "limits.dedupe_window", 600)
    scale = c.mapping(top.get("scale"), "scale", {"shards"})
    shards = int(c.number(scale.get("shards"), "scale.shards", 1, 4096, default=8) or 8)

    alerting = c.mapping(
        top.get("alerting"), "alerting",
        {"policy", "rules", "slo_window", "min_events", "budget_exhausted", "no_data", "resolve_hold"}
    )
    default_rules, policy_window = _rules(c, alerting, "alerting", base_dir, None, None)
    min_events = int(c.number(alerting.get("min_events"), "alerting.min_events", 0, 1e9, default=100) or 0)
    exhausted = _severity(c, alerting.get("budget_exhausted"), "alerting.budget_exhausted", "ticket")
    no_data = _severity(c, alerting.get("no_data"), "alerting.no_data", "page")
    resolve_hold = _hold(c, alerting.get("resolve_hold"), "alerting.resolve_hold", DEFAULT_HOLD_TICKS * interval)

    models = {}
    raw_models = c.mapping(top.get("models"), "models")
    if not raw_models:
        c.fail("models", "at least one model is required")
    for name, m in raw_models.items():
        models[name] = _model(c, name, m, base_dir, baseline_pending)

    owners = {}
    for dim, o in c.mapping(top.get("owners"), "owners").items():
        path = f"owners.{dim}"
        o = c.mapping(o, path, {"route", "actions", "runbook"})
        if not isinstance(o.get("route"), str) or not o.get("route"):
            c.fail(f"{path}.route", "required: the Slack route (channel/webhook name) of this owner")
        owners[dim] = Owner(
            route=str(o.get("route", "")),
            actions=c.names(o.get("actions"), f"{path}.actions"),
            runbook=o.get("runbook"),
        )

    raw_slos = top.get("slos")
    if not isinstance(raw_slos, list) or not raw_slos:
        c.fail("slos", "must be a non-empty list")
        raw_slos = []
    slos = []
    seen: set[str] = set()
    for i, s in enumerate(raw_slos):
        slo = _slo(c, i, s, models, default_rules, policy_window, min_events, interval, base_dir, resolve_hold)
        if slo is not None:
            if slo.name in seen:
                c.fail(f"slos[{i}].name", f"duplicate SLO name {slo.name!r}")
            seen.add(slo.name)
            slos.append(slo)
    adjustments = parse_adjustments(top.get("adjustments"), {n: m.segments for n, m in models.items()},
                                    {s.name: s.model for s in slos}, c.fail)
    incidents = parse_incident_policy(top.get("incidents"), c.fail)
    if c.problems:
        raise ConfigError(c.problems, source)
    return Config(
        models=models,
        slos=tuple(slos),
        owners=owners,
        evaluation_interval_s=interval,
        allowed_lateness_s=lateness_s,
        topics=topics,
        kafka=kafka,
        dedupe_window_s=dedupe or 600,
        max_message_bytes=int(max_bytes or 65_536),
        max_future_skew_s=skew or 3600,
        exhausted_severity=exhausted,
        no_data_severity=no_data,
        shards=shards,
        incidents=incidents,
        source=source,
        baseline_pending=baseline_pending,
        resolve_hold_s=resolve_hold,
        adjustments=adjustments,
    )


DEFAULT_HOLD_TICKS = 5  # alerting.resolve_hold default, in evaluation intervals


def _hold(c: _Checker, value: Any, path: str, default: int) -> int:
    """A resolve hold: a duration, or 0 to resolve as soon as the rule stops holding."""
    if value in (0, "0", "0s"):
        return 0
    held = c.duration(value, path, default)
    return default if held is None else held


def _severity(c: _Checker, value: Any, path: str, default: str) -> str:
    sev = c.mapping(value, path, {"severity"}).get("severity", default)
    if sev not in SEVERITIES:
        c.fail(f"{path}.severity", f"must be page or ticket, got {sev!r}")
        return default
    return sev


def _rules(
    c: _Checker,
    alerting: dict,
    path: str,
    base_dir: Path,
    inherited: tuple[AlertRule, ...] | None,
    inherited_window: int | None,
) -> tuple[tuple[AlertRule, ...], int]:
    """The rules of an `alerting:` block: a named policy, a policy file, or an explicit list."""
    if "rules" in alerting:
        try:
            return load_policy({"slo_window": alerting.get("slo_window", "30d"), "rules": alerting["rules"]})
        except PolicyError as e:
            c.fail(f"{path}.{e.field or 'rules'}", e.message)
            return (), 30 * 86_400
    if "policy" in alerting:
        try:
            return load_policy(alerting["policy"], base_dir)
        except PolicyError as e:
            c.fail(f"{path}.policy", str(e))
            return (), 30 * 86_400
    if inherited is not None and inherited_window is not None:
        return inherited, inherited_window
    return load_policy("sre-workbook")


_MODEL_KEYS = {
    "segments",
    "features",
    "no_data_after",
    "label_delay",
    "baseline",
    "fairness",
    "max_pending_labels",
    "health",
    "description",
    "label_coverage",
}


def _model(c: _Checker, name: str, m: Any, base_dir: Path, pending: bool = False) -> Model:
    path = f"models.{name}"
    m = c.mapping(m, path, _MODEL_KEYS)
    baseline = None
    metrics: dict[str, float] = {}
    reference: dict[str, dict[str, Any]] = {}
    by_segment: dict[str, dict[str, Any]] = {}
    slice_values: dict[str, list[float]] = {}
    calibration: dict[str, dict[str, Any]] = {}
    pca_reference: dict[str, dict[str, Any]] = {}
    if m.get("baseline") is not None:
        baseline = (base_dir / str(m["baseline"])).resolve()
        try:
            doc = orjson.loads(baseline.read_bytes())
            metrics = {k: float(v) for k, v in (doc.get("metrics") or {}).items() if v is not None}
            reference = _references(c, doc.get("reference") or {}, f"{path}.baseline", baseline)
            by_segment = _segment_refs(c, doc.get("segment_references") or {}, reference, f"{path}.baseline",
                                       baseline)
            slice_values = {k: [float(x) for x in v] for k, v in (doc.get("slice_values") or {}).items()}
            calibration = _baseline_section(c, doc, "calibration", f"{path}.baseline", baseline)
            pca_reference = _baseline_section(c, doc, "multivariate_reference", f"{path}.baseline", baseline)
        except FileNotFoundError:
            if not pending:
                c.fail(f"{path}.baseline", f"file {baseline} not found (make one with `sloguard baseline`)")
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
            c.fail(f"{path}.baseline", f"{baseline} is not a baseline file: {e}")
    segments = c.names(m.get("segments"), f"{path}.segments")
    fairness = c.mapping(m.get("fairness"), f"{path}.fairness", {"attribute", "attributes", "min_support"})
    attribute = fairness.get("attribute")
    if attribute is not None and (not isinstance(attribute, str) or not attribute):
        c.fail(f"{path}.fairness.attribute", "must be a segment attribute name (e.g. merchant_type)")
        attribute = None
    if fairness.get("attributes") is not None:
        attribute = _intersection(c, fairness, f"{path}.fairness")
    added: tuple[str, ...] = ()
    if attribute and attribute not in segments:
        # fairness compares the groups that segment keys count: the attribute becomes a segmentation,
        # so every SLO gets a budget per group; `sloguard validate` says so
        segments, added = (*segments, attribute), (attribute,)
    health = c.mapping(m.get("health"), f"{path}.health", {"weights"})
    label_delay = c.duration(m.get("label_delay"), f"{path}.label_delay", 7 * 86_400) or 0
    coverage = c.mapping(m.get("label_coverage"), f"{path}.label_coverage", {"min_share", "wait"})
    min_share, wait = _coverage(c, coverage, f"{path}.label_coverage", DEFAULT_LABEL_SHARE, label_delay)
    if wait > label_delay:
        c.fail(f"{path}.label_coverage.wait", f"{format_duration(wait)} is longer than the label_delay "
               f"({_or_zero(label_delay)}): no label can come after it")
    return Model(
        name=name,
        segments=segments,
        features=c.names(m.get("features"), f"{path}.features"),
        no_data_after_s=c.duration(m.get("no_data_after"), f"{path}.no_data_after", 600) or 600,
        label_delay_s=label_delay,
        baseline=baseline,
        baseline_metrics=metrics,
        reference=reference,
        segment_reference=by_segment,
        slice_values=slice_values,
        calibration=calibration,
        pca_reference=pca_reference,
        added_segments=added,
        fairness_attribute=attribute,
        min_support=int(
            c.number(fairness.get("min_support"), f"{path}.fairness.min_support", 1, 1e9, default=30) or 30
        ),
        max_pending_labels=int(
            c.number(m.get("max_pending_labels"), f"{path}.max_pending_labels", 1, 1e9, default=1_000_000) or 1_000_000
        ),
        health_weights=_weights(c, health.get("weights"), f"{path}.health.weights"),
        min_label_share=min_share,
        label_wait_s=wait,
    )


DEFAULT_LABEL_SHARE = 0.4  # models.<m>.label_coverage.min_share


def _intersection(c: _Checker, fairness: dict, path: str) -> str | None:
    """`fairness.attributes: [region, age_band]`: the intersection's segment attribute (intersections.py)."""
    from sloguard.core.messages.intersections import SEPARATOR, intersection_name

    names = c.names(fairness["attributes"], f"{path}.attributes")
    if "attribute" in fairness:
        c.fail(f"{path}.attributes", "give attribute (one) or attributes (their intersection), not both")
    if len(names) < 2 or len(set(names)) != len(names):
        c.fail(f"{path}.attributes", f"needs at least two distinct attributes to intersect, got {list(names)}")
        return None
    if any(SEPARATOR in n for n in names):
        c.fail(f"{path}.attributes", f"attribute names must not contain {SEPARATOR!r}")
        return None
    return intersection_name(names)


def _or_zero(seconds: int) -> str:
    return format_duration(seconds) if seconds else "0s"


def _coverage(c: _Checker, raw: dict, path: str, share: float, wait: int) -> tuple[float, int]:
    """A label-coverage rule: min_share in [0, 1] (0: off) and a wait no longer than the label delay."""
    min_share = c.number(raw.get("min_share"), f"{path}.min_share", 0, 1, default=share)
    waited = c.duration(raw.get("wait"), f"{path}.wait", wait)
    return (share if min_share is None else min_share), (wait if waited is None else waited)


def _count(c: _Checker, value: Any, path: str, default: int) -> int:
    n = c.number(value, path, 1, 1e9, default=default)
    if n is not None and n != int(n):
        c.fail(path, f"must be a whole number, got {value!r}")
    return int(n or default)


def _weights(c: _Checker, raw: Any, path: str) -> dict[str, float]:
    out = {}
    for dim, w in c.mapping(raw, path, set(DIMENSIONS)).items():
        out[dim] = c.number(w, f"{path}.{dim}", 0, 1e6) or 0.0
    if out and not sum(out.values()):
        c.fail(path, "at least one weight must be > 0")
    return out


def _baseline_section(c: _Checker, doc: dict, section: str, path: str, file: Path) -> dict[str, dict[str, Any]]:
    """A baseline's `calibration` (positive class -> calibration.py) or `multivariate_reference`
    (feature set -> multivariate_drift.py) section, each entry checked by loading it."""
    from sloguard.core.stats.calibration import IsotonicCalibration
    from sloguard.core.stats.multivariate_drift import PcaReference

    raw = doc.get(section) or {}
    load = IsotonicCalibration.from_dict if section == "calibration" else PcaReference.from_dict
    if not isinstance(raw, dict):
        c.fail(path, f"{file}: {section!r} must be a mapping")
        return {}
    for key, d in raw.items():
        try:
            load(d)
        except (KeyError, TypeError, ValueError) as e:
            c.fail(path, f"{file}: {section} {key!r} is not valid ({e}); re-run sloguard baseline")
            return {}
    return raw


def _references(c: _Checker, raw: Any, path: str, file: Path) -> dict[str, dict[str, Any]]:
    """The drift references of a baseline file: feature -> {kind: numeric|categorical, ...}."""
    if not isinstance(raw, dict):
        c.fail(path, f"{file}: 'reference' must map feature names to references")
        return {}
    for feature, ref in raw.items():
        if not isinstance(ref, dict) or ref.get("kind") not in ("numeric", "categorical"):
            c.fail(path, f"{file}: reference of feature {feature!r} has no kind numeric|categorical")
            continue
        try:
            reference_from_dict(ref)
        except (KeyError, TypeError, ValueError) as e:
            c.fail(
                path,
                f"{file}: reference of feature {feature!r} is broken ({type(e).__name__}: {e}); "
                "re-run sloguard baseline",
            )
    return raw


def _segment_refs(c: _Checker, raw: Any, reference: dict[str, dict[str, Any]], path: str, file: Path
                  ) -> dict[str, dict[str, Any]]:
    """A baseline's per-segment drift references: "attr=value" -> feature -> shares on the model's bins."""
    from sloguard.core.stats.segment_refs import segment_reference

    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        c.fail(path, f"{file}: 'segment_references' must map segment keys to feature references")
        return {}
    for key, features in raw.items():
        for feature, d in features.items():
            if feature not in reference:
                continue
            try:
                segment_reference(reference_from_dict(reference[feature]), d)
            except (KeyError, TypeError, ValueError) as e:
                c.fail(path, f"{file}: segment reference {key} of feature {feature!r} does not fit the model's "
                             f"({type(e).__name__}: {e}); re-run sloguard baseline")
    return raw


def _sli(c: _Checker, raw: Any, path: str, model: Model | None) -> Sli | None:
    if isinstance(raw, str):
        kind, params = raw, {}
    elif isinstance(raw, dict) and len(raw) == 1:
        kind, params = next(iter(raw.items()))
        params = c.mapping(params, f"{path}.{kind}")
    else:
        c.fail(
            path,
            "must be an SLI name (e.g. availability) or a one-key mapping (e.g. {latency: {threshold_ms: 100}})",
        )
        return None
    spec = CATALOGUE.get(kind)
    if spec is None:
        c.fail(path, f"unknown SLI {kind!r} (known: {', '.join(CATALOGUE)})")
        return None
    ppath = f"{path}.{kind}" if isinstance(raw, dict) else path
    for key in params:
        if key not in spec.params:
            c.fail(f"{ppath}.{key}", f"unknown parameter (expected: {', '.join(spec.params) or 'none'})")
    for key in spec.required:
        if key not in params:
            c.fail(f"{ppath}.{key}", "required")
    resolved: dict[str, Any] = {}
    for key, value in params.items():
        kind_of = spec.params.get(key)
        if kind_of == "number":
            resolved[key] = c.number(value, f"{ppath}.{key}", 0, math.inf, open_lo=True, open_hi=True)
        elif kind_of == "count":
            resolved[key] = _count(c, value, f"{ppath}.{key}", 1)
        elif kind_of == "fraction":
            resolved[key] = c.number(value, f"{ppath}.{key}", 0, 1, open_lo=True, open_hi=True)
        elif kind_of == "duration":
            resolved[key] = c.duration(value, f"{ppath}.{key}")
        elif kind_of == "source":
            if value not in ("inference", "features"):
                c.fail(f"{ppath}.{key}", f"must be inference or features, got {value!r}")
            resolved[key] = value
        elif kind_of == "value":
            if not isinstance(value, str | int | float | bool):
                c.fail(f"{ppath}.{key}", f"must be a class label (a string or number), got {value!r}")
            resolved[key] = canonical(value)
        elif kind_of == "names":
            resolved[key] = c.names(value, f"{ppath}.{key}")
        elif kind_of == "name":
            if not isinstance(value, str) or not value:
                c.fail(f"{ppath}.{key}", f"must be a name, got {value!r}")
            resolved[key] = value
        elif kind_of == "drift_method":
            if value not in DRIFT_METHODS:
                c.fail(f"{ppath}.{key}", f"must be one of {', '.join(DRIFT_METHODS)}, got {value!r}")
            resolved[key] = value
        elif kind_of in ("expression", "numeric_field", "bound"):
            resolved[key] = _expression_param(c, kind_of, value, f"{ppath}.{key}", model)
        elif kind_of == "estimated_metric":
            if value not in ESTIMATED_BASES:
                c.fail(f"{ppath}.{key}", f"must be one of {', '.join(ESTIMATED_BASES)}, got {value!r}")
            resolved[key] = value
    if kind == "threshold" and "min" not in params and "max" not in params:
        c.fail(ppath, "needs max (good = value <= max), min (good = value >= min), or both")
    if kind == "threshold" and isinstance(resolved.get("min"), float) and isinstance(resolved.get("max"), float) \
            and resolved["min"] > resolved["max"]:
        c.fail(f"{ppath}.min", f"must be <= max ({resolved['max']:g}): no value could be good")
    if "source" in spec.params:
        resolved.setdefault("source", "inference")
    if "positive" in spec.params:
        resolved.setdefault("positive", "1")
    if model is not None:
        _model_params(c, kind, spec, resolved, path, model)
    if kind in ("completeness", "data_quality") and model is not None and not model.features:
        c.fail(path, f"{kind} needs the expected feature names: set models.{model.name}.features")
    return Sli(kind, resolved)


def _expression_param(c: _Checker, kind_of: str, value: Any, path: str, model: Model | None) -> Any:
    """A ratio SLI's expression, a threshold's numeric field or bound, checked (expr.py)."""
    from sloguard.core.spec.expr import ExprError, field_type, known_fields, parse_expression

    if kind_of == "bound":
        return c.number(value, path, -math.inf, math.inf, open_lo=True, open_hi=True)
    if kind_of == "numeric_field":
        kind = field_type(value) if isinstance(value, str) else None
        if kind is None:
            c.fail(path, f"unknown field {value!r} (known: {known_fields()})")
        elif kind == "string":
            c.fail(path, f"{value} is not a numeric field (a threshold needs numbers, e.g. latency_ms or "
                         "attributes.cost_usd)")
        return value
    if not isinstance(value, str):
        c.fail(path, f"must be an expression in quotes (e.g. 'status == \"ok\"'), got {value!r}")
        return value
    try:
        parse_expression(value, model.segments if model is not None else None)
    except ExprError as e:
        c.fail(path, str(e))
    return value


DRIFT_METHODS = ("auto", "ks", "chi2", "psi", "wasserstein", "jensen_shannon")
ESTIMATED_BASES = ("precision", "recall", "f1", "accuracy")  # estimation_error.metric: what CBPE estimates


def _model_params(c: _Checker, kind: str, spec: SliKind, params: dict[str, Any], path: str, model: Model) -> None:
    """Defaults and checks that need the model: labels, the fairness attribute, drift references."""
    if spec.labelled and model.label_delay_s <= 0:
        c.fail(path, f"{kind} needs labels: set models.{model.name}.label_delay (e.g. 7d)")
    if spec.fairness:
        params.setdefault("attribute", model.fairness_attribute)
        params.setdefault("min_support", model.min_support)
        if not params["attribute"]:
            c.fail(path, f"{kind} compares the groups of one attribute: set attribute, or models.{model.name}.fairness")
        elif params["attribute"] not in model.segments:
            c.fail(
                f"{path}.{kind}.attribute",
                f"{params['attribute']!r} is not a segment of {model.name} (add it to models.{model.name}.segments)",
            )
    if spec.sliced in ("estimated", "estimation_error"):
        _check_calibrated(c, kind, params, path, model)
    if spec.sliced == "multivariate":
        _check_pca(c, params, path, model)
    if kind == "drift":
        params.setdefault("method", "auto")
        params.setdefault("p_value", 0.05)
        params.setdefault("psi_threshold", 0.25)
        params.setdefault("large_sample", 1000)
        if not params.get("features"):
            params["features"] = tuple(f for f in model.features if f in model.reference) or model.features
        if not params["features"]:
            c.fail(path, f"drift needs features: list them, or set models.{model.name}.features")
        if model.baseline is None:
            c.fail(path, f"drift compares against a reference: set models.{model.name}.baseline (sloguard baseline)")
        elif model.reference or not c.pending:
            missing = [f for f in params["features"] if f not in model.reference]
            if missing:
                c.fail(
                    path,
                    f"baseline {model.baseline} has no reference for {', '.join(missing)} (re-run sloguard baseline)",
                )


def _check_calibrated(c: _Checker, kind: str, params: dict[str, Any], path: str, model: Model) -> None:
    """An estimated quality SLI reads scores calibrated on the baseline's labelled history."""
    remedy = "run `sloguard baseline --labels ...` on history whose predictions carry a `score`"
    if model.baseline is None:
        c.fail(path, f"{kind} needs a score calibration: set models.{model.name}.baseline ({remedy})")
    elif not c.pending and canonical(params["positive"]) not in model.calibration:
        c.fail(path, f"{kind}: baseline {model.baseline} has no score calibration for positive class "
               f"{params['positive']!r} (the model sent no scores, or the history had no labels): {remedy}")


def _check_pca(c: _Checker, params: dict[str, Any], path: str, model: Model) -> None:
    """A multivariate drift SLI: two or more features, with a PCA reference in the baseline."""
    from sloguard.core.stats.multivariate_drift import reference_key

    features = params.get("features") or ()
    if len(features) < 2:
        c.fail(f"{path}.multivariate_drift.features", f"needs at least two features, got {list(features)}")
    elif model.baseline is None:
        c.fail(path, f"multivariate_drift compares against a reference: set models.{model.name}.baseline "
               "(sloguard baseline)")
    elif not c.pending and reference_key(features) not in model.pca_reference:
        c.fail(path, f"baseline {model.baseline} has no multivariate reference for {', '.join(features)} "
               "(re-run sloguard baseline with this SLO in the config; the features must be numbers)")


def _objective(c: _Checker, raw: Any, path: str) -> Objective:
    if isinstance(raw, dict):
        raw = c.mapping(raw, path, {"relative_to_baseline", "max_degradation"})
        if len(raw) != 1:
            c.fail(path, "give one of relative_to_baseline or max_degradation")
            return Objective()
        if "relative_to_baseline" in raw:
            return Objective(
                relative_to_baseline=c.number(
                    raw["relative_to_baseline"], f"{path}.relative_to_baseline", 0, 10, open_lo=True
                )
            )
        return Objective(
            max_degradation=c.number(raw["max_degradation"], f"{path}.max_degradation", 0, 1, open_hi=True)
        )
    if raw is None:
        c.fail(path, "required (e.g. 0.999, or {relative_to_baseline: 0.98})")
        return Objective()
    return Objective(value=c.number(raw, path, -math.inf, math.inf))


def _resolve_objective(
    c: _Checker, obj: Objective, path: str, sli: Sli, name: str, model: Model
) -> tuple[float | None, float | None]:
    """The objective as a number and the baseline it was derived from (if any).

    Relative objectives use the baseline value recorded for this SLO:
    `current >= factor x baseline` for higher-is-better SLIs, `<= factor x baseline` otherwise;
    `max_degradation: d` is `(baseline - current) / baseline <= d`, i.e. factor 1 - d (or 1 + d).
    """
    if obj.value is not None:
        return obj.value, None
    if obj.relative_to_baseline is None and obj.max_degradation is None:
        return None, None
    if model.baseline is None:
        c.fail(path, f"a relative objective needs models.{model.name}.baseline")
        return None, None
    if sli.spec.sliced in ("estimated", "estimation_error", "multivariate"):  # read what the baseline builds
        c.fail(path, f"{sli.kind} has no baseline value to be relative to: give a number (the baseline's "
               "labelled metric, e.g. its precision SLO's, is a good anchor)")
        return None, None
    base = model.baseline_metrics.get(name)
    if base is None and c.pending:
        return math.nan, None
    if base is None:
        c.fail(path, f"baseline {model.baseline} has no metric for SLO {name!r} (re-run sloguard baseline)")
        return None, None
    lower_better = sli.family == METRIC and sli.spec.direction == "<="
    if obj.relative_to_baseline is not None:
        return obj.relative_to_baseline * base, base
    d = obj.max_degradation or 0.0
    return base * (1 + d if lower_better else 1 - d), base


_SLO_KEYS = {
    "name",
    "model",
    "dimension",
    "sli",
    "objective",
    "window",
    "budgeting",
    "alerting",
    "owner",
    "description",
}


def _slo(
    c: _Checker,
    i: int,
    s: Any,
    models: dict[str, Model],
    default_rules: tuple[AlertRule, ...],
    policy_window: int,
    min_events: int,
    interval: int,
    base_dir: Path,
    resolve_hold: int = DEFAULT_HOLD_TICKS * 60,
) -> Slo | None:
    path = f"slos[{i}]"
    s = c.mapping(s, path, _SLO_KEYS)
    start = len(c.problems)
    name = s.get("name")
    if not isinstance(name, str) or not name:
        c.fail(f"{path}.name", "required: a unique SLO name")
        name = f"slo-{i}"
    model = models.get(s.get("model"))
    if model is None:
        c.fail(f"{path}.model", f"unknown model {s.get('model')!r} (models: {', '.join(models) or 'none'})")
    sli = _sli(c, s.get("sli"), f"{path}.sli", model)
    dimension = s.get("dimension")
    if dimension not in DIMENSIONS:
        c.fail(f"{path}.dimension", f"must be one of {', '.join(DIMENSIONS)}, got {dimension!r}")
    elif sli is not None and sli.spec.dimension and sli.spec.dimension != dimension:  # "": the config says
        c.fail(f"{path}.dimension", f"{sli.kind} is a {sli.spec.dimension} SLI, not {dimension}")
    window = c.duration(s.get("window"), f"{path}.window")
    if window is None:
        c.fail(f"{path}.window", "required (e.g. 30d)")
    elif window % interval:
        c.fail(f"{path}.window", f"must be a multiple of evaluation_interval ({format_duration(interval)})")
    budgeting = _budgeting(c, s.get("budgeting"), f"{path}.budgeting", sli, interval, window, model)
    raw_obj = (
        _objective(c, s.get("objective"), f"{path}.objective")
        if s.get("objective") is not None or sli is None or sli.kind != "drift"
        else Objective(value=0.25 if sli.params.get("method") == "psi" else 0.1)
    )
    objective, baseline = (None, None)
    if sli is not None and model is not None:
        objective, baseline = _resolve_objective(c, raw_obj, f"{path}.objective", sli, name, model)
    if (
        objective is not None
        and sli is not None
        and sli.family == RATIO
        and not 0 < objective < 1
        and not (c.pending and math.isnan(objective))
    ):
        c.fail(
            f"{path}.objective",
            f"a ratio SLI's objective must be in (0, 1), got {objective:g} (write 0.999, not 99.9)",
        )
    alerting = c.mapping(s.get("alerting"), f"{path}.alerting",
                         {"policy", "rules", "slo_window", "min_events", "resolve_hold"})
    hold = _hold(c, alerting.get("resolve_hold"), f"{path}.alerting.resolve_hold", resolve_hold)
    rules, rules_window = _rules(c, alerting, f"{path}.alerting", base_dir, default_rules, policy_window)
    slo_min_events = int(
        c.number(alerting.get("min_events"), f"{path}.alerting.min_events", 0, 1e9, default=min_events) or 0
    )
    if len(c.problems) > start or sli is None or model is None or window is None or objective is None:
        return None
    step = budgeting.slice_s if budgeting.method == "timeslices" else interval
    scaled = scale_rules(rules, rules_window, window, step)
    target = budgeting.target if budgeting.method == "timeslices" else objective
    for j, rule in enumerate(scaled):
        rpath = f"{path}.alerting.rules[{j}] ({rule.name})"
        if rule.burn_rate * (1 - target) > 1:
            c.fail(
                f"{rpath}.burn_rate",
                f"{rule.burn_rate:g} x (1 - {target:g}) > 1: the bad fraction "
                "can never reach it, so this rule can never fire; lower the burn rate or the target",
            )
        if rule.short_window_s >= rule.long_window_s:
            c.fail(
                f"{rpath}.short_window",
                f"{format_duration(rule.short_window_s)} is not shorter than "
                f"the long window {format_duration(rule.long_window_s)} "
                f"(after scaling to {format_duration(window)})",
            )
        if rule.long_window_s > window:
            c.fail(f"{rpath}.long_window", f"{format_duration(rule.long_window_s)} exceeds the SLO window")
    if sli.kind == "drift" and sli.params["method"] in ("auto", "ks", "chi2") and target > 1 - sli.params["p_value"]:
        c.fail(
            f"{path}.budgeting.target",
            f"{target:g} leaves {1 - target:.0%} of slices to drift, but the test alone flags up to "
            f"{sli.params['p_value']:.0%} of drift-free slices (p_value {sli.params['p_value']:g}): "
            f"use a target <= {1 - sli.params['p_value']:g}, a smaller p_value, or an effect-size method",
        )
    if len(c.problems) > start:
        return None
    return Slo(
        name=name,
        model=model.name,
        dimension=dimension,
        sli=sli,
        objective=objective,
        window_s=window,
        budgeting=budgeting,
        rules=scaled,
        min_events=slo_min_events,
        owner=s.get("owner"),
        raw_objective=raw_obj,
        baseline=baseline,
        description=str(s.get("description", "")),
        # a timeslice SLO's rules change only when a slice is judged: a shorter hold holds nothing
        resolve_hold_s=max(hold, budgeting.slice_s) if hold else 0,
    )


def _budgeting(c: _Checker, raw: Any, path: str, sli: Sli | None, interval: int, window: int | None,
               model: Model | None = None) -> Budgeting:
    raw = c.mapping(raw, path, {"method", "timeslices", "min_samples", "target", "label_coverage"})
    metric = sli is not None and sli.family == METRIC
    method = raw.get("method", "timeslices" if ("timeslices" in raw or metric) else "occurrences")
    if method not in ("occurrences", "timeslices"):
        c.fail(f"{path}.method", f"must be occurrences or timeslices, got {method!r}")
        return Budgeting()
    if method == "occurrences":
        if metric:
            c.fail(
                path,
                f"{sli.kind} is a metric SLI: it needs timeslices (e.g. budgeting: "  # type: ignore[union-attr]
                "{timeslices: 5m, min_samples: 50, target: 0.99})",
            )
        return Budgeting()
    slice_s = c.duration(raw.get("timeslices"), f"{path}.timeslices", 300) or 300
    if slice_s % interval:
        c.fail(f"{path}.timeslices", f"must be a multiple of evaluation_interval ({format_duration(interval)})")
    if window is not None and window % slice_s:
        c.fail(f"{path}.timeslices", f"the SLO window {format_duration(window)} is not a whole number of slices")
    min_samples = int(c.number(raw.get("min_samples"), f"{path}.min_samples", 1, 1e9, default=1) or 1)
    target = c.number(raw.get("target"), f"{path}.target", 0, 1, open_lo=True, open_hi=True, default=0.99)
    share, wait = 0.0, 0
    if sli is not None and sli.spec.labelled and model is not None:
        coverage = c.mapping(raw.get("label_coverage"), f"{path}.label_coverage", {"min_share", "wait"})
        share, wait = _coverage(c, coverage, f"{path}.label_coverage", model.min_label_share, model.label_wait_s)
        if wait > model.label_delay_s:
            c.fail(f"{path}.label_coverage.wait", f"{format_duration(wait)} is longer than models.{model.name}."
                   f"label_delay ({_or_zero(model.label_delay_s)}): no label can come after it")
    elif raw.get("label_coverage") is not None:
        c.fail(f"{path}.label_coverage", "only SLIs judged on labels wait for label coverage")
    return Budgeting("timeslices", slice_s, min_samples, target or 0.99, share, wait)
