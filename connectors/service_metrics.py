"""Prometheus metrics of the notifier and the rollout controller, read from their own counters.

Each service already counts what it does (`NotifierStats`, `Controller.counters`); a collector
registered on the registry it is given (never the global one) turns those counts into counters at
scrape time, so the services need no metric calls in their loops: posts, retries and failures of
the notifier, decisions by kind of the controller.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

NOTIFIER_COUNTERS = {
    "consumed": "Alert messages read",
    "messages_sent": "Messages posted (a message may group several alerts)",
    "alerts_delivered": "Alerts delivered in posted messages",
    "reminders_sent": "Reminders delivered for alerts still firing",
    "duplicates": "Alerts already delivered, skipped",
    "dead_lettered": "Alerts whose post failed permanently (dead-lettered)",
    "invalid": "Alert messages that could not be parsed",
    "retries_scheduled": "Posts that failed transiently and were scheduled again",
    "commits": "Offset commits",
    "send_seconds": "Seconds spent posting",
}
CONTROLLER_COUNTERS = {
    "events": "Budget and alert messages folded into the rollout state",
    "invalid": "Messages that could not be used",
    "decisions": "Decisions published (changes of a model version's decision)",
    "commits": "Offset commits",
}


class CountsCollector(Collector):
    """Counters `<prefix>_<name>_total` read from `counts()` at each scrape; `by_kind()` adds
    `<prefix>_<kind_metric>_total{<kind_label>=...}`."""

    def __init__(self, prefix: str, helps: Mapping[str, str], counts: Callable[[], Mapping[str, float]],
                 by_kind: tuple[str, str, str, Callable[[], Mapping[str, float]]] | None = None) -> None:
        self.prefix, self.helps, self.counts, self.by_kind = prefix, dict(helps), counts, by_kind

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self.counts()
        for name, text in self.helps.items():
            yield CounterMetricFamily(f"{self.prefix}_{name}", text, value=float(counts.get(name, 0)))
        if self.by_kind is not None:
            metric, text, label, get = self.by_kind
            family = CounterMetricFamily(f"{self.prefix}_{metric}", text, labels=[label])
            for kind, n in sorted(get().items()):
                family.add_metric([kind], float(n))
            yield family


def register_notifier(registry: CollectorRegistry, stats: Any) -> None:
    """Export a `NotifierStats` on `registry` as `sloguard_notifier_*_total`."""
    registry.register(CountsCollector("sloguard_notifier", NOTIFIER_COUNTERS, stats.as_dict))


def register_controller(registry: CollectorRegistry, controller: Any) -> None:
    """Export a `Controller`'s counters and `decision_kinds` as `sloguard_controller_*_total`."""
    registry.register(CountsCollector(
        "sloguard_controller", CONTROLLER_COUNTERS, lambda: controller.counters,
        ("decisions_by_kind", "Decisions published, by kind", "decision", lambda: dict(controller.decision_kinds)),
    ))


def add_metrics_args(p: argparse.ArgumentParser) -> None:
    """`--metrics-port` / `--metrics-address` of a long-running service."""
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on this TCP port (default: not served)")
    p.add_argument("--metrics-address", default="127.0.0.1",
                   help="address the metrics server binds (default 127.0.0.1, loopback)")


def serve_from_args(args: argparse.Namespace) -> CollectorRegistry | None:
    """A new registry served on `--metrics-address:--metrics-port`, or None when no port is given."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    registry = CollectorRegistry()
    start_http_server(port, addr=args.metrics_address, registry=registry)
    return registry
