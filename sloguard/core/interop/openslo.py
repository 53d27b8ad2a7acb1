"""OpenSLO v1 to and from sloguard's config: a pure mapping (objects in, objects out; no files).

Spec: https://github.com/OpenSLO/OpenSLO (v1; JSON schema vendored in tests/data/openslo/).

sloguard -> OpenSLO (`export_openslo(config)`):

| sloguard | OpenSLO |
|---|---|
| model | `Service` (its settings, and the config's global ones, in `sloguard.io/*` annotations) |
| owner (per dimension) | `AlertNotificationTarget` named after its key, `target` = the route |
| SLO | `SLO`: `service` = model, `timeWindow` (rolling, or calendar `1M`/`1w`), `budgetingMethod`, one objective |
| ratio SLI | inline `ratioMetric` over the Prometheus counters `sloguard_slo_good_total` / `_events_total` |
| metric SLI (timeslices) | inline `thresholdMetric` (`type: sloguard`), objective `op`/`value` = the per-slice bound |
| alert rule | one `AlertPolicy` with one inline burn-rate `AlertCondition` (v1 allows one per policy) |

Every SLI carries its kind and parameters in the annotation `sloguard.io/sli` (quality, drift and
fairness SLIs have no OpenSLO equivalent), and what OpenSLO has no field for (a rule's short
window, `min_samples`, `min_events`, a relative objective, an explicit owner) travels in
annotations too, so export then import gives back an equal `Config` (except Kafka connection
settings, which are the deployment's and may hold secrets: only topic names are exported).

OpenSLO -> sloguard (`import_openslo(objects)`) returns a config mapping for `parse_config`. It
reads the annotations when present and otherwise the spec fields: an SLI is named by the
annotation or by a metric source `{type: sloguard, spec: {sli: availability}}`; sloguard computes
SLIs from its own events, so a query for another system is an error naming its path. Calendar
windows other than a month or week from local midnight, `RatioTimeslices`, several objectives and
burn-rate conditions other than "at least" are errors too; each problem is one `path: message` line.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from sloguard.core.interop.openslo_time import OpenSloError, export_window, import_window, parse_shorthand, shorthand
from sloguard.core.spec.calendar import NOMINAL_S
from sloguard.core.spec.model import Config, Slo
from sloguard.core.spec.sli import CATALOGUE, METRIC, RATIO
from sloguard.core.spec.timeutil import format_duration

API = "openslo/v1"
A = "sloguard.io/"  # annotation prefix
KINDS = ("SLO", "SLI", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "Service", "DataSource")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.|/\\-]*[a-z0-9]*$")
FALLBACK_TARGET = "sloguard-alerts-topic"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively, for JSON and YAML."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_name(name: str, path: str) -> None:
    if not _NAME.match(name) or len(name) > 255:
        raise OpenSloError([f"{path}: {name!r} is not an OpenSLO name (lower-case letters, digits, '-', '.')"])


def _obj(kind: str, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None,
         path: str = "") -> dict[str, Any]:
    _check_name(name, path or kind)
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}


# -- export ---------------------------------------------------------------------------------------


def export_openslo(config: Config, base_dir: str | None = None) -> list[dict[str, Any]]:
    """OpenSLO v1 objects for a config; baseline paths are written relative to `base_dir`."""
    settings = _json(_global_settings(config))
    objects = []
    for m in config.models.values():
        model: dict[str, Any] = {
            "segments": list(m.segments), "features": list(m.features),
            "no_data_after": format_duration(m.no_data_after_s), "label_delay": format_duration(m.label_delay_s),
            "fairness": {"min_support": m.min_support, **({"attribute": m.fairness_attribute}
                                                          if m.fairness_attribute else {})},
            "max_pending_labels": m.max_pending_labels,
        }
        if m.baseline is not None:
            model["baseline"] = os.path.relpath(m.baseline, base_dir) if base_dir else str(m.baseline)
        if m.health_weights:
            model["health"] = {"weights": m.health_weights}
        objects.append(_obj("Service", m.name, {"description": f"ML model {m.name}, watched by sloguard"},
                            {f"{A}model": _json(model), f"{A}config": settings}, f"models.{m.name}"))
    for key, o in config.owners.items():
        objects.append(_obj("AlertNotificationTarget", key, {"target": o.route},
                            {f"{A}owner": _json({"actions": list(o.actions), "runbook": o.runbook})},
                            f"owners.{key}"))
    if any(_target(config, s) is None for s in config.slos):
        objects.append(_obj("AlertNotificationTarget", FALLBACK_TARGET, {
            "target": f"kafka topic {config.topics['alerts']}",
            "description": "sloguard writes every alert to its alerts topic; no owner is configured"},
            {f"{A}fallback": "true"}))
    for i, slo in enumerate(config.slos):
        objects += _export_slo(config, slo, f"slos[{i}]")
    return objects


def _global_settings(config: Config) -> dict[str, Any]:
    return {
        "evaluation_interval": format_duration(config.evaluation_interval_s),
        "allowed_lateness": format_duration(config.allowed_lateness_s) if config.allowed_lateness_s else "0s",
        "limits": {"max_message_bytes": config.max_message_bytes,
                   "max_future_skew": format_duration(config.max_future_skew_s),
                   "dedupe_window": format_duration(config.dedupe_window_s)},
        "alerting": {"budget_exhausted": {"severity": config.exhausted_severity},
                     "no_data": {"severity": config.no_data_severity}},
        # topic names only: connection settings and secrets belong to the deployment, not to SLOs
        **({"kafka": {"topics": config.kafka["topics"]}} if config.kafka.get("topics") else {}),
    }


def _target(config: Config, slo: Slo) -> str | None:
    """The notification target of an SLO's alerts: its owner's key, if the owner is configured."""
    for key in (slo.owner, slo.dimension, "default"):
        if key and key in config.owners:
            return key
    return None


def _export_slo(config: Config, slo: Slo, path: str) -> list[dict[str, Any]]:
    _check_name(slo.name, f"{path}.name")
    sli = {slo.sli.kind: _plain(slo.sli.params)}
    step_s = slo.budgeting.slice_s if slo.budgeting.method == "timeslices" else config.evaluation_interval_s
    if slo.sli.family == RATIO:
        sel = f'slo="{slo.name}", model="{slo.model}", segment="all"'
        indicator = {"ratioMetric": {"counter": True, **{
            k: {"metricSource": {"type": "Prometheus", "spec": {"query": f"sloguard_slo_{m}_total{{{sel}}}"}}}
            for k, m in (("good", "good"), ("total", "events"))}}}
    else:
        indicator = {"thresholdMetric": {"metricSource": {"type": "sloguard", "spec": {"sli": slo.sli.kind}}}}
    objective: dict[str, Any] = {"displayName": slo.name, "target": slo.slo_target}
    if slo.budgeting.method == "timeslices":
        objective["timeSliceWindow"] = shorthand(slo.budgeting.slice_s, f"{path}.budgeting.timeslices")
        if slo.sli.family == METRIC:
            objective.update(op="lte" if slo.sli.spec.direction == "<=" else "gte", value=slo.objective,
                             timeSliceTarget=1)
        else:
            objective["timeSliceTarget"] = slo.objective
    annotations = {f"{A}dimension": slo.dimension, f"{A}min-events": str(slo.min_events),
                   f"{A}owner": slo.owner or ""}
    if slo.budgeting.method == "timeslices":
        annotations[f"{A}min-samples"] = str(slo.budgeting.min_samples)
    raw = slo.raw_objective
    if raw.value is None:
        annotations[f"{A}objective"] = _json({k: v for k, v in (("relative_to_baseline", raw.relative_to_baseline),
                                                                  ("max_degradation", raw.max_degradation))
                                               if v is not None})
    target = _target(config, slo) or FALLBACK_TARGET
    policies = []
    for rule in slo.rules:
        condition = {
            "kind": "AlertCondition",
            "metadata": {"name": rule.name, "annotations": {
                f"{A}short-window": shorthand(rule.short_window_s, f"{path}.alerting.rules.{rule.name}")}},
            "spec": {"severity": rule.severity, "condition": {
                "kind": "burnrate", "op": "gte", "threshold": rule.burn_rate,
                "lookbackWindow": shorthand(rule.long_window_s, f"{path}.alerting.rules.{rule.name}"),
                "alertAfter": f"{max(1, math.ceil(step_s / 60))}m",  # judged once per tick (or slice)
            }},
        }
        policies.append(_obj("AlertPolicy", f"{slo.name}-{rule.name}", {
            "description": f"{rule.severity} when {slo.name} burns >= {rule.burn_rate:g}x its budget over "
                           f"{rule.windows[0]} and {rule.windows[1]}",
            "alertWhenNoData": False, "alertWhenResolved": True, "alertWhenBreaching": True,
            "conditions": [condition], "notificationTargets": [{"targetRef": target}],
        }, path=f"{path}.alerting.rules.{rule.name}"))
    spec = {
        "service": slo.model,
        "indicator": {"metadata": {"name": f"{slo.name}-sli", "annotations": {f"{A}sli": _json(sli)}},
                      "spec": indicator},
        "timeWindow": [export_window(slo, path)],
        "budgetingMethod": "Timeslices" if slo.budgeting.method == "timeslices" else "Occurrences",
        "objectives": [objective],
        "alertPolicies": [p["metadata"]["name"] for p in policies],
    }
    if slo.description:
        spec["description"] = slo.description
    return [_obj("SLO", slo.name, spec, annotations, f"{path}.name"), *policies]


# -- import ---------------------------------------------------------------------------------------


class _Doc:
    """The objects of a file by kind and name, and the problems found so far."""

    def __init__(self, objects: list[Any]) -> None:
        self.problems: list[str] = []
        self.by_kind: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.where: dict[int, str] = {}
        for i, o in enumerate(objects):
            if not isinstance(o, dict):
                self.fail(f"[{i}]", "must be an OpenSLO object (a mapping)")
                continue
            kind, name = o.get("kind"), (o.get("metadata") or {}).get("name")
            self.where[id(o)] = f"[{i}] {kind} {name}"
            if o.get("apiVersion") != API:
                self.fail(f"[{i}].apiVersion", f"{o.get('apiVersion')!r} is not supported (only {API})")
            elif kind not in KINDS:
                self.fail(f"[{i}].kind", f"{kind!r} is not supported (supported: {', '.join(KINDS)})")
            elif not isinstance(name, str) or not isinstance(o.get("spec"), dict):
                self.fail(f"[{i}]", "needs metadata.name and a spec mapping")
            elif name in self.by_kind[kind]:
                self.fail(f"[{i}].metadata.name", f"a second {kind} named {name!r}")
            else:
                self.by_kind[kind][name] = o

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def at(self, obj: dict[str, Any], path: str) -> str:
        return f"{self.where.get(id(obj), obj.get('kind', ''))}: {path}"


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _loads(d: _Doc, obj: dict[str, Any], key: str) -> Any:
    text = _annotations(obj).get(A + key)
    if text is None:
        return None
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError as e:
        d.fail(d.at(obj, f"metadata.annotations.{A}{key}"), f"not JSON: {e}")
        return None


def import_openslo(objects: list[Any], source: str = "OpenSLO", base_dir: str | None = None,
                   out_dir: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """A sloguard config mapping (for `parse_config`) from OpenSLO v1 objects, and warnings.

    Baseline paths found relative to `base_dir` (the OpenSLO file's directory) are rewritten
    relative to `out_dir` (the config's). Raises `OpenSloError` listing every problem.
    """
    d = _Doc(objects)
    warnings: list[str] = []
    config: dict[str, Any] = {}
    models: dict[str, Any] = {}
    settings_from = None
    for name, svc in d.by_kind["Service"].items():
        model = _loads(d, svc, "model") or {}
        if isinstance(model.get("baseline"), str) and base_dir and out_dir:
            model["baseline"] = os.path.relpath(os.path.join(base_dir, model["baseline"]), out_dir)
        models[name] = model
        settings = _loads(d, svc, "config")
        if settings is not None:
            if settings_from is not None and settings != config:
                d.fail(d.at(svc, f"metadata.annotations.{A}config"), f"differs from that of Service {settings_from}")
            config, settings_from = settings, name
    owners = {}
    for name, t in d.by_kind["AlertNotificationTarget"].items():
        if _annotations(t).get(f"{A}fallback"):
            continue
        extra = _loads(d, t, "owner") or {}
        owners[name] = {"route": t["spec"].get("target"), **{k: v for k, v in extra.items() if v}}
    slos = []
    for name, obj in d.by_kind["SLO"].items():
        slo = _import_slo(d, obj, name, warnings)
        if slo is not None:
            slos.append(slo)
            models.setdefault(slo["model"], {})
    if not d.by_kind["SLO"] and not d.problems:
        d.fail("(file)", "no SLO object: nothing to import")
    if d.problems:
        raise OpenSloError(d.problems, source)
    config = {**config, "models": models, **({"owners": owners} if owners else {}), "slos": slos}
    return config, warnings


def _import_slo(d: _Doc, obj: dict[str, Any], name: str, warnings: list[str]) -> dict[str, Any] | None:
    spec, ann = obj["spec"], _annotations(obj)
    start = len(d.problems)
    indicator = spec.get("indicator")
    if indicator is None and spec.get("indicatorRef") is not None:
        indicator = d.by_kind["SLI"].get(spec["indicatorRef"])
        if indicator is None:
            d.fail(d.at(obj, "spec.indicatorRef"), f"no SLI named {spec['indicatorRef']!r} in the file")
            return None
        ipath = "spec.indicatorRef"
    else:
        ipath = "spec.indicator"
    sli = _import_sli(d, obj, indicator, ipath)
    kind = next(iter(sli)) if isinstance(sli, dict) else sli
    if not isinstance(spec.get("service"), str):
        d.fail(d.at(obj, "spec.service"), "required: the model (a Service name)")
        return None
    slo: dict[str, Any] = {"name": name, "model": spec["service"], "sli": sli}
    slo["dimension"] = ann.get(f"{A}dimension") or (CATALOGUE[kind].dimension if kind in CATALOGUE else None)
    if spec.get("description"):
        slo["description"] = spec["description"]
    window = import_window(d, obj, spec.get("timeWindow"))
    window_s = window if isinstance(window, int) or window is None else NOMINAL_S[window["calendar"]]
    if isinstance(window, dict):
        slo["window"] = window
    elif window_s is not None:
        slo["window"] = format_duration(window_s)
    objectives = spec.get("objectives") or []
    if len(objectives) != 1:
        d.fail(d.at(obj, "spec.objectives"), f"{len(objectives)} objectives: sloguard has exactly one per SLO "
               "(write one SLO per objective)")
        return None
    o = objectives[0]
    method = spec.get("budgetingMethod")
    metric = kind in CATALOGUE and CATALOGUE[kind].family == METRIC
    if method == "Occurrences":
        slo["objective"] = o.get("target")
    elif method == "Timeslices":
        try:
            slice_s = parse_shorthand(o.get("timeSliceWindow"))
        except ValueError as e:
            d.fail(d.at(obj, "spec.objectives[0].timeSliceWindow"), str(e))
            slice_s = None
        budgeting = {"timeslices": format_duration(slice_s) if slice_s else None, "target": o.get("target")}
        if ann.get(f"{A}min-samples"):
            budgeting["min_samples"] = int(ann[f"{A}min-samples"])
        slo["budgeting"] = budgeting
        if metric:
            slo["objective"] = o.get("value")
            want = "lte" if CATALOGUE[kind].direction == "<=" else "gte"
            if o.get("op") not in (None, want, want[:2]):
                d.fail(d.at(obj, "spec.objectives[0].op"), f"{o.get('op')}: a {kind} slice is good when its value "
                       f"{CATALOGUE[kind].direction} the objective, so op must be {want}")
        else:
            slo["objective"] = o.get("timeSliceTarget")
    else:
        d.fail(d.at(obj, "spec.budgetingMethod"), f"{method!r} is not supported (Occurrences or Timeslices)")
    relative = _loads(d, obj, "objective")
    if relative:
        slo["objective"] = relative
    if ann.get(f"{A}owner"):
        slo["owner"] = ann[f"{A}owner"]
    alerting = _import_rules(d, obj, spec.get("alertPolicies") or [], window_s, warnings, slo)
    if ann.get(f"{A}min-events"):
        alerting["min_events"] = int(ann[f"{A}min-events"])
    if alerting:
        slo["alerting"] = alerting
    return None if len(d.problems) > start else slo


def _import_sli(d: _Doc, slo: dict[str, Any], indicator: Any, ipath: str) -> Any:
    """The sloguard SLI of an indicator: its annotation, or a `type: sloguard` metric source."""
    if not isinstance(indicator, dict) or not isinstance(indicator.get("spec"), dict):
        d.fail(d.at(slo, ipath), "required: an SLI (indicator or indicatorRef)")
        return None
    annotated = _loads(d, indicator, "sli")
    if annotated is not None:
        return annotated
    spec = indicator["spec"]
    if "ratioMetric" in spec:
        ratio = spec["ratioMetric"] or {}
        for part in ("total", "good", "bad"):
            source = (ratio.get(part) or {}).get("metricSource") or {}
            if part in ratio and source.get("type") != "sloguard":
                d.fail(d.at(slo, f"{ipath}.spec.ratioMetric.{part}.metricSource.type"),
                       f"{source.get('type')!r} is not supported: sloguard computes its SLIs from its own inference "
                       "events; name the SLI with metricSource {type: sloguard, spec: {sli: availability}} "
                       f"or the annotation {A}sli")
                return None
        return (ratio["total"]["metricSource"].get("spec") or {}).get("sli")
    if "thresholdMetric" in spec:
        source = (spec["thresholdMetric"] or {}).get("metricSource") or {}
        if source.get("type") != "sloguard":
            d.fail(d.at(slo, f"{ipath}.spec.thresholdMetric"),
                   f"not supported for metric source {source.get('type')!r}: sloguard computes its SLIs from its own "
                   "events; use metricSource {type: sloguard, spec: {sli: latency_quantile}} or the annotation "
                   f"{A}sli")
            return None
        return (source.get("spec") or {}).get("sli")
    d.fail(d.at(slo, f"{ipath}.spec"), "needs ratioMetric or thresholdMetric")
    return None


def _import_rules(d: _Doc, slo: dict[str, Any], names: list[Any], window_s: int | None,
                  warnings: list[str], out: dict[str, Any]) -> dict[str, Any]:
    """Each alert policy's burn-rate condition as a sloguard rule, written for the SLO's own window."""
    rules = []
    targets = set()
    for i, name in enumerate(names):
        policy = d.by_kind["AlertPolicy"].get(name)
        if policy is None:
            d.fail(d.at(slo, f"spec.alertPolicies[{i}]"), f"no AlertPolicy named {name!r} in the file")
            continue
        targets |= {t.get("targetRef") for t in policy["spec"].get("notificationTargets") or [] if isinstance(t, dict)}
        for j, c in enumerate(policy["spec"].get("conditions") or []):
            path = f"spec.conditions[{j}]"
            if isinstance(c, dict) and "conditionRef" in c:
                c = d.by_kind["AlertCondition"].get(c["conditionRef"])
                if c is None:
                    d.fail(d.at(policy, f"{path}.conditionRef"), "no AlertCondition of that name in the file")
                    continue
            rule = _rule(d, policy, c, path, warnings)
            if rule is not None:
                rules.append(rule)
    if f"{A}owner" not in _annotations(slo) and len(targets) == 1 and None not in targets:
        target = next(iter(targets))
        if target != out.get("dimension") and target in d.by_kind["AlertNotificationTarget"]:
            out["owner"] = target  # a foreign file: the policies' one target owns the SLO
    if not rules or window_s is None:
        return {}
    return {"slo_window": format_duration(window_s), "rules": rules}


def _rule(d: _Doc, policy: dict[str, Any], c: Any, path: str, warnings: list[str]) -> dict[str, Any] | None:
    spec = c.get("spec") if isinstance(c, dict) else None
    cond = (spec or {}).get("condition")
    if not isinstance(cond, dict):
        d.fail(d.at(policy, f"{path}.spec.condition"), "required")
        return None
    if cond.get("kind") != "burnrate":
        d.fail(d.at(policy, f"{path}.spec.condition.kind"), f"{cond.get('kind')!r} is not supported (burnrate)")
        return None
    if cond.get("op") not in ("gte", "gt"):
        d.fail(d.at(policy, f"{path}.spec.condition.op"), f"{cond.get('op')!r} is not supported: sloguard alerts "
               "when the burn rate reaches the threshold (gte)")
        return None
    severity = spec.get("severity")
    if severity not in ("page", "ticket"):
        d.fail(d.at(policy, f"{path}.spec.severity"), f"{severity!r}: sloguard's severities are page and ticket")
        return None
    name = (c.get("metadata") or {}).get("name") or policy["metadata"]["name"]
    try:
        long_s = parse_shorthand(cond.get("lookbackWindow"))
    except ValueError as e:
        d.fail(d.at(policy, f"{path}.spec.condition.lookbackWindow"), str(e))
        return None
    short = _annotations(c).get(f"{A}short-window")
    if short is None:
        short = format_duration(max(60, long_s // 12 // 60 * 60))
        warnings.append(f"{d.at(policy, path)}: no {A}short-window; using {short}, 1/12 of the lookback window "
                        "as the SRE workbook does")
    else:
        try:
            short = format_duration(parse_shorthand(short))
        except ValueError as e:
            d.fail(d.at(c, f"metadata.annotations.{A}short-window"), str(e))
            return None
    return {"name": name, "severity": severity, "burn_rate": cond.get("threshold"),
            "long_window": format_duration(long_s), "short_window": short}
