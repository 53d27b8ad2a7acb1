"""Prometheus metrics of a running flow, observed at its edges (the core stays free of I/O).

A `FlowMetrics` owns the metric objects on the registry it is given (never the global one at
import), and `build_flow(..., metrics=...)` adds `inspect` steps that feed it: messages in per
topic, outputs per kind, dead letters per model and reason (the field or kind of fault, so label
values stay few), and per SLO and segment the SLI, budget remaining, burn rates and firing alerts.
The whole-model segment is labelled `all` so dashboards can select it.

`sloguard_slo_good_total` / `sloguard_slo_events_total` are monotonic counters of what each tick
added (a budget event's `counted`: events for occurrences SLOs, good and newly judged slices for
timeslice SLOs), so Prometheus can recompute error ratios and burn rates itself
(`sloguard export prometheus`). `sloguard_alerts_firing` follows each budget event's `firing`
list, so it is right again after a restart even when no transition is repeated. The gauges of a
key that has not reported for `retire_after_ticks` ticks of its model are removed.

The flow hands budgets, alerts and dead letters over as their Structs (`sloguard.core.messages.outputs`),
used as they are. A message handed over as a dict (by other callers) is
read as its type first: one that does not fit counts in `sloguard_output_type_errors_total{kind}`
(logged once per problem) and sets no gauge, so a renamed field shows on the dashboard instead of
stopping the metrics.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from sloguard.core.evaluate.alerts import BUDGET_EXHAUSTED
from sloguard.core.messages.batch import ParsedBatch
from sloguard.core.messages.outputs import Alert, AlertRead, Budget, BudgetRead, DeadLetter, read_as
from sloguard.core.spec.model import Config

WHOLE_MODEL = "all"
UNKNOWN_SEVERITY = "unknown"
#: What each kind is read as: the lenient readers where a newer writer may add fields; dead letters
#: have one builder (`dead_letter`), so their exact type.
_READ_AS = {"budget": BudgetRead, "alert": AlertRead, "dead_letter": DeadLetter}
log = logging.getLogger(__name__)


def _segment(segment: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in segment.items()) or WHOLE_MODEL


#: A quoted value in a reason, as `repr` writes it: an id, a model name, a user's key.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"\b\d[\w.]*")  # 70000, 1.5, 2h30m
_DETAIL = re.compile(r"[:(,]")  # what follows the kind of fault
REASON_MAX_CHARS = 64


def reason_class(error: str) -> str:
    """The kind of fault in a dead letter's reason, as a label value that stays one of a few.

    Quoted values (ids, names) and numbers are dropped, then everything after the first `:`, `(`
    or `,`, and a field path is cut to its top field: `latency_ms: must be a number` ->
    `latency_ms`; `features.amount: ...` -> `features`; `label for id 'o-17' came after its
    prediction was evicted (more than 1000000 ...)` -> `label for id came after its prediction was
    evicted`. A reason's ids must never become label values: one series per dead letter would grow
    the registry, and every scrape, without bound.
    """
    text = _NUMBER.sub("N", _QUOTED.sub("", error))
    text = " ".join(_DETAIL.split(text, 1)[0].split())
    if " " not in text:
        text = text.split(".", 1)[0]
    return text[:REASON_MAX_CHARS] or "unknown"


@dataclass
class _KeyGauges:
    """The gauge label sets one (slo, model, segment) key has set, so they can be removed."""

    last_tick: int
    reports: bool = False  # budget events report this key (so their silence retires it)
    dimension: str | None = None
    windows: set[str] = field(default_factory=set)
    firing: dict[str, str] = field(default_factory=dict)  # rule -> severity, currently 1
    resolved: dict[str, str] = field(default_factory=dict)  # rule -> severity, currently 0


class FlowMetrics:
    """The flow's Prometheus metrics on `registry`.

    `severities` maps (slo, rule) to severities (`rule_severities(config)`), for alerts known to be
    firing only from a budget event's `firing` list; `retire_after_ticks` is how many ticks of its
    model a key may be silent before its gauges are removed.
    """

    def __init__(self, registry: CollectorRegistry, severities: dict[tuple[str, str], str] | None = None,
                 retire_after_ticks: int = 10) -> None:
        self.registry = registry
        self.severities = dict(severities or {})
        self.retire_after_ticks = retire_after_ticks
        self._lock = threading.Lock()  # inspect steps of several workers share this object
        self._keys: dict[tuple[str, str, str], _KeyGauges] = {}
        self._ticks: dict[str, tuple[str, int]] = {}  # model -> (newest tick ts, tick count)
        self._type_problems: set[tuple[str, str]] = set()  # (kind, problem) logged already
        self.events_in = Counter("sloguard_events_in", "Input messages read, valid or not", ["topic"],
                                 registry=registry)
        self.outputs = Counter("sloguard_outputs", "Messages written, by kind", ["kind"], registry=registry)
        self.dead_letters = Counter("sloguard_dead_letters", "Input messages that could not be used",
                                    ["model", "reason"], registry=registry)
        self.type_errors = Counter("sloguard_output_type_errors", "Outputs that do not match their message type "
                                   "(a sloguard bug; no gauge is set from them)", ["kind"], registry=registry)
        self.sli = Gauge("sloguard_sli", "SLI over the SLO window", ["slo", "model", "segment"], registry=registry)
        self.budget_remaining = Gauge("sloguard_budget_remaining", "Fraction of the error budget left",
                                      ["slo", "model", "segment", "dimension"], registry=registry)
        self.burn_rate = Gauge("sloguard_burn_rate", "Error-budget burn rate per window",
                               ["slo", "model", "segment", "window"], registry=registry)
        self.alerts_firing = Gauge("sloguard_alerts_firing", "1 while an alert fires",
                                   ["slo", "model", "segment", "rule", "severity"], registry=registry)
        self.label_store = Gauge("sloguard_label_store", "The label join: predictions pending, labels held, "
                                 "and totals joined, late, expired, evicted, rejected", ["model", "counter"],
                                 registry=registry)
        self.consumer_lag = Gauge("sloguard_consumer_lag", "Messages not yet read per input partition",
                                  ["topic", "partition"], registry=registry)
        counter_labels = ["model", "slo", "dimension", "segment"]
        self.slo_good = Counter("sloguard_slo_good", "Good events (timeslice SLOs: good slices) counted per tick",
                                counter_labels, registry=registry)
        self.slo_events = Counter("sloguard_slo_events", "Events (timeslice SLOs: judged slices) counted per tick",
                                  counter_labels, registry=registry)

    def observe_parsed(self, parsed: ParsedBatch, topic: str, n_messages: int) -> None:
        if n_messages:
            self.events_in.labels(topic).inc(n_messages)
        for d in parsed.dead_letters:
            self.dead_letters.labels(d.model or "", reason_class(d.error)).inc()

    def observe_output(self, kind: str, message: Any) -> None:
        if kind != "label_store":  # written to no topic
            self.outputs.labels(kind).inc()
        if kind == "label_store":  # the label join's counters as it has read so far (not in budget events)
            # every number is a counter: a new one shows without a change here (no field is named)
            for name, value in message.items():
                if name not in ("model", "segment", "ts") and isinstance(value, int | float):
                    self.label_store.labels(message["model"], name).set(value)
            return
        if kind not in _READ_AS:  # incidents: counted above, no gauges of their own
            return
        typed, problem = ((message, None) if isinstance(message, Budget | Alert | DeadLetter)
                          else read_as(message, _READ_AS[kind]))
        if typed is None:
            self._type_error(kind, problem or "")
            return
        if isinstance(typed, DeadLetter):
            self.dead_letters.labels(typed.model or "", reason_class(typed.error)).inc()
            return
        slo, segment = typed.slo or "", _segment(typed.segment)
        with self._lock:
            if isinstance(typed, Budget):
                self._observe_budget(typed, slo, typed.model, segment)
            else:
                self.severities.setdefault((slo, typed.rule), typed.severity)
                key = self._key(slo, typed.model, segment)
                self._set_alert(key, (slo, typed.model, segment), typed.rule, typed.severity,
                                typed.state == "firing")

    def _type_error(self, kind: str, problem: str) -> None:
        """A message that is not its type: counted, and logged once per kind and problem."""
        self.type_errors.labels(kind).inc()
        if (kind, problem) not in self._type_problems:
            self._type_problems.add((kind, problem))
            log.error("%s message does not match its type, no gauge set from it: %s", kind, problem)

    def _key(self, slo: str, model: str, segment: str) -> _KeyGauges:
        key = self._keys.get((slo, model, segment))
        if key is None:
            key = self._keys[(slo, model, segment)] = _KeyGauges(self._ticks.get(model, ("", 0))[1])
        return key

    def _observe_budget(self, budget: Budget, slo: str, model: str, segment: str) -> None:
        self._advance_tick(model, budget.ts)
        key = self._key(slo, model, segment)
        key.last_tick, key.reports = self._ticks[model][1], True
        labels = (model, slo, budget.dimension, segment)
        self.slo_good.labels(*labels).inc(budget.counted.good)
        self.slo_events.labels(*labels).inc(budget.counted.total)
        if budget.sli is not None:
            self.sli.labels(slo, model, segment).set(budget.sli)
        key.dimension = budget.dimension
        self.budget_remaining.labels(slo, model, segment, budget.dimension).set(budget.budget_remaining)
        for window, rate in budget.burn_rates.items():
            key.windows.add(window)
            self.burn_rate.labels(slo, model, segment, window).set(rate)
        # the evaluator's own view of what fires: repairs the gauge after a restart
        for rule in set(key.firing) - set(budget.firing):
            self._set_alert(key, (slo, model, segment), rule, key.firing[rule], False)
        for rule in budget.firing:
            self._set_alert(key, (slo, model, segment), rule, self.severities.get((slo, rule), UNKNOWN_SEVERITY), True)

    def _set_alert(self, key: _KeyGauges, labels: tuple[str, str, str], rule: str, severity: str,
                   firing: bool) -> None:
        self.alerts_firing.labels(*labels, rule, severity).set(1.0 if firing else 0.0)
        (key.firing if firing else key.resolved)[rule] = severity
        (key.resolved if firing else key.firing).pop(rule, None)

    def _advance_tick(self, model: str, ts: str) -> None:
        """Count the model's ticks (RFC 3339 texts of one format order as times) and retire silent keys."""
        newest, count = self._ticks.get(model, ("", 0))
        if ts <= newest:
            return
        self._ticks[model] = (ts, count + 1)
        for labels, key in list(self._keys.items()):
            # keys no budget event reports (a model's no-data alert) follow their alert transitions only
            if labels[1] == model and key.reports and count + 1 - key.last_tick > self.retire_after_ticks:
                self._retire(labels, key)

    def _retire(self, labels: tuple[str, str, str], key: _KeyGauges) -> None:
        del self._keys[labels]
        for gauge, values in (
            (self.sli, [labels]),
            (self.budget_remaining, [(*labels, key.dimension)] if key.dimension else []),
            (self.burn_rate, [(*labels, w) for w in key.windows]),
            (self.alerts_firing, [(*labels, r, s) for r, s in (*key.firing.items(), *key.resolved.items())]),
        ):
            for v in values:
                with contextlib.suppress(KeyError):  # never set (e.g. an SLI that was always None)
                    gauge.remove(*v)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(topic, str(partition)).set(lag)


def rule_severities(config: Config) -> dict[tuple[str, str], str]:
    """(slo, rule) -> severity for every alert rule of a config (for `FlowMetrics(severities=...)`)."""
    out = {}
    for slo in config.slos:
        out[(slo.name, BUDGET_EXHAUSTED)] = config.exhausted_severity
        for rule in slo.rules:
            out[(slo.name, rule.name)] = rule.severity
    return out


def serve(metrics: FlowMetrics, port: int, host: str = "127.0.0.1") -> None:
    """Expose `metrics` for Prometheus on http://host:port/metrics (a background thread).

    Loopback by default: the page names models, SLOs and segments, so binding every interface
    (`0.0.0.0`) is a choice the operator makes with `--metrics-address`.
    """
    start_http_server(port, addr=host, registry=metrics.registry)
