"""The YAML config: models, SLOs, alert rules, owners and topics, validated for meaning.

`load_config(path)` returns a frozen `Config` or raises `ConfigError` listing every problem with
its path (`slos[2].sli.latency.threshold_ms: must be > 0`). Validation rejects what can never
work, not only what is mistyped: an alert rule whose burn rate x (1 - objective) > 1 can never
fire, and a short window must be shorter than its long one. The shape is in DESIGN.md and
README.md; `examples/` has a fraud and a recommender config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sloguard.core.notify.incident_policy import parse_incident_policy
from sloguard.core.spec.adjustments import parse_adjustments
from sloguard.core.spec.alerting_section import DEFAULT_HOLD_TICKS, parse_hold, parse_rules, parse_severity
from sloguard.core.spec.check import Checker
from sloguard.core.spec.model import DEFAULT_TOPICS, Config, ConfigError, Owner
from sloguard.core.spec.models_section import parse_model
from sloguard.core.spec.slos_section import parse_slo
from sloguard.core.spec.yamlfile import key_lines, load_yaml


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
    c = Checker(baseline_pending)
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
    scale = c.mapping(top.get("scale"), "scale", {"shards", "judge_parts"})
    shards = int(c.number(scale.get("shards"), "scale.shards", 1, 4096, default=8) or 8)
    parts = c.number(scale.get("judge_parts"), "scale.judge_parts", 1, 64, default=None)
    judge_parts = None if parts is None else int(parts)

    alerting = c.mapping(
        top.get("alerting"), "alerting",
        {"policy", "rules", "slo_window", "min_events", "budget_exhausted", "no_data", "resolve_hold"}
    )
    default_rules, policy_window = parse_rules(c, alerting, "alerting", base_dir, None, None)
    min_events = int(c.number(alerting.get("min_events"), "alerting.min_events", 0, 1e9, default=100) or 0)
    exhausted = parse_severity(c, alerting.get("budget_exhausted"), "alerting.budget_exhausted", "ticket")
    no_data = parse_severity(c, alerting.get("no_data"), "alerting.no_data", "page")
    resolve_hold = parse_hold(c, alerting.get("resolve_hold"), "alerting.resolve_hold", DEFAULT_HOLD_TICKS * interval)

    models = {}
    raw_models = c.mapping(top.get("models"), "models")
    if not raw_models:
        c.fail("models", "at least one model is required")
    for name, m in raw_models.items():
        models[name] = parse_model(c, name, m, base_dir, baseline_pending)

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
        slo = parse_slo(c, i, s, models, default_rules, policy_window, min_events, interval, base_dir, resolve_hold)
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
        judge_parts=judge_parts,
        incidents=incidents,
        source=source,
        baseline_pending=baseline_pending,
        resolve_hold_s=resolve_hold,
        adjustments=adjustments,
    )


