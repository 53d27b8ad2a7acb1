"""The `slos:` section: each SLO's SLI (from the catalogue, with its parameters checked against its
model), objective, window and budgeting method, and its alert rules."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from sloguard.core.spec.alerting_section import DEFAULT_HOLD_TICKS, parse_hold, parse_rules
from sloguard.core.spec.calendar import Calendar
from sloguard.core.spec.check import Checker, count, duration_or_zero, label_coverage_rule
from sloguard.core.spec.model import Budgeting, Model, Objective, Sli, Slo
from sloguard.core.spec.policy import AlertRule, scale_rules
from sloguard.core.spec.sli import CATALOGUE, DIMENSIONS, METRIC, RATIO, SliKind
from sloguard.core.spec.timeutil import format_duration
from sloguard.core.stats.quality import canonical


def _sli(c: Checker, raw: Any, path: str, model: Model | None) -> Sli | None:
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
            resolved[key] = count(c, value, f"{ppath}.{key}", 1)
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


def _expression_param(c: Checker, kind_of: str, value: Any, path: str, model: Model | None) -> Any:
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


def _model_params(c: Checker, kind: str, spec: SliKind, params: dict[str, Any], path: str, model: Model) -> None:
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


def _check_calibrated(c: Checker, kind: str, params: dict[str, Any], path: str, model: Model) -> None:
    """An estimated quality SLI reads scores calibrated on the baseline's labelled history."""
    remedy = "run `sloguard baseline --labels ...` on history whose predictions carry a `score`"
    if model.baseline is None:
        c.fail(path, f"{kind} needs a score calibration: set models.{model.name}.baseline ({remedy})")
    elif not c.pending and canonical(params["positive"]) not in model.calibration:
        c.fail(path, f"{kind}: baseline {model.baseline} has no score calibration for positive class "
               f"{params['positive']!r} (the model sent no scores, or the history had no labels): {remedy}")


def _check_pca(c: Checker, params: dict[str, Any], path: str, model: Model) -> None:
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


def _objective(c: Checker, raw: Any, path: str) -> Objective:
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
    c: Checker, obj: Objective, path: str, sli: Sli, name: str, model: Model
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


def parse_slo(
    c: Checker,
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
    calendar = None
    if isinstance(s.get("window"), dict):
        calendar = _calendar(c, s["window"], f"{path}.window", interval, sli)
        window = calendar.nominal_s if calendar is not None else None
    else:
        window = c.duration(s.get("window"), f"{path}.window")
        if window is None:
            c.fail(f"{path}.window", "required (e.g. 30d, or {calendar: month, timezone: Europe/Berlin})")
        elif window % interval:
            c.fail(f"{path}.window", f"must be a multiple of evaluation_interval ({format_duration(interval)})")
    budgeting = _budgeting(c, s.get("budgeting"), f"{path}.budgeting", sli, interval, window, model)
    if calendar is not None and budgeting.method == "timeslices" and calendar.bucket_s % budgeting.slice_s:
        c.fail(f"{path}.budgeting.timeslices", f"must divide {format_duration(calendar.bucket_s)} so that slices "
                                               f"start on the calendar period's boundary")
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
    hold = parse_hold(c, alerting.get("resolve_hold"), f"{path}.alerting.resolve_hold", resolve_hold)
    rules, rules_window = parse_rules(c, alerting, f"{path}.alerting", base_dir, default_rules, policy_window)
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
        calendar=calendar,
    )


def _calendar(c: Checker, raw: dict[str, Any], path: str, interval: int, sli: Sli | None) -> Calendar | None:
    """`window: {calendar: month | week, timezone: <IANA name>}`: a budget that resets each period."""
    from sloguard.core.spec.calendar import PERIODS, Calendar, zone
    from sloguard.core.stats.windows import LADDER

    raw = c.mapping(raw, path, {"calendar", "timezone"})
    start = len(c.problems)
    period, tz = raw.get("calendar"), raw.get("timezone", "UTC")
    if period not in PERIODS:
        c.fail(f"{path}.calendar", f"must be one of {', '.join(PERIODS)}, got {period!r}")
    if not isinstance(tz, str):
        c.fail(f"{path}.timezone", f"must be an IANA timezone name such as Europe/Berlin, got {tz!r}")
    else:
        try:
            zone(tz)
        except ValueError as e:
            c.fail(f"{path}.timezone", str(e))
    if sli is not None and sli.spec.labelled:
        c.fail(path, f"{sli.kind} is judged on labels, whose slices are re-judged as labels arrive: calendar "
                     "windows are for SLIs judged when their events arrive (use a rolling window, e.g. 30d)")
    if len(c.problems) > start:
        return None
    calendar = Calendar(period, tz)
    # every bucket size must nest in the next, and the period's buckets must hold whole intervals
    sizes = sorted({k * interval for k in LADDER} | {calendar.bucket_s})
    if any(b % a for a, b in itertools.pairwise(sizes)):
        c.fail(f"{path}.calendar", f"needs an evaluation_interval that divides {format_duration(calendar.bucket_s)} "
                                   f"and nests with its multiples, not {format_duration(interval)} (e.g. 1m)")
        return None
    return calendar


def _budgeting(c: Checker, raw: Any, path: str, sli: Sli | None, interval: int, window: int | None,
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
        share, wait = label_coverage_rule(c, coverage, f"{path}.label_coverage", model.min_label_share,
                                          model.label_wait_s)
        if wait > model.label_delay_s:
            c.fail(f"{path}.label_coverage.wait", f"{format_duration(wait)} is longer than models.{model.name}."
                   f"label_delay ({duration_or_zero(model.label_delay_s)}): no label can come after it")
    elif raw.get("label_coverage") is not None:
        c.fail(f"{path}.label_coverage", "only SLIs judged on labels wait for label coverage")
    return Budgeting("timeslices", slice_s, min_samples, target or 0.99, share, wait)
