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

from sloguard.apps.run import INPUTS
from sloguard.core.spec.timeutil import parse_rfc3339

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


def test_run_waits_for_a_broker_that_is_down_and_goes_on_when_it_comes(tmp_path):
    """Issue 15, item 6: `run` with the broker down printed a traceback and exited."""
    from confluent_kafka.admin import AdminClient

    from sloguard.connectors.admin import create_topics
    from sloguard.connectors.broker import EmbeddedBroker, free_port

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topics = {k: f"late.{k}" for k in (*INPUTS, "budget", "alerts", "dead_letter")}
    config = write_config(tmp_path / "c.yaml", bootstrap, topics,
                          [{"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.99}])
    proc = sloguard("run", "--config", str(config), "--heartbeat", "1")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 30
        while not any("does not answer" in line for line in lines) and time.time() < deadline:
            time.sleep(0.2)
        assert any(f"Kafka at {bootstrap} does not answer" in line and "retrying in" in line for line in lines), lines
        time.sleep(2)
        assert proc.poll() is None, "run gave up while the broker was down"
        with EmbeddedBroker(port=port) as broker:
            create_topics({"bootstrap.servers": broker.bootstrap_servers}, list(topics.values()))
            assert AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
            producer = Producer({"bootstrap.servers": bootstrap})
            for i in range(300):
                producer.produce(topics["inference"], orjson.dumps(event(i, T0 + i)))
            assert producer.flush(30) == 0
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "late-budget"})
            consumer.assign([TopicPartition(topics["budget"], 0, 0)])
            budgets: list = []
            deadline = time.time() + 90
            while not budgets and time.time() < deadline:
                budgets = [m for m in consumer.consume(100, 1.0) if m.error() is None]
            consumer.close()
            stop(proc)
    finally:
        stop(proc)
    assert budgets, "no budget events once the broker came"
    assert not any("Traceback" in line for line in lines), "".join(lines)[-3000:]


def test_a_recovery_dir_of_another_flow_or_open_to_others_is_refused_with_a_message(kafka_bootstrap, topic_factory,
                                                                                     tmp_path):
    """Issue 15, item 6: a recovery dir from another config failed with "not in this worker's
    routing map" (Bytewax) or a numpy broadcast error; dirs were created 0755 though Bytewax
    unpickles what it finds there."""
    slos = [{"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.99}]
    first, second = new_topics(topic_factory), new_topics(topic_factory)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for names in (first, second):
        for i in range(100):
            producer.produce(names["inference"], orjson.dumps(event(i, T0 + i)))
    assert producer.flush(30) == 0
    recovery = tmp_path / "state" / "recovery"
    args = ("--drain", "--recovery-dir", str(recovery))
    config_a = write_config(tmp_path / "a.yaml", kafka_bootstrap, first, slos)
    proc = sloguard("run", "--config", str(config_a), *args)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out[-3000:]
    assert oct(recovery.stat().st_mode & 0o777) == "0o700"
    config_b = write_config(tmp_path / "b.yaml", kafka_bootstrap, second, slos)
    proc = sloguard("run", "--config", str(config_b), *args)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "Traceback" not in out and "routing map" not in out, out[-3000:]
    assert f"{recovery}: it holds the read positions of {first['features']}#0" in out
    assert "start with a new --recovery-dir" in out
    other = tmp_path / "other"
    other.mkdir()
    (other / "part-0.sqlite3").write_bytes(b"not ours")
    proc = sloguard("run", "--config", str(config_a), "--drain", "--recovery-dir", str(other))
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "is not a recovery directory of this sloguard" in out, out[-3000:]
    recovery.chmod(0o777)
    proc = sloguard("run", "--config", str(config_a), *args)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "can be written by other users (mode 777)" in out, out[-3000:]
