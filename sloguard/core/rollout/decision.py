"""What the rollout policy reads and writes.

The budget and alert state it folds, read strictly from ``slo.budget`` and ``slo.alerts`` events
(`InvalidEvent` names the bad field), and the `Decision` with its reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from sloguard.core.messages import outputs as messages
from sloguard.core.rollout.spec import PROMOTE, RESULT, VARIANTS, InvalidEvent
from sloguard.core.spec.timeutil import parse_rfc3339, to_rfc3339
from sloguard.core.stats.canary import (
    Comparison,
    Counts,
)


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


def segment_key(segment: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(segment.items()))


def read_ts(v: Any, name: str) -> float:
    if isinstance(v, bool):
        raise InvalidEvent(f"{name}: must be an RFC 3339 time or epoch seconds, got {v!r}")
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    if isinstance(v, str):
        t = parse_rfc3339(v)
        if t is not None:
            return t
    raise InvalidEvent(f"{name}: must be an RFC 3339 time or epoch seconds, got {v!r}")


def read_str(d: Mapping[str, Any], key: str, *, null: bool = False) -> str | None:
    v = d.get(key)
    if v is None and null and key in d:
        return None
    if not isinstance(v, str) or not v:
        raise InvalidEvent(f"{key}: must be a non-empty string{' or null' if null else ''}, got {v!r}")
    return v


def read_opt_num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InvalidEvent(f"{key}: must be a finite number or null, got {v!r}")
    return float(v)


def read_num_map(d: Mapping[str, Any], key: str) -> dict[str, float]:
    v = d.get(key) or {}
    if not isinstance(v, dict):
        raise InvalidEvent(f"{key}: must be an object of window -> number")
    out = {}
    for k, x in v.items():
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise InvalidEvent(f"{key}.{k}: must be a finite number, got {x!r}")
        out[str(k)] = float(x)
    return out


def read_segment(d: Mapping[str, Any]) -> dict[str, str]:
    seg = d.get("segment", {})
    if not isinstance(seg, dict) or not all(isinstance(v, str) for v in seg.values()):
        raise InvalidEvent(f"segment: must be an object of string attributes, got {seg!r}")
    return dict(seg)


def read_histogram(v: Any) -> dict[str, list[float]] | None:
    if v is None:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("edges"), list) or not isinstance(v.get("counts"), list):
        raise InvalidEvent("histogram: must be {edges: [...], counts: [...]}")
    edges, counts = v["edges"], v["counts"]
    ok = all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in edges + counts)
    if not ok or len(edges) not in (len(counts), len(counts) + 1) or any(x < 0 for x in counts):
        raise InvalidEvent("histogram: edges and counts must be finite numbers, counts >= 0, one edge per bin")
    return {"edges": [float(x) for x in edges], "counts": [float(x) for x in counts]}
