"""What a rollout policy says: the ``rollout:`` section of the config, read with `parse_rollout`.

Floors, hard and soft stops, canary analysis and overrides; the shape is in `sloguard.core.rollout.policy`.

Pure: no I/O and no clock. `sloguard.core.rollout.policy` judges budget and alert state against it."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sloguard.core.spec.model import Config, ConfigError
from sloguard.core.spec.sli import CATALOGUE, DIMENSIONS, METRIC
from sloguard.core.spec.timeutil import parse_duration, parse_rfc3339, to_rfc3339

PROMOTE, HOLD, ROLLBACK = "promote", "hold", "rollback"


DECISIONS = (PROMOTE, HOLD, ROLLBACK)


#: Numeric form for deployment tools (Argo Rollouts' successCondition `result == 1`).
RESULT = {PROMOTE: 1, HOLD: 0, ROLLBACK: -1}


VARIANTS = ("canary", "stable")


EFFECTS = ("allow", "freeze", "adjust")


_HIGHER_WORSE = {"latency", "latency_quantile", "freshness", "freshness_quantile"}


class InvalidEvent(ValueError):
    """A budget or alert event the controller cannot use; the message names the field."""


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
