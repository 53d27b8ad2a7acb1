"""The notifier's and the controller's own Prometheus metrics, scraped over HTTP from their registry."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from rollout_factories import make_config, make_spec
from slack_server import example_alerts as examples
from slack_server import server_error
from test_controller import TOKEN, scenario_events
from test_notifier import Clock, driver, slack, step  # noqa: F401 (slack is a fixture)

from sloguard.connectors.broker import free_port
from sloguard.connectors.controller import Controller
from sloguard.connectors.controller_settings import ControllerSettings
from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.connectors.service_metrics import register_controller, register_notifier


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    port = free_port()
    start_http_server(port, addr="127.0.0.1", registry=registry)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body) for s in f.samples}


def test_notifier_exports_posts_retries_and_failures(slack, tmp_path: Path) -> None:  # noqa: F811
    clock = Clock()
    n, consumer, _, url = driver(slack, {"group_window": "30s", "max_retries": 0, "retry_initial": "10s"},
                                 tmp_path, clock)
    registry = CollectorRegistry()
    register_notifier(registry, n.stats)
    firing = examples()[0]
    consumer.add(firing, {**firing, "id": "b2"})
    step(n)
    slack.script(url, server_error(500))
    clock.t += 30
    step(n)  # the post fails: retried in 10 s
    clock.t += 10
    step(n)  # accepted
    got = scrape(registry)
    assert got[("sloguard_notifier_retries_scheduled_total", ())] == 1
    assert got[("sloguard_notifier_messages_sent_total", ())] == len(slack.received(url)) == 1
    assert got[("sloguard_notifier_alerts_delivered_total", ())] == 2
    assert got[("sloguard_notifier_dead_lettered_total", ())] == 0
    n.close()


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append(orjson.loads(value))


def test_controller_exports_decisions_by_kind() -> None:
    config = make_config()
    controller = Controller(config, make_spec(), ControllerSettings(tokens=(TOKEN,)),
                            KafkaSettings(bootstrap_servers="127.0.0.1:1", topics=config.topics))
    registry = CollectorRegistry()
    register_controller(registry, controller)
    now = time.time()
    for e in scenario_events(now):
        controller.shared.state.apply(e)
    producer = RecordingProducer()
    controller.evaluate(producer)
    want = Counter(d["decision"] for d in producer.sent)
    assert len(want) >= 2, want  # the scenario has canaries to promote, hold and roll back
    got = scrape(registry)
    for kind, n in want.items():
        assert got[("sloguard_controller_decisions_by_kind_total", (("decision", kind),))] == n
    assert got[("sloguard_controller_decisions_total", ())] == len(producer.sent)
