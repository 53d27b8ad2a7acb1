"""Small builders shared by the tests: configs as dicts, events as dicts, and a core-only runner."""

from __future__ import annotations

import pickle
from typing import Any

import msgspec
import numpy as np
import orjson

from sloguard.core.evaluate.evaluator import ModelEvaluator, Output, split_by_model
from sloguard.core.messages.batch import ParseSpec, parse_batch
from sloguard.core.messages.events import RawBatch
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.model import Config

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of every window


def make_config(slos: list[dict[str, Any]], **top: Any) -> Config:
    """A one-model (`m`) config with segments [region] and features [a, b] plus `slos`."""
    data: dict[str, Any] = {
        "evaluation_interval": "1m",
        "allowed_lateness": "0s",
        "alerting": {"min_events": 0},
        "models": {"m": {"segments": ["region"], "features": ["a", "b"], "no_data_after": "10m"}},
        "owners": {"infrastructure": {"route": "sre", "actions": ["roll back"]}},
        "slos": [{"model": "m", "window": "30d", **s} for s in slos],
    }
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return parse_config(data)


def event(
    i: int,
    ts: float,
    *,
    status: str = "ok",
    latency_ms: float = 10.0,
    region: str = "eu",
    lag_s: float = 60.0,
    features: dict | None = None,
    model: str = "m",
) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "model": model,
        "version": "v1",
        "ts": ts,
        "status": status,
        "latency_ms": latency_ms,
        "segment": {"region": region},
        "features": {"a": 1.0, "b": "x"} if features is None else features,
        "feature_ts": ts - lag_s,
    }


def steady(start: float, end: float, rate: float, **kw: Any) -> list[dict[str, Any]]:
    """Events every 1/rate seconds in [start, end), ids unique across calls by their timestamp."""
    n = round((end - start) * rate)
    return [event(int(start * 1000) + k, start + k / rate, **kw) for k in range(n)]


def spec_of(config: Config) -> ParseSpec:
    return ParseSpec(
        {m.name: m.segments for m in config.models.values()},
        {m.name: m.features for m in config.models.values()},
        max_age_s=config.longest_window_s + 60,
    )


def batches(events: list[dict[str, Any]], size: int = 500, kind: str = "inference") -> list[RawBatch]:
    raw = [orjson.dumps(e) for e in events]
    return [
        RawBatch(kind, f"ml.{kind}", 0, list(range(i, i + len(raw[i : i + size]))), raw[i : i + size])
        for i in range(0, len(raw), size)
    ]


def run(
    config: Config,
    events: list[dict[str, Any]],
    *,
    size: int = 500,
    finish: bool = True,
    evaluator: ModelEvaluator | None = None,
) -> tuple[list[Output], ModelEvaluator]:
    """Parse `events` in batches, feed model `m`'s evaluator; returns all outputs (parser's too)."""
    ev = evaluator or ModelEvaluator(config, "m")
    out: list[Output] = []
    spec = spec_of(config)
    for rb in batches(sorted(events, key=lambda e: e["ts"]), size):
        out += feed(ev, spec, rb)
    if finish:
        out += ev.finish()
    return out, ev


def feed(ev: ModelEvaluator, spec: ParseSpec, rb: RawBatch) -> list[Output]:
    """Parse one raw batch and process model `m`'s part: the parser's dead letters, then the outputs."""
    parsed = parse_batch(rb, spec)
    out: list[Output] = [("dead_letter", d) for d in parsed.dead_letters]
    for _, mb in split_by_model(parsed, ["m"]):
        out += ev.process(mb)
    return out


def of(outputs: list[Output], kind: str, **match: Any) -> list[Any]:
    """Outputs of `kind` whose fields equal `match`: budgets and alerts are their Structs, dead
    letters and the label store dicts."""
    return [m for k, m in outputs if k == kind and all(field_of(m, f) == v for f, v in match.items())]


def field_of(message: Any, name: str) -> Any:
    """A field of an output message, Struct or dict (None when it has none)."""
    if isinstance(message, dict):
        return message.get(name)
    value = getattr(message, name, None)
    return None if value is msgspec.UNSET else value


def roundtrip(obj: Any) -> Any:
    return pickle.loads(pickle.dumps(obj))


def epoch(text: str) -> float:
    from sloguard.core.spec.timeutil import parse_rfc3339

    value = parse_rfc3339(text)
    assert value is not None
    return value


__all__ = ["T0", "alert_message", "batches", "budget_message", "epoch", "event", "field_of", "make_alert",
           "make_budget", "make_config", "np", "of", "roundtrip", "run", "steady"]


def example_yaml(name: str) -> dict[str, Any]:
    """An example config (examples/<name>.yaml) as a dict whose baseline paths are absolute, so it
    can be written anywhere."""
    from pathlib import Path

    import yaml

    examples = Path(__file__).resolve().parent.parent / "examples"
    data = yaml.safe_load((examples / f"{name}.yaml").read_text())
    for model in data["models"].values():
        if model.get("baseline"):
            model["baseline"] = str((examples / model["baseline"]).resolve())
    return data


def budget_message(**fields: Any) -> dict[str, Any]:
    """A ``slo.budget`` message with every required field, built as a `Budget` (so a renamed field
    fails where it is built); `fields` replace the defaults."""
    return msgspec.to_builtins(make_budget(**fields))


def make_budget(**fields: Any) -> Any:
    """A `Budget` with every required field, as the flow hands it on; `fields` replace the defaults."""
    from sloguard.core.messages.outputs import Budget, Counted

    message: dict[str, Any] = {
        "slo": "avail", "dimension": "infrastructure", "model": "m", "version": None, "segment": {},
        "ts": "2026-01-01T00:01:00.000Z", "sli": 0.99, "objective": 0.999, "target": 0.999, "window": "30d",
        "budgeting": "occurrences", "good": 0.0, "total": 0.0, "budget_remaining": 0.5,
        "burn_rates": {"1h": 2.0, "5m": 3.0}, "events": {"1h": 0, "5m": 0}, "counted": Counted(good=0.0, total=0.0),
        "firing": [],
    }  # fmt: skip
    return Budget(**{**message, **fields})


def alert_message(**fields: Any) -> dict[str, Any]:
    """A ``slo.alerts`` message with every required field, built as an `Alert`; `fields` replace the defaults."""
    return msgspec.to_builtins(make_alert(**fields))


def make_alert(**fields: Any) -> Any:
    """An `Alert` with every required field, as the flow hands it on; `fields` replace the defaults."""
    from sloguard.core.messages.outputs import Alert

    message: dict[str, Any] = {
        "id": "a1", "state": "firing", "severity": "page", "rule": "fast-burn", "slo": "avail",
        "dimension": "infrastructure", "model": "m", "version": None, "segment": {}, "owner": None,
        "burn_rates": {"1h": 20.0, "5m": 30.0}, "budget_remaining": 0.5, "started_at": "2026-01-01T00:01:00.000Z",
        "ts": "2026-01-01T00:01:00.000Z", "summary": "avail (m) burns its 30d error budget", "actions": [],
        "runbook": None,
    }  # fmt: skip
    return Alert(**{**message, **fields})
