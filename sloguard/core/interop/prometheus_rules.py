"""Prometheus recording and alerting rules for a config, in the layout Sloth generates.

`prometheus_rules(config)` is a pure function: config in, a rules document (a dict ready for YAML)
and the SLOs it could not express out. The rules read the counters a running flow exports
(`flows/metrics.py`): `sloguard_slo_good_total` and `sloguard_slo_events_total`, labelled model,
slo, dimension and segment (timeslice SLOs count good and judged slices). Per SLO, as Sloth does
(github.com/slok/sloth, `internal/plugin/slo/core/{sli,metadata,alert}_rules_v1`):

- `slo:sli_error:ratio_rate<w>` for every window the SLO's alert rules use and its SLO window:
  `1 - rate(good[w]) / rate(events[w])` per segment key, and for metric SLIs, as the evaluator
  burns them, bad slices over all the window's slices `(increase(judged) - increase(good)) /
  (w / slice)`; the SLO window is computed from the counters directly, not averaged from
  5-minute ratios as Sloth does, so it is the ratio of sums sloguard itself computes;
- `slo:objective:ratio`, `slo:error_budget:ratio`, `slo:time_period:days`,
  `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio`,
  `slo:period_error_budget_remaining:ratio`;
- one alert per sloguard rule of the SLO (the same scaled policy `sloguard validate` shows): it
  fires while the error ratio is >= burn_rate x (1 - target) over both its long and its short
  window and, for ratio SLIs, the long window holds at least `min_events` events (sloguard's
  low-traffic guard); plus the budget-exhausted alert.

Not expressible, so skipped with the reason: SLIs judged on ground truth (`labelled`): their
slices are judged when labels arrive, up to `label_delay` late, and re-judged by late labels, so a
rate over the last hour of wall-clock time is not what sloguard burns.
"""

from __future__ import annotations

import re
from typing import Any

from sloguard.core.evaluate.alerts import BUDGET_EXHAUSTED
from sloguard.core.spec.model import Config, Slo
from sloguard.core.spec.sli import METRIC
from sloguard.core.spec.timeutil import format_duration

GOOD = "sloguard_slo_good_total"
EVENTS = "sloguard_slo_events_total"
KEY = "model, slo, dimension, segment"
ALERT_NAME = "SloguardErrorBudgetBurn"
EXHAUSTED_ALERT_NAME = "SloguardErrorBudgetExhausted"


def _quote(value: str) -> str:
    """A PromQL string literal (double quotes; backslash and quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _group_name(slo: Slo) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", slo.name)


def unsupported_reason(slo: Slo) -> str | None:
    """Why the counters cannot give this SLO's burn rates in Prometheus, or None when they can."""
    if slo.calendar is not None:
        return (
            f"a {slo.calendar.describe()} budget starts over at local midnight on the period's first day; "
            "Prometheus rules read rolling windows, so Sloth-style rules would budget another window "
            "(alert on slo.alerts, or on sloguard_budget_remaining, instead)"
        )
    if slo.sli.spec.labelled:
        return (
            f"{slo.sli.kind} is judged on labels that arrive up to the model's label_delay late and re-judge "
            "earlier slices; a rate over recent wall-clock time is not the burn sloguard computes "
            "(alert on sloguard_burn_rate or slo.alerts instead)"
        )
    return None


def prometheus_rules(config: Config) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The rules document for every expressible SLO, and (slo name, reason) for those skipped."""
    groups: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for slo in config.slos:
        reason = unsupported_reason(slo)
        if reason is not None:
            skipped.append((slo.name, reason))
            continue
        groups += _slo_groups(slo, config)
    return {"groups": groups}, skipped


def _slo_groups(slo: Slo, config: Config) -> list[dict[str, Any]]:
    ids = {"sloth_id": f"{slo.model}-{slo.name}", "sloth_service": slo.model, "sloth_slo": slo.name}
    sel = ", ".join(f"{k}={_quote(v)}" for k, v in ids.items())
    counters = f"slo={_quote(slo.name)}, model={_quote(slo.model)}"
    windows = sorted({w for r in slo.rules for w in (r.short_window_s, r.long_window_s)} | {slo.window_s})
    sli = []
    for w in windows:
        d = format_duration(w)
        if slo.sli.family == METRIC:  # bad slices of all the window's slices, unjudged ones counting as good
            expr = (f"(\n  sum by ({KEY}) (increase({EVENTS}{{{counters}}}[{d}]))\n  -\n"
                    f"  sum by ({KEY}) (increase({GOOD}{{{counters}}}[{d}]))\n) / {w / slo.budgeting.slice_s!r}\n")
        else:
            expr = (f"1 - (\n  sum by ({KEY}) (rate({GOOD}{{{counters}}}[{d}]))\n  /\n"
                    f"  sum by ({KEY}) (rate({EVENTS}{{{counters}}}[{d}]))\n)\n")
        sli.append({"record": f"slo:sli_error:ratio_rate{d}", "expr": expr, "labels": {**ids, "sloth_window": d}})
    budget = round(1 - slo.slo_target, 12)  # 1 - 0.9995 is 0.0004999999999999449 in floats
    period = format_duration(slo.window_s)
    on = "on (sloth_id, sloth_slo, sloth_service) group_left"
    meta = [
        {"record": "slo:objective:ratio", "expr": f"vector({slo.slo_target!r})", "labels": ids},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1 - {slo.slo_target!r})", "labels": ids},
        {"record": "slo:time_period:days", "expr": f"vector({slo.window_s / 86_400!r})", "labels": ids},
        {"record": "slo:current_burn_rate:ratio", "labels": ids,
         "expr": f"slo:sli_error:ratio_rate{format_duration(windows[0])}{{{sel}}}\n/ {on}\n"
                 f"slo:error_budget:ratio{{{sel}}}\n"},
        {"record": "slo:period_burn_rate:ratio", "labels": ids,
         "expr": f"slo:sli_error:ratio_rate{period}{{{sel}}}\n/ {on}\nslo:error_budget:ratio{{{sel}}}\n"},
        {"record": "slo:period_error_budget_remaining:ratio", "labels": ids,
         "expr": f"1 - slo:period_burn_rate:ratio{{{sel}}}"},
    ]
    owner = config.owner_of(slo)
    # completeness counts each event's expected feature values; the guard counts events
    per_event = max(1, len(config.models[slo.model].features)) if slo.sli.kind == "completeness" else 1

    def guard(window_s: int) -> str:
        """sloguard's low-traffic guard: ratio SLIs alert only on >= min_events events in the window."""
        if slo.sli.family == METRIC or slo.min_events <= 0:
            return "\n"
        return (f"\nand on ({KEY})\n(sum by ({KEY}) (increase({EVENTS}{{{counters}}}[{format_duration(window_s)}]))"
                f" >= {slo.min_events * per_event})\n")

    alerts = []
    for rule in slo.rules:
        threshold = f"({rule.burn_rate!r} * {budget!r})"
        parts = [
            f"max without (sloth_window) (slo:sli_error:ratio_rate{format_duration(w)}{{{sel}}} >= {threshold})"
            for w in (rule.short_window_s, rule.long_window_s)
        ]
        expr = "(\n    " + "\n  and\n    ".join(parts) + "\n)" + guard(rule.long_window_s)
        alerts.append({
            "alert": ALERT_NAME,
            "expr": expr,
            "labels": {"slo": slo.name, "rule": rule.name, "severity": rule.severity, "sloth_severity": rule.severity,
                       "dimension": slo.dimension, **({"owner": owner.route} if owner else {})},
            "annotations": {
                "summary": f"{slo.name} ({{{{ $labels.segment }}}}) burns its {period} error budget "
                           f">= {rule.burn_rate:g}x over {format_duration(rule.long_window_s)} and "
                           f"{format_duration(rule.short_window_s)}",
                **({"runbook_url": owner.runbook} if owner and owner.runbook else {}),
            },
        })
    alerts.append({
        "alert": EXHAUSTED_ALERT_NAME,
        "expr": f"slo:period_error_budget_remaining:ratio{{{sel}}} <= 0" + guard(slo.window_s),
        "labels": {"slo": slo.name, "rule": BUDGET_EXHAUSTED, "severity": config.exhausted_severity,
                   "sloth_severity": config.exhausted_severity, "dimension": slo.dimension},
        "annotations": {"summary": f"{slo.name} ({{{{ $labels.segment }}}}) has spent its {period} error budget"},
    })
    name = _group_name(slo)
    return [
        {"name": f"sloguard-slo-sli-recordings-{name}", "rules": sli},
        {"name": f"sloguard-slo-meta-recordings-{name}", "rules": meta},
        {"name": f"sloguard-slo-alerts-{name}", "rules": alerts},
    ]
