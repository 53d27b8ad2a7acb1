"""Prometheus metrics of a running flow, observed at its edges (the core stays free of I/O).

A `FlowMetrics` owns the metric objects on the registry it is given (never the global one at
import), and `build_flow(..., metrics=...)` adds `inspect` steps that feed it: messages in per
topic, outputs per kind, dead letters per model and reason (the field or kind of fault, so label
values stay few), and per SLO and segment the SLI, budget remaining, burn rates and firing alerts.
The whole-model segment is labelled `all` so dashboards can select it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from sloguard.batch import ParsedBatch

WHOLE_MODEL = "all"


def _segment(segment: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in segment.items()) or WHOLE_MODEL


def reason_class(error: str) -> str:
    """`latency_ms: must be a number` -> `latency_ms`; `malformed JSON: ...` -> `malformed JSON`."""
    return error.split(":", 1)[0][:40]


class FlowMetrics:
    """The flow's Prometheus metrics on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_in = Counter("sloguard_events_in", "Input messages read, valid or not", ["topic"],
                                 registry=registry)
        self.outputs = Counter("sloguard_outputs", "Messages written, by kind", ["kind"], registry=registry)
        self.dead_letters = Counter("sloguard_dead_letters", "Input messages that could not be used",
                                    ["model", "reason"], registry=registry)
        self.sli = Gauge("sloguard_sli", "SLI over the SLO window", ["slo", "model", "segment"], registry=registry)
        self.budget_remaining = Gauge("sloguard_budget_remaining", "Fraction of the error budget left",
                                      ["slo", "model", "segment", "dimension"], registry=registry)
        self.burn_rate = Gauge("sloguard_burn_rate", "Error-budget burn rate per window",
                               ["slo", "model", "segment", "window"], registry=registry)
        self.alerts_firing = Gauge("sloguard_alerts_firing", "1 while an alert fires",
                                   ["slo", "model", "segment", "rule", "severity"], registry=registry)
        self.consumer_lag = Gauge("sloguard_consumer_lag", "Messages not yet read per input partition",
                                  ["topic", "partition"], registry=registry)

    def observe_parsed(self, parsed: ParsedBatch, topic: str, n_messages: int) -> None:
        if n_messages:
            self.events_in.labels(topic).inc(n_messages)
        for d in parsed.dead_letters:
            self.dead_letters.labels(d.model or "", reason_class(d.error)).inc()

    def observe_output(self, kind: str, message: dict[str, Any]) -> None:
        self.outputs.labels(kind).inc()
        if kind == "dead_letter":
            self.dead_letters.labels(message.get("model") or "", reason_class(message["error"])).inc()
            return
        slo, model, segment = message.get("slo") or "", message["model"], _segment(message["segment"])
        if kind == "budget":
            if message["sli"] is not None:
                self.sli.labels(slo, model, segment).set(message["sli"])
            self.budget_remaining.labels(slo, model, segment, message["dimension"]).set(message["budget_remaining"])
            for window, rate in message["burn_rates"].items():
                self.burn_rate.labels(slo, model, segment, window).set(rate)
        elif kind == "alert":
            firing = 1.0 if message["state"] == "firing" else 0.0
            self.alerts_firing.labels(slo, model, segment, message["rule"], message["severity"]).set(firing)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(topic, str(partition)).set(lag)


def serve(metrics: FlowMetrics, port: int, host: str = "0.0.0.0") -> None:
    """Expose `metrics` for Prometheus on http://host:port/metrics (a background thread)."""
    start_http_server(port, addr=host, registry=metrics.registry)
