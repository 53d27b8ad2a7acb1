"""Builders for the rollout tests: a config with several models, budget and alert events as dicts.

The events have every field the flow writes (the controller reads them as its Budget and Alert
types); `ts` is epoch seconds (the policy reads both); `as_sent` gives the RFC 3339 text the flow writes.
"""

from __future__ import annotations

from typing import Any

from sloguard.core.rollout.spec import RolloutSpec, parse_rollout
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.model import Config

NOW = 1_767_225_600.0 + 3 * 3600  # 2026-01-01T03:00:00Z
MODELS = ("fraud", "recsys", "ranker", "scorer")
#: slo name suffix -> (sli, objective, dimension)
SLOS = {
    "availability": ("availability", 0.999, "infrastructure"),
    "latency": ({"latency": {"threshold_ms": 100}}, 0.99, "infrastructure"),
    "freshness": ({"freshness": {"max_age": "1h"}}, 0.99, "data"),
}


def config_dict(models: tuple[str, ...] = MODELS, **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "evaluation_interval": "1m",
        "models": {m: {"segments": ["region", "variant"]} for m in models},
        "owners": {"infrastructure": {"route": "sre", "actions": ["roll back"]}},
        "slos": [
            {"name": f"{m}-{suffix}", "model": m, "dimension": dim, "sli": sli, "objective": obj, "window": "30d"}
            for m in models
            for suffix, (sli, obj, dim) in SLOS.items()
        ],
    }
    data.update(top)
    return data


def make_config(models: tuple[str, ...] = MODELS, **top: Any) -> Config:
    return parse_config(config_dict(models, **top))


def make_spec(rollout: dict[str, Any] | None = None, models: tuple[str, ...] = MODELS) -> RolloutSpec:
    return parse_rollout(rollout or {}, make_config(models))


def budget(
    model: str,
    version: str | None,
    slo: str,
    *,
    ts: float = NOW,
    remaining: float | None = 0.9,
    good: float = 100_000,
    total: float = 100_000,
    segment: dict[str, str] | None = None,
    target: float | None = None,
    dimension: str | None = None,
    burn_1h: float | None = None,
    events_1h: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A slo.budget event for ``{model}-{slo}`` (slo is the suffix: availability, latency...)."""
    _sli, objective, dim = SLOS[slo]
    target = objective if target is None else target
    burn = (total - good) / total / (1 - target) if total else 0.0
    e: dict[str, Any] = {
        "type": "budget",
        "slo": f"{model}-{slo}",
        "dimension": dimension or dim,
        "model": model,
        "version": version,
        "segment": segment or {},
        "ts": ts,
        "sli": good / total if total else None,
        "objective": objective,
        "target": target,
        "window": "30d",
        "budgeting": "occurrences",
        "good": float(good),
        "total": float(total),
        "budget_remaining": remaining,
        # by default the whole window's traffic happened within the last 5 minutes
        "burn_rates": {"5m": burn, "1h": burn, "6h": burn},
        "events": {"5m": int(total), "1h": int(total), "6h": int(total)},
        "counted": {"good": float(good), "total": float(total)},
        "firing": [],
    }
    if burn_1h is not None:
        e["burn_rates"]["1h"] = burn_1h
    if events_1h is not None:
        e["events"]["1h"] = events_1h
    e.update(extra)
    return e


def variant(model: str, version: str, slo: str, which: str, *, bad: int, total: int, **kw: Any) -> dict[str, Any]:
    """A budget event of the ``{"variant": which}`` segment with ``bad`` of ``total`` events bad."""
    return budget(model, version, slo, segment={"variant": which}, good=total - bad, total=total, **kw)


def healthy(model: str, version: str, *, ts: float = NOW, remaining: float = 0.9) -> list[dict[str, Any]]:
    """Whole-model budget events of every SLO of ``model`` for ``version``."""
    return [budget(model, version, s, ts=ts, remaining=remaining) for s in SLOS]


def canary_pair(
    model: str,
    canary: str,
    stable: str,
    *,
    canary_bad: int = 2,
    canary_total: int = 10_000,
    stable_bad: int = 20,
    stable_total: int = 100_000,
    slos: tuple[str, ...] = ("availability", "latency", "freshness"),
    ts: float = NOW,
) -> list[dict[str, Any]]:
    """Variant events for canary and stable on each of ``slos``."""
    out = []
    for s in slos:
        out.append(variant(model, canary, s, "canary", bad=canary_bad, total=canary_total, ts=ts))
        out.append(variant(model, stable, s, "stable", bad=stable_bad, total=stable_total, ts=ts))
    return out


def alert(
    model: str,
    version: str | None,
    *,
    dimension: str = "fairness",
    severity: str = "page",
    state: str = "firing",
    rule: str = "fast-burn",
    slo: str | None = None,
    ts: float = NOW,
    ident: str | None = None,
    segment: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "type": "alert",
        "id": ident or f"{model}-{version}-{dimension}-{rule}",
        "state": state,
        "severity": severity,
        "rule": rule,
        "slo": slo or f"{model}-{dimension}-gap",
        "dimension": dimension,
        "model": model,
        "version": version,
        "segment": segment or {"merchant_type": "online"},
        "owner": "ml-fairness",
        "burn_rates": {"1h": 20.0, "5m": 30.0},
        "budget_remaining": 0.4,
        "started_at": ts,
        "ts": ts,
        "summary": f"{dimension} gap of {model} burns fast",
        "actions": ["roll back"],
        "runbook": None,
    }


def as_sent(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the flow puts it on Kafka: its times as RFC 3339 text."""
    from sloguard.core.spec.timeutil import to_rfc3339

    return {k: to_rfc3339(v) if k in ("ts", "started_at") and isinstance(v, int | float) else v
            for k, v in event.items()}
