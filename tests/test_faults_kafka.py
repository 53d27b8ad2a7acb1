"""Fault inputs end to end on the embedded broker with `sloguard run` (issue 15).

Each test reproduces a failure the fault-injection run found, through the real CLI, Kafka and
Bytewax: a page that came late because invalid traffic stopped event time, a resume whose SLO list
changed, a broker that was not there yet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from factories import T0, event
from test_faults import feature_events, invalid_inference, workbook_detection_bound_s

from connectors.runner import INPUTS
from sloguard.timeutil import parse_rfc3339

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def sloguard(*args: str, **kw) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sloguard"
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    return out


def write_config(path: Path, bootstrap: str, topics: dict[str, str], slos: list[dict], **top) -> Path:
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": bootstrap, "topics": topics},
        "evaluation_interval": "1m", "allowed_lateness": "0s", **top,
        "models": {"m": {"segments": ["region"], "features": ["a", "b"], "no_data_after": "10m"}},
        "owners": {"data": {"route": "data-oncall"}, "infrastructure": {"route": "sre"}},
        "slos": [{"model": "m", "window": "30d", **s} for s in slos],
    }))
    return path


def new_topics(topic_factory) -> dict[str, str]:
    return {k: topic_factory(k) for k in (*INPUTS, "budget", "alerts", "dead_letter")}


def test_a_model_sending_only_invalid_events_pages_on_time_live(kafka_bootstrap, topic_factory, tmp_path):
    """Issue 15, item 4: a deploy renames a field; the model keeps sending, every event invalid, while
    features keep flowing. Its event time used to stop at the last valid event, so the schema page
    waited until valid events returned. Here the invalid traffic never stops while the test waits,
    and no wall-clock heartbeat can stand in for event time (--heartbeat 0)."""
    from test_faults import SLOS

    topics = new_topics(topic_factory)
    config = write_config(tmp_path / "c.yaml", kafka_bootstrap, topics, SLOS)
    proc = sloguard("run", "--config", str(config), "--heartbeat", "0")
    valid_end = T0 + 3000
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    done = threading.Event()
    features = sorted(feature_events(T0, valid_end + 600), key=lambda f: f["ts"])

    def produce() -> None:  # in event-time order, never idle: 50 min at once, then 10 event-s per wall second
        stream = [(e["ts"], "inference", e) for e in (event(i, T0 + i) for i in range(3000))]
        stream += [(e["ts"], "inference", e) for e in (invalid_inference(10_000 + i, valid_end + i)
                                                       for i in range(600))]
        stream += [(f["ts"], "features", f) for f in features]
        for ts, kind, message in sorted(stream, key=lambda x: x[0]):
            producer.produce(topics[kind], orjson.dumps(message))
            producer.poll(0)
            if ts >= valid_end:
                producer.flush(5)
                time.sleep(0.1 / 1.5)  # 1.5 messages per event-second: 10 event-seconds per wall second
            if done.is_set():
                return
        producer.flush(10)

    writer = threading.Thread(target=produce, daemon=True)
    page = None
    try:
        time.sleep(3)  # the flow is tailing before anything is written
        writer.start()
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "faults-page"})
        consumer.assign([TopicPartition(topics["alerts"], 0, 0)])
        deadline = time.time() + 120
        while page is None and writer.is_alive() and time.time() < deadline:
            for msg in consumer.consume(100, 0.5):
                alert = orjson.loads(msg.value()) if msg.error() is None else {}
                if alert.get("slo") == "schema" and alert.get("state") == "firing" and alert["severity"] == "page":
                    page = alert
        still_invalid = writer.is_alive()  # the page came while only invalid inference traffic flowed
        consumer.close()
    finally:
        done.set()
        out = stop(proc)
    assert page is not None, f"no schema page while invalid events flowed:\n{out[-3000:]}"
    assert still_invalid
    fired = parse_rfc3339(page["ts"])
    assert valid_end < fired <= valid_end + workbook_detection_bound_s(0.999, error_rate=2 / 3)
