"""The dataflow on a real Kafka-protocol broker gives what `sloguard replay` gives on the same events."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest
from bytewax.testing import run_main
from confluent_kafka import Consumer, Producer, TopicPartition

from sloguard.apps.replay import replay
from sloguard.apps.run import INPUTS, RunOptions, build_kafka_flow
from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.connectors.kafka_io import KafkaJsonSink
from sloguard.core.evaluate.frontier import SourceFrontier
from sloguard.core.messages.outputs import DeadLetter
from sloguard.core.spec.config import parse_config
from sloguard.core.synth.scenarios import plan, write_scenario

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


def produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for line in lines:
        producer.produce(topic, line)
        producer.poll(0)
    assert producer.flush(30) == 0


def consume_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict, list]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    while True:
        msg = consumer.poll(10)
        assert msg is not None, f"timed out reading {topic}"
        if msg.error():
            break
        out.append((msg.key(), orjson.loads(msg.value()), msg.headers() or []))
    consumer.close()
    return out


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    data = tmp_path_factory.mktemp("kafka-scenario")
    write_scenario(plan("fraud", events=50_000, seed=5), data)
    return data


def topics_config(topic_factory, bootstrap: str) -> tuple[dict, KafkaSettings]:
    names = {k: topic_factory(k) for k in (*INPUTS, "budget", "alerts", "dead_letter", "incidents")}
    kafka = {"bootstrap_servers": bootstrap, "topics": names}
    return kafka, KafkaSettings.from_mapping(kafka, env={})


# silences and budget adjustments over the scenario's incidents: live and replay apply them alike
ADJUSTMENTS = [
    {"model": "fraud", "slo": "fraud-availability", "effect": "silence", "start": "2026-01-01T00:15:00Z",
     "end": "2026-01-01T00:30:00Z", "reason": "canary under investigation"},
    {"model": "fraud", "slo": "fraud-availability", "segment": {"region": "eu"}, "effect": "exclude",
     "start": "2026-01-01T01:20:00Z", "end": "2026-01-01T01:40:00Z", "reason": "eu failover drill"},
    {"model": "fraud", "effect": "scale", "budget_factor": 0.5, "start": "2026-01-01T02:30:00Z",
     "end": "2026-01-01T03:30:00Z", "reason": "launch: half the budget"},
]


def test_the_flow_on_kafka_raises_the_same_alerts_and_budgets_as_replay(scenario, kafka_bootstrap, topic_factory,
                                                                     tmp_path):
    kafka, settings = topics_config(topic_factory, kafka_bootstrap)
    for kind in INPUTS:
        produce(kafka_bootstrap, settings.topic(kind), (scenario / f"{kind}.jsonl").read_bytes().splitlines())
    import yaml

    raw = yaml.safe_load((ROOT / "examples" / "fraud.yaml").read_text())
    base = parse_config({**raw, "adjustments": ADJUSTMENTS}, base_dir=ROOT / "examples")
    config = parse_config({**raw, "adjustments": ADJUSTMENTS, "kafka": kafka}, base_dir=ROOT / "examples")
    run_main(build_kafka_flow(config, settings, RunOptions(tail=False)))

    replay(base, {k: scenario / f"{k}.jsonl" for k in INPUTS}, tmp_path)
    want_alerts = [orjson.loads(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    got_alerts = consume_all(kafka_bootstrap, settings.topic("alerts"))

    def alert_key(a: dict) -> tuple:
        return (a["id"], a["state"], a["ts"], a["rule"], a["slo"], tuple(a["segment"].items()),
                (a.get("silenced") or {}).get("id"), a.get("silence_ended"), a.get("incident_id"),
                a.get("inhibited_by"))

    assert sorted(alert_key(a) for _, a, _ in got_alerts) == sorted(alert_key(a) for a in want_alerts)
    assert any(a.get("silenced") for a in want_alerts) and any(a.get("silence_ended") for a in want_alerts)
    for key, alert, _ in got_alerts:  # Kafka key = the SLO key, so one key's events stay in order
        assert key.decode() == "|".join((alert["model"], alert["slo"] or "",
                                         ",".join(f"{k}={v}" for k, v in alert["segment"].items())))

    # incidents: the same messages, byte for byte, and one incident's messages in order on its key
    want_incidents = (tmp_path / "incidents.jsonl").read_bytes().splitlines()
    got_incidents = consume_all(kafka_bootstrap, settings.topic("incidents"))
    assert len(want_incidents) > 0
    assert sorted(orjson.dumps(m) for _, m, _ in got_incidents) == sorted(orjson.dumps(orjson.loads(x))
                                                                        for x in want_incidents)
    seqs: dict[str, list[int]] = {}
    for key, m, _ in got_incidents:
        assert key.decode() == f"fraud|incident|{m['id']}"
        seqs.setdefault(m["id"], []).append(m["seq"])
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())

    # whole messages, every field (issue 15: the label join's counters, which depend on how far each
    # topic was read, were in the budget events; they are now a metric)
    def canonical(messages: list[dict]) -> list[bytes]:
        return sorted(orjson.dumps(m, option=orjson.OPT_SORT_KEYS) for m in messages)

    want_budget = [orjson.loads(line) for line in (tmp_path / "budget.jsonl").read_bytes().splitlines()]
    assert {a["effect"] for b in want_budget for a in b.get("adjustments", ())} == {"silence", "exclude", "scale"}
    got_budget = consume_all(kafka_bootstrap, settings.topic("budget"))
    assert canonical([b for _, b, _ in got_budget]) == canonical(want_budget)
    assert canonical([a for _, a, _ in got_alerts]) == canonical(want_alerts)

    dead = consume_all(kafka_bootstrap, settings.topic("dead_letter"))
    want_dead = [orjson.loads(line) for line in (tmp_path / "dead_letter.jsonl").read_bytes().splitlines()]
    assert len(dead) == len(want_dead) > 0
    renamed = {settings.topic(k): base.topics[k] for k in INPUTS}  # only the topic names differ
    assert canonical([{**d, "topic": renamed[d["topic"]]} for _, d, _ in dead]) == canonical(want_dead)
    for _, message, headers in dead:
        h = dict(headers)
        assert h["__connect.errors.topic"] == settings.topic("inference").encode()
        assert h["__connect.errors.offset"] == str(message["offset"]).encode()
        assert h["__connect.errors.exception.message"].decode() == message["error"]


def test_bad_input_on_the_topics_lands_in_the_dead_letter_topic_and_the_flow_runs_on(kafka_bootstrap, topic_factory):
    kafka, settings = topics_config(topic_factory, kafka_bootstrap)
    good = orjson.dumps({"id": "a", "model": "fraud", "version": "v", "ts": 1767225600.0, "status": "ok",
                         "latency_ms": 3.0})
    bad = [b"{not json", b'{"id":"b","model":"fraud","version":"v","ts":"yesterday","status":"ok","latency_ms":1}',
           b'{"id":"c","model":"nobody","version":"v","ts":1767225600,"status":"ok","latency_ms":1}', b"", good]
    produce(kafka_bootstrap, settings.topic("inference"), [good, *bad])
    config = parse_config({"kafka": kafka, "models": {"fraud": {}}, "slos": [
        {"name": "a", "model": "fraud", "dimension": "infrastructure", "sli": "availability", "objective": 0.99,
         "window": "1d"}]})
    run_main(build_kafka_flow(config, settings, RunOptions(tail=False)))
    dead = consume_all(kafka_bootstrap, settings.topic("dead_letter"))
    reasons = sorted(m["error"].split(":")[0] for _, m, _ in dead)
    assert reasons == ["duplicate", "malformed JSON", "malformed JSON", "model", "ts"]
    assert sorted(msgspec.convert(m, type=DeadLetter).stage for _, m, _ in dead) == ["dedupe", *["parse"] * 4]


def test_the_frontier_holds_event_time_at_the_slowest_source_with_unread_messages():
    f = SourceFrontier(["a#0", "b#0"])
    assert f.watermark() == float("-inf")  # an expected source has not spoken: no tick may run
    f.update("a#0", 100.0, caught_up=False)
    assert f.watermark() == float("-inf")
    f.update("b#0", 40.0, caught_up=False)
    assert f.watermark() == 40.0
    f.update("b#0", float("-inf"), caught_up=True)
    assert f.watermark() == 100.0 and not f.all_caught_up()
    f.update("a#0", 120.0, caught_up=True)
    assert f.watermark() == 120.0 and f.all_caught_up() and f.newest() == 120.0


def test_the_sink_fails_loudly_when_the_broker_is_unreachable():
    settings = KafkaSettings.from_mapping({"bootstrap_servers": "127.0.0.1:1", "client": {"message.timeout.ms": 2000}},
                                          env={})
    part = KafkaJsonSink(settings, "x", retries=1, flush_timeout_s=3).build("s", 0, 1)
    with pytest.raises(RuntimeError, match="could not deliver 1 messages"):
        part.write_batch([("k", {"a": 1})])
