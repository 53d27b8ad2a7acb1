"""The error-budget policy of rollouts: promote, hold or roll back a model version, and why.

Error budgets exist to govern change. This module folds ``slo.budget`` and ``slo.alerts`` events
into the latest state per model, version, SLO and segment (`RolloutState.apply`) and turns that
state into a `Decision` for one model version (`RolloutState.decide(model, version, now)`):

* **rollback** when a *hard-stop* dimension (default: infrastructure, fairness) has a firing
  page on the candidate version, or the canary is statistically worse than stable (p < alpha);
* **hold** when a *soft-stop* dimension (default: quality, data, drift) pages, a budget is below
  its floor (``min_budget_remaining``), a budget is exhausted (promotions freeze until it
  recovers, also when it is the stable version's budget that is spent), production (stable)
  pages, a hard-stop page on the candidate is one production shares (an incident both versions
  serve, which a rollback would not end; see `_Judge.check_alerts`), a freeze override is active,
  the canary lacks traffic for a verdict, or the canary's bad rate at full traffic would spend the
  remaining budget within the SLO window;
* **promote** only when every configured SLO of the model has fresh data and every check passes.
  Missing or stale data is never a pass (Kayenta's *mustHaveData*).

Overrides (``rollout.overrides``) carry a reason and an expiry and are recorded in every decision
they affect. ``effect: freeze`` holds promotions (a peak-traffic period); ``effect: allow``
waives budget floors, exhaustion freezes, soft-stop pages and stable pages for its dimensions
(a hotfix); ``effect: adjust`` replaces floors while active. No override waives a hard-stop page
on the candidate, a statistically significant canary regression, or missing data.

Pure: no I/O and no clock; ``now`` is passed in. The config shape, under ``rollout:`` in the
sloguard YAML (read with `parse_rollout`)::

    rollout:
      policy:
        min_budget_remaining: {infrastructure: 0.5, fairness: 0.75, quality: 0.3}  # or per SLO name
        hard_stop: [infrastructure, fairness]   # a firing page -> rollback
        soft_stop: [quality, data, drift]       # a firing page -> hold
        freeze_when_exhausted: true             # budget <= 0 -> hold until it recovers
        max_staleness: 15m                      # older budget state counts as missing (0: never)
        segments: whole                         # whole: the {} segment; worst: worst segment
      canary:
        slos: [fraud-availability, fraud-latency]  # default: the model's occurrence SLOs
        alpha: 0.05
        min_samples: 1000                       # per variant, before any verdict
        lookback: 1h                            # burn window to compare over (null: SLO window)
        blast_radius: true
      overrides:
        - {model: fraud, effect: freeze, reason: "Black Friday peak", expires: 2026-11-30T00:00:00Z}

`replay_decisions(spec, events)` runs the same judgement over a file of events in event time
(backtests, the demo); `sloguard.connectors.controller` runs it on Kafka and serves it over HTTP.

Canary and stable traffic are read from budget events whose segment is ``{"variant": ...}``
(add ``variant`` to the model's segments); stable is the latest version seen with
``variant=stable``. The flow keys the whole model (and region-like segments) by model, not by
version, and labels each budget event with the version of its key's newest event: for a version
that has been seen, the policy reads the freshest whole-model budget under any label, and a page
on such a segment speaks for the canary only where no ``{"variant": "canary"}`` data exists.
Budget events may carry ``histogram: {"edges": [...], "counts": [...]}`` for a Mann-Whitney
comparison of latency-like SLIs (`sloguard.core.stats.canary`).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sloguard.core.messages import outputs as messages
from sloguard.core.spec.model import Config, ConfigError
from sloguard.core.spec.sli import CATALOGUE, DIMENSIONS, METRIC
from sloguard.core.spec.timeutil import format_duration, parse_duration, parse_rfc3339, to_rfc3339
from sloguard.core.stats.canary import (
    FAIL,
    INCONCLUSIVE,
    BudgetContext,
    Comparison,
    Counts,
    compare_histograms,
    compare_ratio,
)

__all__ = [
    "DECISIONS",
    "RESULT",
    "CanarySpec",
    "Decision",
    "InvalidEvent",
    "Override",
    "Policy",
    "Reason",
    "RolloutSpec",
    "RolloutState",
    "SloInfo",
    "parse_rollout",
    "replay_decisions",
]

PROMOTE, HOLD, ROLLBACK = "promote", "hold", "rollback"
DECISIONS = (PROMOTE, HOLD, ROLLBACK)
#: Numeric form for deployment tools (Argo Rollouts' successCondition `result == 1`).
RESULT = {PROMOTE: 1, HOLD: 0, ROLLBACK: -1}
VARIANTS = ("canary", "stable")
EFFECTS = ("allow", "freeze", "adjust")
_HIGHER_WORSE = {"latency", "latency_quantile", "freshness", "freshness_quantile"}


class InvalidEvent(ValueError):
    """A budget or alert event the controller cannot use; the message names the field."""


# -- spec ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Which budgets and alerts block a rollout, and how."""

    min_budget_remaining: Mapping[str, float] = field(
        default_factory=lambda: {"infrastructure": 0.5, "fairness": 0.75, "quality": 0.3}
    )
    hard_stop: frozenset[str] = frozenset({"infrastructure", "fairness"})
    soft_stop: frozenset[str] = frozenset({"quality", "data", "drift"})
    freeze_when_exhausted: bool = True
    max_staleness_s: int = 900
    segments: str = "whole"  # whole | worst

    def floor(self, slo: str, dimension: str) -> float | None:
        """The minimum remaining budget for an SLO: its own entry, else its dimension's."""
        if slo in self.min_budget_remaining:
            return self.min_budget_remaining[slo]
        return self.min_budget_remaining.get(dimension)


@dataclass(frozen=True)
class CanarySpec:
    """How canary and stable are compared."""

    enabled: bool = True
    alpha: float = 0.05
    min_samples: int = 1000
    min_effect: float = 0.0
    slos: tuple[str, ...] | None = None  # None: the model's occurrence-budgeted SLOs
    lookback: str | None = "1h"
    blast_radius: bool = True


@dataclass(frozen=True)
class Override:
    """A time-boxed, documented exception to the policy."""

    reason: str
    expires_s: float
    effect: str = "allow"  # allow | freeze | adjust
    starts_s: float | None = None
    model: str | None = None
    version: str | None = None
    dimensions: frozenset[str] = frozenset()  # empty: every dimension
    min_budget_remaining: Mapping[str, float] = field(default_factory=dict)
    by: str | None = None
    index: int = 0

    def active(self, now: float) -> bool:
        return (self.starts_s is None or self.starts_s <= now) and now < self.expires_s

    def matches(self, model: str, version: str) -> bool:
        return (self.model is None or self.model == model) and (self.version is None or self.version == version)

    def covers(self, dimension: str) -> bool:
        return not self.dimensions or dimension in self.dimensions

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "effect": self.effect,
            "reason": self.reason,
            "expires": to_rfc3339(self.expires_s),
            "model": self.model,
            "version": self.version,
            "dimensions": sorted(self.dimensions),
        }
        if self.starts_s is not None:
            out["starts"] = to_rfc3339(self.starts_s)
        if self.min_budget_remaining:
            out["min_budget_remaining"] = dict(self.min_budget_remaining)
        if self.by:
            out["by"] = self.by
        return out


@dataclass(frozen=True)
class SloInfo:
    """What the policy needs to know about a configured SLO."""

    name: str
    model: str
    dimension: str
    target: float
    window_s: int
    occurrences: bool
    higher_is_worse: bool = True
    unit: str = ""


@dataclass(frozen=True)
class RolloutSpec:
    """The whole rollout config: policy, canary analysis, overrides and the SLOs they judge."""

    slos: Mapping[str, tuple[SloInfo, ...]]  # model -> its SLOs
    policy: Policy = field(default_factory=Policy)
    canary: CanarySpec = field(default_factory=CanarySpec)
    overrides: tuple[Override, ...] = ()

    @classmethod
    def from_config(cls, config: Config, raw: Any = None, source: str = "config") -> RolloutSpec:
        """Build from a loaded `Config` and the raw ``rollout:`` mapping (None: defaults)."""
        return parse_rollout(raw, config, source)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.slos)

    def slo(self, model: str, name: str) -> SloInfo | None:
        for s in self.slos.get(model, ()):
            if s.name == name:
                return s
        return None

    def canary_slos(self, model: str) -> tuple[SloInfo, ...]:
        mine = self.slos.get(model, ())
        if self.canary.slos is None:
            return tuple(s for s in mine if s.occurrences)
        return tuple(s for s in mine if s.name in self.canary.slos)


def _slo_infos(config: Config) -> dict[str, tuple[SloInfo, ...]]:
    out: dict[str, list[SloInfo]] = {m: [] for m in config.models}
    for s in config.slos:
        spec = CATALOGUE.get(s.sli.kind)
        metric = s.sli.family == METRIC
        higher_worse = (spec.direction == "<=") if metric and spec is not None else s.sli.kind in _HIGHER_WORSE
        out.setdefault(s.model, []).append(
            SloInfo(
                name=s.name,
                model=s.model,
                dimension=s.dimension,
                target=s.slo_target,
                window_s=s.window_s,
                occurrences=s.budgeting.method == "occurrences",
                higher_is_worse=higher_worse,
                unit=spec.unit if spec is not None else "",
            )
        )
    return {m: tuple(v) for m, v in out.items()}


def parse_rollout(raw: Any, config: Config, source: str = "config") -> RolloutSpec:
    """Validate the ``rollout:`` section; raises `ConfigError` naming every bad field."""
    problems: list[str] = []

    def fail(path: str, msg: str) -> None:
        problems.append(f"{path}: {msg}")

    def mapping(v: Any, path: str, allowed: set[str]) -> dict:
        if v is None:
            return {}
        if not isinstance(v, dict):
            fail(path, f"must be a mapping, got {type(v).__name__}")
            return {}
        for k in v:
            if k not in allowed:
                fail(f"{path}.{k}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return v

    def fraction(v: Any, path: str) -> float | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= 1:
            fail(path, f"must be a fraction in [0, 1] (0.5, not 50), got {v!r}")
            return None
        return float(v)

    def floors(v: Any, path: str) -> dict[str, float]:
        out: dict[str, float] = {}
        names = set(DIMENSIONS) | {s.name for s in config.slos}
        for k, x in mapping(v, path, names).items():
            f = fraction(x, f"{path}.{k}")
            if f is not None:
                out[k] = f
        return out

    def dims(v: Any, path: str) -> frozenset[str]:
        if v is None:
            return frozenset()
        if not isinstance(v, list) or not all(isinstance(d, str) for d in v):
            fail(path, "must be a list of dimensions")
            return frozenset()
        for d in v:
            if d not in DIMENSIONS:
                fail(path, f"unknown dimension {d!r} (known: {', '.join(DIMENSIONS)})")
        return frozenset(d for d in v if d in DIMENSIONS)

    def duration(v: Any, path: str, default: int | None) -> int | None:
        if v is None:
            return default
        if v in (0, "0", "0s"):
            return 0
        try:
            return parse_duration(v)
        except ValueError as e:
            fail(path, str(e))
            return default

    top = mapping(raw, "rollout", {"policy", "canary", "overrides", "controller"})

    p = mapping(
        top.get("policy"),
        "rollout.policy",
        {
            "min_budget_remaining",
            "hard_stop",
            "soft_stop",
            "freeze_when_exhausted",
            "max_staleness",
            "segments",
        },
    )
    default = Policy()
    hard = dims(p["hard_stop"], "rollout.policy.hard_stop") if "hard_stop" in p else default.hard_stop
    soft = dims(p["soft_stop"], "rollout.policy.soft_stop") if "soft_stop" in p else default.soft_stop - hard
    if hard & soft:
        fail("rollout.policy.soft_stop", f"{', '.join(sorted(hard & soft))} cannot be both a hard and a soft stop")
    segments = p.get("segments", "whole")
    if segments not in ("whole", "worst"):
        fail("rollout.policy.segments", f"must be whole or worst, got {segments!r}")
    freeze = p.get("freeze_when_exhausted", True)
    if not isinstance(freeze, bool):
        fail("rollout.policy.freeze_when_exhausted", "must be true or false")
    policy = Policy(
        min_budget_remaining=(
            floors(p["min_budget_remaining"], "rollout.policy.min_budget_remaining")
            if "min_budget_remaining" in p
            else default.min_budget_remaining
        ),
        hard_stop=hard,
        soft_stop=soft,
        freeze_when_exhausted=bool(freeze),
        max_staleness_s=duration(p.get("max_staleness"), "rollout.policy.max_staleness", 900) or 0,
        segments=segments,
    )

    c = mapping(
        top.get("canary"),
        "rollout.canary",
        {
            "enabled",
            "alpha",
            "min_samples",
            "min_effect",
            "slos",
            "lookback",
            "blast_radius",
        },
    )
    alpha = c.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 0.5:
        fail("rollout.canary.alpha", f"must be in (0, 0.5), got {alpha!r}")
        alpha = 0.05
    min_samples = c.get("min_samples", 1000)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        fail("rollout.canary.min_samples", f"must be a whole number >= 1, got {min_samples!r}")
        min_samples = 1000
    min_effect = c.get("min_effect", 0.0)
    if isinstance(min_effect, bool) or not isinstance(min_effect, int | float) or min_effect < 0:
        fail("rollout.canary.min_effect", f"must be a number >= 0, got {min_effect!r}")
        min_effect = 0.0
    canary_slos = c.get("slos")
    if canary_slos is not None:
        known = {s.name for s in config.slos}
        if not isinstance(canary_slos, list) or not all(isinstance(n, str) for n in canary_slos):
            fail("rollout.canary.slos", "must be a list of SLO names")
            canary_slos = None
        else:
            for n in canary_slos:
                if n not in known:
                    fail("rollout.canary.slos", f"unknown SLO {n!r} (SLOs: {', '.join(sorted(known))})")
            canary_slos = tuple(canary_slos)
    lookback = c.get("lookback", "1h")
    if lookback is not None:
        try:
            parse_duration(lookback)
        except ValueError as e:
            fail("rollout.canary.lookback", f"{e} (or null for the whole SLO window)")
            lookback = "1h"
    for key in ("enabled", "blast_radius"):
        if key in c and not isinstance(c[key], bool):
            fail(f"rollout.canary.{key}", "must be true or false")
    canary = CanarySpec(
        enabled=bool(c.get("enabled", True)),
        alpha=float(alpha),
        min_samples=int(min_samples),
        min_effect=float(min_effect),
        slos=canary_slos,
        lookback=lookback,
        blast_radius=bool(c.get("blast_radius", True)),
    )

    overrides = []
    raw_over = top.get("overrides") or []
    if not isinstance(raw_over, list):
        fail("rollout.overrides", "must be a list")
        raw_over = []
    for i, o in enumerate(raw_over):
        path = f"rollout.overrides[{i}]"
        o = mapping(
            o,
            path,
            {
                "reason",
                "expires",
                "starts",
                "effect",
                "model",
                "version",
                "dimensions",
                "min_budget_remaining",
                "by",
            },
        )
        reason = o.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            fail(f"{path}.reason", "required: say why (it is recorded in every decision the override affects)")
        expires = _when(o.get("expires"))
        if expires is None:
            fail(f"{path}.expires", f"required: an RFC 3339 time with a zone, got {o.get('expires')!r}")
        starts = _when(o["starts"]) if o.get("starts") is not None else None
        if o.get("starts") is not None and starts is None:
            fail(f"{path}.starts", f"must be an RFC 3339 time with a zone, got {o.get('starts')!r}")
        if starts is not None and expires is not None and starts >= expires:
            fail(f"{path}.expires", "must be after starts")
        effect = o.get("effect", "allow")
        if effect not in EFFECTS:
            fail(f"{path}.effect", f"must be one of {', '.join(EFFECTS)}, got {effect!r}")
        model = o.get("model")
        if model is not None and model not in config.models:
            fail(f"{path}.model", f"unknown model {model!r}")
        version = o.get("version")
        if version is not None and not isinstance(version, str):
            version = str(version)
        adjust = floors(o.get("min_budget_remaining"), f"{path}.min_budget_remaining")
        if effect == "adjust" and not adjust:
            fail(f"{path}.min_budget_remaining", "required when effect is adjust")
        if expires is not None and isinstance(reason, str) and effect in EFFECTS:
            overrides.append(
                Override(
                    reason=reason.strip(),
                    expires_s=expires,
                    effect=effect,
                    starts_s=starts,
                    model=model,
                    version=version,
                    dimensions=dims(o.get("dimensions"), f"{path}.dimensions"),
                    min_budget_remaining=adjust,
                    by=str(o["by"]) if o.get("by") is not None else None,
                    index=i,
                )
            )
    if problems:
        raise ConfigError(problems, source)
    return RolloutSpec(slos=_slo_infos(config), policy=policy, canary=canary, overrides=tuple(overrides))


def _when(v: Any) -> float | None:
    """Epoch seconds of an RFC 3339 string, a YAML timestamp/date, or epoch seconds."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            return None
        return v.timestamp()
    if isinstance(v, _dt.date):
        return _dt.datetime(v.year, v.month, v.day, tzinfo=_dt.UTC).timestamp()
    if isinstance(v, str):
        return parse_rfc3339(v.strip())
    return None


# -- state -----------------------------------------------------------------------------------


@dataclass
class BudgetState:
    """The latest budget event of one (model, version, SLO, segment)."""

    slo: str
    dimension: str
    model: str
    version: str | None
    segment: dict[str, str]
    ts: float
    sli: float | None
    objective: float | None
    target: float | None
    window_s: int | None
    good: float
    total: float
    remaining: float | None
    burn_rates: dict[str, float]
    events: dict[str, float]
    low_traffic: bool = False
    histogram: dict[str, list[float]] | None = None

    @property
    def variant(self) -> str | None:
        v = self.segment.get("variant") if len(self.segment) == 1 else None
        return v if v in VARIANTS else None

    def counts(self, lookback: str | None, error_budget: float | None) -> tuple[Counts, str | None]:
        """(bad, total) over ``lookback`` when the event has that burn window, else the SLO window.

        Over a burn window w: total = events[w], bad = burn_rate[w] x (1 - target) x total.
        """
        if lookback and error_budget and lookback in self.burn_rates and lookback in self.events:
            n = float(self.events[lookback])
            return Counts(bad=self.burn_rates[lookback] * error_budget * n, total=n), lookback
        return Counts(bad=max(0.0, self.total - self.good), total=self.total), None

    def as_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "dimension": self.dimension,
            "model": self.model,
            "version": self.version,
            "segment": self.segment,
            "ts": self.ts,
            "sli": self.sli,
            "objective": self.objective,
            "target": self.target,
            "window_s": self.window_s,
            "good": self.good,
            "total": self.total,
            "remaining": self.remaining,
            "burn_rates": self.burn_rates,
            "events": self.events,
            "low_traffic": self.low_traffic,
            "histogram": self.histogram,
        }


@dataclass
class AlertState:
    """A firing alert (resolved ones are forgotten)."""

    id: str
    model: str
    version: str | None
    slo: str | None
    dimension: str
    severity: str
    rule: str
    segment: dict[str, str]
    started_at: float
    ts: float
    summary: str
    incident_id: str | None = None  # sloguard/core/notify/incidents.py: the incident its episode belongs to

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Reason:
    """One finding: a stable ``code`` (for change detection), its outcome and a sentence."""

    code: str
    outcome: str  # hold | rollback
    message: str
    dimension: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "outcome": self.outcome, "message": self.message, "dimension": self.dimension}


@dataclass(frozen=True)
class Decision:
    """What to do with one model version, why, and what it was based on."""

    model: str
    version: str
    decision: str
    reasons: tuple[Reason, ...]
    budgets: dict[str, Any]
    overrides: tuple[dict[str, Any], ...]
    canary: tuple[Comparison, ...]
    ts: float
    stable_version: str | None = None

    @property
    def result(self) -> int:
        return RESULT[self.decision]

    @property
    def allowed(self) -> bool:
        return self.decision == PROMOTE

    @property
    def fingerprint(self) -> tuple:
        """Changes when the decision, its reason codes or the overrides behind it change (not when
        only numbers move)."""
        return (
            self.decision,
            tuple(sorted(r.code for r in self.reasons)),
            tuple(sorted(o["index"] for o in self.overrides)),
        )

    def message(self) -> messages.Decision:
        """The ``rollout.decisions`` message (`sloguard.core.messages.outputs.Decision`,
        schemas/rollout_decision.schema.json)."""
        return messages.Decision(
            model=self.model,
            version=self.version,
            decision=self.decision,  # type: ignore[arg-type]
            result=self.result,  # type: ignore[arg-type]
            allow=self.allowed,
            reasons=[r.message for r in self.reasons],
            checks=[messages.Check(**r.as_dict()) for r in self.reasons],
            budgets=self.budgets,
            overrides=list(self.overrides),
            canary=[c.as_dict() for c in self.canary],
            stable_version=self.stable_version,
            ts=to_rfc3339(self.ts),
        )

    def to_message(self) -> dict[str, Any]:
        """`message()` as JSON-ready builtins."""
        return msgspec.to_builtins(self.message())


def _segment_key(segment: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(segment.items()))


def _ts(v: Any, name: str) -> float:
    if isinstance(v, bool):
        raise InvalidEvent(f"{name}: must be an RFC 3339 time or epoch seconds, got {v!r}")
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    if isinstance(v, str):
        t = parse_rfc3339(v)
        if t is not None:
            return t
    raise InvalidEvent(f"{name}: must be an RFC 3339 time or epoch seconds, got {v!r}")


def _str(d: Mapping[str, Any], key: str, *, null: bool = False) -> str | None:
    v = d.get(key)
    if v is None and null and key in d:
        return None
    if not isinstance(v, str) or not v:
        raise InvalidEvent(f"{key}: must be a non-empty string{' or null' if null else ''}, got {v!r}")
    return v


def _opt_num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InvalidEvent(f"{key}: must be a finite number or null, got {v!r}")
    return float(v)


def _num_map(d: Mapping[str, Any], key: str) -> dict[str, float]:
    v = d.get(key) or {}
    if not isinstance(v, dict):
        raise InvalidEvent(f"{key}: must be an object of window -> number")
    out = {}
    for k, x in v.items():
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise InvalidEvent(f"{key}.{k}: must be a finite number, got {x!r}")
        out[str(k)] = float(x)
    return out


def _segment(d: Mapping[str, Any]) -> dict[str, str]:
    seg = d.get("segment", {})
    if not isinstance(seg, dict) or not all(isinstance(v, str) for v in seg.values()):
        raise InvalidEvent(f"segment: must be an object of string attributes, got {seg!r}")
    return dict(seg)


def _histogram(v: Any) -> dict[str, list[float]] | None:
    if v is None:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("edges"), list) or not isinstance(v.get("counts"), list):
        raise InvalidEvent("histogram: must be {edges: [...], counts: [...]}")
    edges, counts = v["edges"], v["counts"]
    ok = all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in edges + counts)
    if not ok or len(edges) not in (len(counts), len(counts) + 1) or any(x < 0 for x in counts):
        raise InvalidEvent("histogram: edges and counts must be finite numbers, counts >= 0, one edge per bin")
    return {"edges": [float(x) for x in edges], "counts": [float(x) for x in counts]}


class RolloutState:
    """The latest budget state per model, version, SLO and segment, and the firing alerts.

    `apply` folds one event; `decide` judges one model version at a given time; `snapshot` and
    `from_snapshot` round-trip the state through plain JSON-able data.
    """

    def __init__(self, spec: RolloutSpec) -> None:
        self.spec = spec
        # model -> (version, slo, segment key) -> state
        self.budgets: dict[str, dict[tuple[str | None, str, str], BudgetState]] = {}
        self.alerts: dict[str, AlertState] = {}
        self.resolved: dict[str, tuple[float, str, str | None]] = {}  # id -> (ts, model, version)
        self.seen: dict[tuple[str, str], float] = {}  # (model, version) -> latest event ts
        self.causes: dict[str, dict[str, Any]] = {}  # open incident id -> its cause (slo.incidents)

    # -- folding --

    def apply(self, event: Mapping[str, Any]) -> str:
        """Fold a ``slo.budget`` or ``slo.alerts`` event; returns its model.

        Raises `InvalidEvent` (naming the field) for anything that is not one of them.
        """
        if not isinstance(event, Mapping):
            raise InvalidEvent(f"not a JSON object: {type(event).__name__}")
        kind = event.get("type")
        if kind == "budget":
            return self._apply_budget(event)
        if kind == "alert":
            return self._apply_alert(event)
        if kind == "incident":
            return self._apply_incident(event)
        raise InvalidEvent(f"type: must be budget, alert or incident, got {kind!r}")

    def _apply_incident(self, e: Mapping[str, Any]) -> str:
        """An incident message: keep the cause of open incidents, to say what burned first."""
        ident, model = _str(e, "id"), _str(e, "model")
        assert ident is not None and model is not None
        cause = e.get("cause")
        if e.get("state") == "resolved":
            self.causes.pop(ident, None)
        elif isinstance(cause, Mapping) and cause.get("summary"):
            self.causes[ident] = {"model": model, "summary": str(cause["summary"]),
                                  "lead_s": float(cause.get("lead_s") or 0.0), "slo": cause.get("slo")}
        return model

    def cause_of(self, alert: AlertState) -> str | None:
        """What burned first in the alert's incident, when it was another SLO (None otherwise)."""
        cause = self.causes.get(alert.incident_id or "")
        return cause["summary"] if cause and cause["lead_s"] > 0 else None

    def _apply_budget(self, e: Mapping[str, Any]) -> str:
        model, slo = _str(e, "model"), _str(e, "slo")
        version = _str(e, "version", null=True)
        dimension = _str(e, "dimension")
        assert model is not None and slo is not None and dimension is not None
        segment = _segment(e)
        ts = _ts(e.get("ts"), "ts")
        good, total = _opt_num(e, "good"), _opt_num(e, "total")
        if good is None or total is None or good < 0 or total < 0:
            raise InvalidEvent(f"good/total: must be numbers >= 0, got {e.get('good')!r}/{e.get('total')!r}")
        window = e.get("window")
        try:
            window_s = parse_duration(window) if window is not None else None
        except ValueError as err:
            raise InvalidEvent(f"window: {err}") from None
        skey = _segment_key(segment)
        is_variant = len(segment) == 1 and "variant" in segment
        if segment and not is_variant and self.spec.policy.segments != "worst":
            self._touch(model, version, ts)
            return model  # only whole-model and variant segments matter to this policy
        state = BudgetState(
            slo=slo,
            dimension=dimension,
            model=model,
            version=version,
            segment=segment,
            ts=ts,
            sli=_opt_num(e, "sli"),
            objective=_opt_num(e, "objective"),
            target=_opt_num(e, "target"),
            window_s=window_s,
            good=good,
            total=total,
            remaining=_opt_num(e, "budget_remaining"),
            burn_rates=_num_map(e, "burn_rates"),
            events=_num_map(e, "events"),
            low_traffic=bool(e.get("low_traffic")),
            histogram=_histogram(e.get("histogram")),
        )
        book = self.budgets.setdefault(model, {})
        key = (version, slo, skey)
        old = book.get(key)
        if old is None or old.ts <= ts:
            book[key] = state
        self._touch(model, version, ts)
        return model

    def _apply_alert(self, e: Mapping[str, Any]) -> str:
        ident, model = _str(e, "id"), _str(e, "model")
        assert ident is not None and model is not None
        version = _str(e, "version", null=True)
        state = e.get("state")
        if state not in ("firing", "resolved"):
            raise InvalidEvent(f"state: must be firing or resolved, got {state!r}")
        severity = e.get("severity")
        if severity not in ("page", "ticket"):
            raise InvalidEvent(f"severity: must be page or ticket, got {severity!r}")
        dimension = _str(e, "dimension")
        ts = _ts(e.get("ts"), "ts")
        old = self.alerts.get(ident)
        gone = self.resolved.get(ident)
        if (old is not None and old.ts > ts) or (gone is not None and gone[0] > ts):
            return model  # an older transition arriving late
        if state == "resolved":
            self.alerts.pop(ident, None)
            self.resolved[ident] = (ts, model, version)
        else:
            self.resolved.pop(ident, None)
            slo = e.get("slo")
            self.alerts[ident] = AlertState(
                id=ident,
                model=model,
                version=version,
                slo=slo if isinstance(slo, str) else None,
                dimension=dimension or "infrastructure",
                severity=severity,
                rule=str(e.get("rule") or ""),
                segment=_segment(e),
                started_at=_ts(e.get("started_at", e.get("ts")), "started_at"),
                ts=ts,
                summary=str(e.get("summary") or ""),
                incident_id=e.get("incident_id") if isinstance(e.get("incident_id"), str) else None,
            )
        self._touch(model, version, ts)
        return model

    def _touch(self, model: str, version: str | None, ts: float) -> None:
        if version is not None:
            k = (model, version)
            if ts > self.seen.get(k, -math.inf):
                self.seen[k] = ts

    # -- queries --

    def versions(self, model: str | None = None) -> list[tuple[str, str]]:
        """(model, version) pairs seen, most recent first."""
        pairs = [k for k in self.seen if model is None or k[0] == model]
        return sorted(pairs, key=lambda k: -self.seen[k])

    def candidates(self, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """The (model, version) pairs worth deciding on: versions serving as canary (every version
        seen when canary analysis is off), plus the ``extra`` pairs that have been seen."""
        if self.spec.canary.enabled:
            pairs = {
                (m, v)
                for m, book in self.budgets.items()
                for (v, _slo, skey) in book
                if skey == "variant=canary" and v is not None
            }
        else:
            pairs = set(self.seen)
        pairs |= {p for p in extra if p in self.seen}
        return sorted(pairs)

    def latest_ts(self) -> float | None:
        """Event time of the newest event folded (an event-time clock for replays)."""
        return max(self.seen.values(), default=None)

    def stable_version(self, model: str, candidate: str | None = None) -> str | None:
        """The version most recently seen serving ``variant=stable`` (not the candidate)."""
        best, best_ts = None, -math.inf
        for (version, _slo, skey), s in self.budgets.get(model, {}).items():
            if skey == "variant=stable" and version is not None and version != candidate and s.ts > best_ts:
                best, best_ts = version, s.ts
        return best

    def serving_stable(self, model: str) -> str | None:
        """The version whose ``variant=stable`` traffic was seen last: production, now."""
        return self.stable_version(model, None)

    def canary_version(self, model: str) -> str | None:
        """The version most recently seen serving ``variant=canary``."""
        best, best_ts = None, -math.inf
        for (version, _slo, skey), s in self.budgets.get(model, {}).items():
            if skey == "variant=canary" and version is not None and s.ts > best_ts:
                best, best_ts = version, s.ts
        return best

    def prune(self, now: float, keep_s: float) -> int:
        """Forget versions with no event for ``keep_s``; returns how many (model, version) went."""
        old = {k for k, t in self.seen.items() if t < now - keep_s}
        for model, version in old:
            book = self.budgets.get(model, {})
            for key in [k for k in book if k[0] == version]:
                del book[key]
            del self.seen[(model, version)]
        for ident in [i for i, a in self.alerts.items() if (a.model, a.version) in old]:
            del self.alerts[ident]
        for ident in [i for i, (t, m, v) in self.resolved.items() if (m, v) in old or t < now - keep_s]:
            del self.resolved[ident]
        return len(old)

    # -- snapshot --

    def snapshot(self) -> dict[str, Any]:
        """Plain data (JSON-able) holding the whole state; no side effects."""
        return {
            "v": 1,
            "budgets": [s.as_dict() for book in self.budgets.values() for s in book.values()],
            "alerts": [a.as_dict() for a in self.alerts.values()],
            "resolved": [[i, t, m, v] for i, (t, m, v) in self.resolved.items()],
            "seen": [[m, v, t] for (m, v), t in self.seen.items()],
            "causes": self.causes,
        }

    @classmethod
    def from_snapshot(cls, spec: RolloutSpec, snapshot: Mapping[str, Any]) -> RolloutState:
        state = cls(spec)
        for d in snapshot.get("budgets", []):
            s = BudgetState(**d)
            state.budgets.setdefault(s.model, {})[(s.version, s.slo, _segment_key(s.segment))] = s
        for d in snapshot.get("alerts", []):
            a = AlertState(**d)
            state.alerts[a.id] = a
        for i, t, m, v in snapshot.get("resolved", []):
            state.resolved[i] = (float(t), m, v)
        for m, v, t in snapshot.get("seen", []):
            state.seen[(m, v)] = float(t)
        state.causes = {k: dict(v) for k, v in (snapshot.get("causes") or {}).items()}
        return state

    # -- the decision --

    def decide(self, model: str, version: str, now: float) -> Decision:
        """Promote, hold or roll back ``version`` of ``model`` at time ``now`` (epoch seconds)."""
        return _Judge(self, model, version, now).run()


class _Judge:
    """One decision in the making: collects findings, applies overrides, picks the outcome."""

    def __init__(self, state: RolloutState, model: str, version: str, now: float) -> None:
        self.state, self.spec, self.policy = state, state.spec, state.spec.policy
        self.model, self.version, self.now = model, version, now
        self.book = state.budgets.get(model, {})
        self.overrides = [o for o in self.spec.overrides if o.matches(model, version) and o.active(now)]
        self.reasons: list[Reason] = []
        self.waived: dict[int, list[str]] = {o.index: [] for o in self.overrides}
        self.budgets: dict[str, Any] = {}
        self.stable = state.stable_version(model, version)

    def run(self) -> Decision:
        for o in self.overrides:
            if o.effect == "freeze":
                message = f"promotions frozen until {to_rfc3339(o.expires_s)} by override #{o.index}: {o.reason}"
                self.reasons.append(Reason(f"freeze:{o.index}", HOLD, message))
        comparisons: list[Comparison] = []
        if self.model not in self.spec.slos:
            self.hold(f"unknown-model:{self.model}", f"model {self.model!r} is not in the config: nothing to judge")
        else:
            self.check_budgets()
            self.check_stable_budgets()
            mark = len(self.reasons)
            comparisons = self.check_canary()  # first: a page the canary shares with stable only holds
            canary_reasons = self.reasons[mark:]
            del self.reasons[mark:]
            self.check_alerts({c.slo: c for c in comparisons if c.p_value is not None and c.p_value >= c.alpha})
            self.reasons += canary_reasons
        outcomes = {r.outcome for r in self.reasons}
        decision = ROLLBACK if ROLLBACK in outcomes else HOLD if HOLD in outcomes else PROMOTE
        if decision == ROLLBACK and self.version == self.state.serving_stable(self.model):
            decision = self.keep_stable()
        # the reasons that decided it first (a rollback's rollbacks, a hold's holds), in check order
        self.reasons.sort(key=lambda r: r.outcome != decision)
        affected = []
        for o in self.overrides:
            d = o.as_dict()
            if o.effect == "allow":
                d["waived"] = self.waived[o.index]
            affected.append(d)
        return Decision(
            model=self.model,
            version=self.version,
            decision=decision,
            reasons=tuple(self.reasons),
            budgets=self.budgets,
            overrides=tuple(affected),
            canary=tuple(comparisons),
            ts=self.now,
            stable_version=self.stable,
        )

    # -- helpers --

    def keep_stable(self) -> str:
        """Never a rollback of the version in production: what would roll it back holds instead."""
        self.reasons = [Reason(r.code, HOLD, f"{r.message} (not applied: {self.version} is the stable version)",
                               r.dimension) if r.outcome == ROLLBACK else r for r in self.reasons]
        self.reasons.insert(0, Reason(
            "stable-no-rollback", HOLD,
            f"{self.model} {self.version} is the stable version (it serves variant=stable): a rollback would "
            "leave nothing to roll back to, so the controller holds and leaves production to its owner"))
        return HOLD

    def hold(self, code: str, message: str, dimension: str | None = None, *, waivable: bool = False) -> None:
        if waivable and dimension is not None:
            for o in self.overrides:
                if o.effect == "allow" and o.covers(dimension):
                    self.waived[o.index].append(message)
                    return
        self.reasons.append(Reason(code, HOLD, message, dimension))

    def rollback(self, code: str, message: str, dimension: str | None = None) -> None:
        self.reasons.append(Reason(code, ROLLBACK, message, dimension))

    def floor(self, slo: str, dimension: str) -> float | None:
        for o in self.overrides:
            if o.effect == "adjust" and o.covers(dimension):
                if slo in o.min_budget_remaining:
                    return o.min_budget_remaining[slo]
                if dimension in o.min_budget_remaining:
                    return o.min_budget_remaining[dimension]
        return self.policy.floor(slo, dimension)

    def stale(self, s: BudgetState) -> bool:
        return self.policy.max_staleness_s > 0 and s.ts < self.now - self.policy.max_staleness_s

    def whole(self, version: str | None, slo: str) -> BudgetState | None:
        """The budget state the policy reads for an SLO: the whole-model segment, or with
        ``segments: worst`` the non-variant segment with the least budget left."""
        if self.policy.segments == "whole":
            return self.latest(version, slo, "")
        skeys = {  # a {"version": ...} segment is one version's own: only the candidate's counts
            k
            for (_v, n, k), s in self.book.items()
            if n == slo and s.variant is None and s.segment.get("version", version) == version
        }
        found = [s for k in skeys if (s := self.latest(version, slo, k)) is not None and not self.stale(s)]
        if not found:
            return self.latest(version, slo, "")
        return min(found, key=lambda s: math.inf if s.remaining is None else s.remaining)

    def latest(self, version: str | None, slo: str, skey: str) -> BudgetState | None:
        """The newest state of one non-variant segment of an SLO, for ``version``.

        The flow keys the whole model and attribute segments (region, ...) by model, not by
        version: each budget event carries the version of its key's newest event, so while canary
        and stable serve side by side the model's budget is labelled with either of them. For a
        version that has been seen, the freshest state of the segment under any label is the
        model's current budget (its own label wins a tie); a version never seen has none.
        """
        exact = self.book.get((version, slo, skey))
        if version is None or (self.model, version) not in self.state.seen:
            return exact
        best = exact
        for (_v, n, k), s in self.book.items():
            if n == slo and k == skey and (best is None or s.ts > best.ts):
                best = s
        return best

    # -- checks --

    def check_budgets(self) -> None:
        """Every configured SLO needs fresh data; budgets above their floors; none exhausted."""
        names = [s.name for s in self.spec.slos.get(self.model, ())]
        extra = sorted({n for (v, n, _), _s in self.book.items() if v in (self.version, None)} - set(names))
        for name in names + extra:
            info = self.spec.slo(self.model, name)
            s = self.whole(self.version, name) or self.whole(None, name)
            dimension = info.dimension if info else (s.dimension if s else "infrastructure")
            floor = self.floor(name, dimension)
            entry: dict[str, Any] = {"dimension": dimension, "min_budget_remaining": floor}
            self.budgets[name] = entry
            if s is None:
                entry.update(status="no-data", budget_remaining=None)
                self.hold(
                    f"no-data:{name}",
                    f"{name} ({dimension}) has no budget data for {self.model} {self.version}: "
                    "missing data is never a pass",
                    dimension,
                )
                continue
            segment = _segment_key(s.segment)
            entry.update(
                budget_remaining=s.remaining,
                sli=s.sli,
                objective=s.objective,
                window=format_duration(s.window_s) if s.window_s else None,
                ts=to_rfc3339(s.ts),
                version=s.version,
            )
            if segment:
                entry["segment"] = segment
            if s.low_traffic:
                entry["low_traffic"] = True
            where = f"{name} ({dimension}{', ' + segment if segment else ''})"
            if self.stale(s):
                entry["status"] = "stale"
                self.hold(
                    f"stale:{name}",
                    f"{where} last reported at {to_rfc3339(s.ts)}, more than "
                    f"{self.policy.max_staleness_s}s ago: stale data is never a pass",
                    dimension,
                )
            elif s.remaining is None:
                entry["status"] = "no-data"
                self.hold(f"no-data:{name}", f"{where} has no SLI value yet: missing data is never a pass", dimension)
            elif s.remaining <= 0 and self.policy.freeze_when_exhausted:
                entry["status"] = "exhausted"
                self.hold(
                    f"exhausted:{name}",
                    f"{where} has spent its error budget ({s.remaining:.0%} left): promotions are frozen "
                    "until it recovers",
                    dimension,
                    waivable=True,
                )
            elif floor is not None and s.remaining < floor:
                entry["status"] = "low"
                self.hold(
                    f"budget-low:{name}",
                    f"{where} has {s.remaining:.0%} of its error budget left, below the {floor:.0%} "
                    "required to roll out",
                    dimension,
                    waivable=True,
                )
            else:
                entry["status"] = "ok"

    def check_stable_budgets(self) -> None:
        """An exhausted budget of the version in production freezes promotions too."""
        if self.stable is None or not self.policy.freeze_when_exhausted:
            return
        for (v, name, skey), s in sorted(self.book.items(), key=lambda kv: kv[0][1]):
            if v != self.stable or skey != "" or self.stale(s) or s.remaining is None or s.remaining > 0:
                continue
            self.hold(
                f"stable-exhausted:{name}",
                f"{name} ({s.dimension}) of the stable version {self.stable} has spent its error budget "
                f"({s.remaining:.0%} left): promotions are frozen until it recovers",
                s.dimension,
                waivable=True,
            )

    def check_alerts(self, no_worse: Mapping[str, Comparison] | None = None) -> None:
        """Pages on the candidate: hard stops roll back, soft stops hold. Pages on stable hold.

        Where the flow keeps canary and stable apart (the SLO has ``{"variant": "canary"}`` budgets
        for the candidate; for a model-wide page without an SLO, any SLO has), only the canary's
        own segment speaks for it: a page on traffic both versions serve (the whole model, a
        region) carries the version of its newest event, not the version at fault, so it holds
        like a page on stable. The canary's own page rolls back
        unless production shares the incident: stable's ``{"variant": "stable"}`` segment pages on
        the same SLO, or the canary, with enough traffic, shows no significant difference from
        stable (``no_worse``: p >= alpha). A rollback would not end a shared incident: hold."""
        no_worse = no_worse or {}
        pages = [
            a
            for a in sorted(self.state.alerts.values(), key=lambda a: a.id)
            if a.model == self.model and a.severity == "page"
        ]
        stable_own = {a.slo for a in pages if a.segment == {"variant": "stable"} and a.version == self.stable}
        split_slos = {n for (v, n, k) in self.book if v == self.version and k == "variant=canary"}
        for a in pages:
            where = a.dimension + (f", {_segment_key(a.segment)}" if a.segment else "")
            what = f"{a.rule} page on {a.slo or 'the model'} ({where})"
            since = f"firing since {to_rfc3339(a.started_at)}"
            cause = self.state.cause_of(a)
            if cause:  # the incident's cause first: what burned before this page
                since += f" (burned first: {cause})"
            if a.version in (self.version, None):
                # model-wide pages (no SLO, e.g. no-data) cover both versions once any SLO is split
                split = a.slo in split_slos if a.slo is not None else bool(split_slos)
                own = a.segment == {"variant": "canary"}
                shared = self.stable is not None and (a.slo in stable_own or a.slo in no_worse)
                if a.dimension in self.policy.hard_stop and split and not own:
                    self.hold(
                        f"mixed-page:{a.id}",
                        f"{what} is {since} on traffic both versions serve (labelled with its newest event's "
                        "version); the canary's own traffic is judged apart: hold",
                        a.dimension,
                        waivable=True,
                    )
                elif a.dimension in self.policy.hard_stop and split and shared:
                    c = no_worse.get(a.slo or "")
                    why = (
                        f"the canary is no worse than stable {self.stable} on it (one-sided p = {c.p_value:.2g})"
                        if c is not None and c.p_value is not None
                        else f"stable {self.stable} pages on it too"
                    )
                    self.hold(
                        f"shared-page:{a.id}",
                        f"{what} is {since}, but {why}: production shares the incident and a rollback would "
                        "not end it: hold",
                        a.dimension,
                        waivable=True,
                    )
                elif a.dimension in self.policy.hard_stop:
                    self.rollback(
                        f"page:{a.id}",
                        f"{what} is {since}; {a.dimension} is a hard stop: roll back",
                        a.dimension,
                    )
                else:
                    self.hold(
                        f"page:{a.id}",
                        f"{what} is {since}; {a.dimension} is a soft stop: hold",
                        a.dimension,
                        waivable=True,
                    )
            elif a.version == self.stable:
                self.hold(
                    f"stable-page:{a.id}",
                    f"production is paging: {what} on the stable version {a.version} is {since}: hold",
                    a.dimension,
                    waivable=True,
                )

    def check_canary(self) -> list[Comparison]:
        """Canary vs stable on each canary SLO; no data, too little data or stale data hold."""
        spec = self.spec.canary
        if not spec.enabled:
            return []
        slos = self.spec.canary_slos(self.model)
        if not slos:
            self.hold(
                "canary-no-slos",
                f"canary analysis is on but {self.model} has no SLO to compare canary and stable on "
                "(set rollout.canary.slos)",
            )
            return []
        out = []
        for info in slos:
            canary = self.book.get((self.version, info.name, "variant=canary"))
            stable = self.book.get((self.stable, info.name, "variant=stable")) if self.stable else None
            missing = []
            if canary is None or self.stale(canary):
                missing.append(f"no {'fresh ' if canary else ''}canary traffic of {self.version}")
            if stable is None or self.stale(stable):
                missing.append(
                    f"no {'fresh ' if stable else ''}stable traffic" + (f" of {self.stable}" if self.stable else "")
                )
            if missing:
                self.hold(
                    f"canary-no-data:{info.name}",
                    f"{info.name}: {' and '.join(missing)} (budget events with segment "
                    '{"variant": "canary"|"stable"}): missing data is never a pass',
                    info.dimension,
                )
                continue
            assert canary is not None and stable is not None
            c = self.compare(info, canary, stable)
            out.append(c)
            if c.verdict == FAIL:
                self.rollback(f"canary-worse:{info.name}", c.message + ": roll back", info.dimension)
            elif c.verdict == INCONCLUSIVE:
                self.hold(f"canary-inconclusive:{info.name}", c.message, info.dimension)
            elif spec.blast_radius and c.blast_exceeded and c.blast is not None:
                b = c.blast
                days = (b.time_to_exhaustion_s or 0) / 86_400
                self.hold(
                    f"blast-radius:{info.name}",
                    f"{info.name}: at full traffic the canary's bad rate would burn the budget "
                    f"{b.burn_rate:.2g}x and spend the {b.remaining:.0%} left in {days:.3g} days, within the "
                    f"{(b.window_s or 0) / 86_400:g}-day SLO window: hold",
                    info.dimension,
                )
        return out

    def compare(self, info: SloInfo, canary: BudgetState, stable: BudgetState) -> Comparison:
        spec = self.spec.canary
        ch, sh = canary.histogram, stable.histogram
        if ch is not None and sh is not None and ch["edges"] == sh["edges"]:
            return compare_histograms(
                info.name,
                ch["edges"],
                ch["counts"],
                sh["counts"],
                alpha=spec.alpha,
                min_samples=spec.min_samples,
                min_effect=spec.min_effect,
                higher_is_worse=info.higher_is_worse,
                unit=info.unit,
            )
        target = canary.target if canary.target is not None else info.target
        eb = 1 - target if target is not None and target < 1 else None
        c_counts, used = canary.counts(spec.lookback, eb)
        s_counts, _ = stable.counts(used, eb)
        budget = None
        if spec.blast_radius and eb:
            prod = self.book.get((self.stable, info.name, "")) or stable
            if prod.remaining is not None:
                budget = BudgetContext(eb, prod.remaining, float(prod.window_s or info.window_s))
        return compare_ratio(
            info.name,
            c_counts,
            s_counts,
            alpha=spec.alpha,
            min_samples=spec.min_samples,
            min_effect=spec.min_effect,
            budget=budget,
            lookback=used or (_window_label(canary) if canary.window_s else None),
        )


def _window_label(s: BudgetState) -> str | None:
    return f"the {format_duration(s.window_s)} SLO window" if s.window_s else None


def replay_decisions(
    spec: RolloutSpec, events: Iterable[Mapping[str, Any]], *, errors: list[str] | None = None
) -> Iterator[Decision]:
    """Fold events in order and yield each decision that changes, judged in event time.

    At every new event-time tick each candidate (`RolloutState.candidates`) is decided with
    ``now`` = the tick. For backtests and the demo; the controller does the same on Kafka. Invalid events are
    skipped (their reasons appended to ``errors`` when given).
    """
    state = RolloutState(spec)
    last: dict[tuple[str, str], tuple] = {}
    tick: float | None = None

    def flush(now: float) -> Iterator[Decision]:
        for model, version in state.candidates():
            d = state.decide(model, version, now)
            if last.get((model, version)) != d.fingerprint:
                last[(model, version)] = d.fingerprint
                yield d

    for e in events:
        try:
            if not isinstance(e, Mapping) or e.get("type") not in ("budget", "alert", "incident"):
                state.apply(e)  # raises the reason
            ts = _ts(e.get("ts"), "ts")
            if tick is not None and ts > tick:
                yield from flush(tick)
            state.apply(e)
            tick = ts if tick is None else max(tick, ts)
        except InvalidEvent as err:
            if errors is not None:
                errors.append(str(err))
    if tick is not None:
        yield from flush(tick)
