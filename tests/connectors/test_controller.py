"""The rollout controller end to end: a real broker, the Kafka loop, and the HTTP gate.

One controller serves four models, each a scenario: ``fraud``'s canary errs more (rollback with
p < 0.05), ``recsys``'s canary has too little traffic (hold), ``ranker``'s canary has healthy
budgets but a firing fairness page (rollback, then promote once it resolves), and ``scorer``
promotes only thanks to an override that expires while the test watches (then holds).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import orjson
import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rollout_factories import alert, as_sent, budget, canary_pair, config_dict, healthy, make_config, make_spec

from sloguard.connectors.audit import AuditLog
from sloguard.connectors.controller import Controller
from sloguard.connectors.controller_settings import ControllerSettings, load_controller_config
from sloguard.connectors.gate import Gate, GateServer, SharedState
from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.core.messages.outputs import DeadLetter, Decision
from sloguard.core.rollout.policy import RolloutState
from sloguard.core.rollout.spec import parse_rollout
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.timeutil import to_rfc3339

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "rollout_decision.schema.json").read_text())
TOKEN = "s3cret-token"
OVERRIDE_S = 20.0  # long enough for a loaded CI machine to judge scorer before it expires


@dataclass
class Env:
    base: str
    port: int
    producer: Producer
    topics: dict[str, str]
    decisions: list[Any]
    audit: Path
    controller: Controller
    override_expires: float

    def send(self, topic: str, events: list[dict[str, Any]] | list[bytes]) -> None:
        for e in events:
            value = e if isinstance(e, bytes) else orjson.dumps(as_sent(e))
            self.producer.produce(self.topics[topic], value=value)
        assert self.producer.flush(10) == 0


def _strict(raw: bytes) -> Any:
    """json.loads that refuses NaN/Infinity: Argo's Go JSON decoder would."""

    def bad(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(raw, parse_constant=bad)


def request(
    env: Env, method: str, path: str, *, token: str | None = TOKEN, body: Any = None, raw: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    assert resp.getheader("Content-Type") == "application/json"
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, _strict(payload)


def flagger(model: str, version: str, **meta: str) -> dict[str, Any]:
    """The body Flagger posts to a webhook."""
    return {
        "name": f"{model}-canary",
        "namespace": "ml",
        "phase": "Progressing",
        "checksum": "6d5f8c",
        "metadata": {"model": model, "version": version, **meta},
    }


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or pred}")


def decisions_of(env: Env, model: str) -> list[dict[str, Any]]:
    mine = [m.value() for m in list(env.decisions) if m.key() == model.encode()]
    for raw in mine:  # every published decision is a messages.Decision (unknown fields forbidden)
        msgspec.json.decode(raw, type=Decision)
    return [orjson.loads(raw) for raw in mine]


def latest(env: Env, model: str, decision: str) -> dict[str, Any] | None:
    mine = decisions_of(env, model)
    return mine[-1] if mine and mine[-1]["decision"] == decision else None


@pytest.fixture
def env(kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path) -> Iterator[Env]:
    topics = {k: topic_factory(f"ctl-{k}") for k in ("budget", "alerts", "decisions", "dead_letter")}
    config = make_config(kafka={"bootstrap_servers": kafka_bootstrap, "topics": topics})
    now = time.time()
    expires = now + OVERRIDE_S
    spec = parse_rollout(
        {
            "canary": {"min_samples": 1000},
            "overrides": [
                {
                    "model": "scorer",
                    "effect": "allow",
                    "dimensions": ["infrastructure"],
                    "reason": "hotfix INC-7, approved by the on-call lead",
                    "expires": to_rfc3339(expires),
                }
            ],
        },
        config,
    )
    settings = ControllerSettings(
        group_id=f"ctl-{topics['budget']}", tokens=(TOKEN,), audit_log=tmp_path / "audit.jsonl", evaluate_every_s=0.3
    )
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topics=config.topics)
    controller = Controller(config, spec, settings, kafka, session_timeout_ms=6000)
    audit = AuditLog(settings.audit_log)
    server = GateServer(Gate(controller.shared, settings.tokens, audit), port=0).start()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 2})

    # the decisions topic, read from the start by a plain assign() consumer in the background
    seen: list[Any] = []
    stop = threading.Event()
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "ctl-reader", "enable.auto.commit": False})
    reader.assign([TopicPartition(topics["decisions"], 0, OFFSET_BEGINNING)])

    def read() -> None:
        while not stop.is_set():
            for m in reader.consume(100, timeout=0.1):
                if m.error() is None:
                    seen.append(m)

    threads = [threading.Thread(target=read, daemon=True), threading.Thread(target=controller.run, daemon=True)]
    e = Env(server.url, server.port, producer, topics, seen, settings.audit_log, controller, expires)
    # every scenario's events go in before the controller starts: it reads from the beginning
    e.send("budget", scenario_events(now))
    e.send("alerts", [alert("ranker", "v2", dimension="fairness", ts=now)])
    for t in threads:
        t.start()
    try:
        yield e
    finally:
        controller.stop()
        stop.set()
        for t in threads:
            t.join(15)
        reader.close()
        server.stop()
        audit.close()


def scenario_events(now: float) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for model in ("fraud", "recsys", "ranker", "scorer"):
        events += healthy(model, "v2", ts=now) + healthy(model, "v1", ts=now)
    events += canary_pair("fraud", "v2", "v1", canary_bad=60, canary_total=10_000, ts=now)  # 0.6 % vs 0.02 %
    events += canary_pair("recsys", "v2", "v1", canary_bad=0, canary_total=50, ts=now)  # 50 requests
    events += canary_pair("ranker", "v2", "v1", ts=now)
    events += canary_pair("scorer", "v2", "v1", ts=now)
    events.append(budget("scorer", "v2", "availability", remaining=0.3, ts=now))  # below the 50 % floor
    return events


@pytest.mark.kafka
def test_controller_publishes_decisions_and_serves_the_gate(env: Env) -> None:
    wait_for(lambda: len({m.key() for m in env.decisions}) == 4, 30, "a decision for each of the four models")

    # -- decisions on the topic: keyed by model, valid against the schema ----------------------
    for m in env.decisions:
        jsonschema.validate(orjson.loads(m.value()), SCHEMA)
    # a decision is published whenever it changes: one judged on a partial first fetch may come
    # first (a hold for missing data), so each model's final decision is waited for
    fraud = wait_for(lambda: latest(env, "fraud", "rollback"), 30, "fraud's rollback")
    assert fraud["version"] == "v2" and fraud["result"] == -1
    worse = [r for r in fraud["reasons"] if "canary is worse" in r]
    assert len(worse) == 3 and all("< 0.05" in r and "one-sided p = " in r for r in worse)
    assert all(c["p_value"] < 0.05 and c["verdict"] == "fail" for c in fraud["canary"])

    recsys = wait_for(lambda: latest(env, "recsys", "hold"), 30, "recsys's hold")
    assert all("only 50 canary events" in r and "need 1000" in r for r in recsys["reasons"])

    ranker = wait_for(lambda: latest(env, "ranker", "rollback"), 30, "ranker's rollback")
    assert len(ranker["reasons"]) == 1
    assert "fairness is a hard stop: roll back" in ranker["reasons"][0]
    assert all(b["status"] == "ok" for b in ranker["budgets"].values())  # budgets are healthy
    assert [c["verdict"] for c in ranker["canary"]] == ["pass"] * 3

    scorer = wait_for(lambda: latest(env, "scorer", "promote"), 30, "scorer's promotion")
    assert scorer["overrides"][0]["reason"] == "hotfix INC-7, approved by the on-call lead"
    assert "fraud" not in json.dumps(scorer["overrides"]) and len(scorer["overrides"][0]["waived"]) == 1

    # -- auth ---------------------------------------------------------------------------------
    status, headers, body = request(env, "GET", "/v1/gate/fraud/v2", token=None)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer") and body["allow"] is False
    assert request(env, "GET", "/v1/gate/fraud/v2", token="wrong")[0] == 401
    assert request(env, "POST", "/v1/flagger/gate", token=None, body=flagger("fraud", "v2"))[0] == 401
    assert request(env, "GET", "/healthz", token=None)[:3:2] == (200, {"status": "ok"})
    assert request(env, "GET", "/readyz", token=None)[0] == 200

    # -- Argo Rollouts web metric: always 200 JSON, jsonPath {$.decision} -> conditions ---------
    argo = {"promote": "Successful", "hold": "Inconclusive", "rollback": "Failed"}
    status, _, body = request(env, "GET", "/v1/gate/fraud/v2")
    assert status == 200 and argo[body["decision"]] == "Failed" and body["result"] == -1 and not body["allow"]
    assert body["reasons"] == fraud["reasons"]
    status, _, body = request(env, "GET", "/v1/gate/recsys/v2")
    assert status == 200 and argo[body["decision"]] == "Inconclusive" and body["result"] == 0
    status, _, body = request(env, "GET", "/v1/gate/ranker/canary")  # the current canary version
    assert status == 200 and body["version"] == "v2" and body["decision"] == "rollback"
    assert request(env, "GET", "/v1/gate/nope/v1")[0] == 404
    assert request(env, "POST", "/v1/gate/fraud/v2", body={})[0] == 405

    # -- Flagger webhooks: only 200-202 count as success ----------------------------------------
    status, _, body = request(env, "POST", "/v1/flagger/gate", body=flagger("fraud", "v2"))
    assert status == 403 and body["decision"] == "rollback" and body["reasons"] and body["allow"] is False
    status, _, body = request(env, "POST", "/v1/flagger/rollback", body=flagger("fraud", "v2"))
    assert status == 200 and body["allow"] is True  # rollback hook: 2xx means roll back now
    status, _, body = request(env, "POST", "/v1/flagger/check", body=flagger("recsys", "v2"))
    assert status == 200 and body["decision"] == "hold"  # not failing, just not enough data
    assert request(env, "POST", "/v1/flagger/gate", body=flagger("recsys", "v2"))[0] == 403  # never promoted
    assert request(env, "POST", "/v1/flagger/rollback", body=flagger("recsys", "v2"))[0] == 403
    assert request(env, "POST", "/v1/flagger/check", body=flagger("fraud", "v2"))[0] == 403
    # Flagger cannot send headers: the token may come in the metadata
    status, _, body = request(env, "POST", "/v1/flagger/gate", token=None, body=flagger("fraud", "v2", token=TOKEN))
    assert status == 403 and body["decision"] == "rollback"
    assert request(env, "POST", "/v1/flagger/gate", raw=b"{not json")[0] == 400
    assert request(env, "POST", "/v1/flagger/gate", body={"metadata": {"model": "nope"}})[0] == 404

    # -- a resolved page lets ranker through; the change is published ---------------------------
    env.send("alerts", [alert("ranker", "v2", dimension="fairness", state="resolved", ts=time.time())])
    wait_for(lambda: latest(env, "ranker", "promote"), what="ranker promoted after the page resolved")
    status, _, body = request(env, "POST", "/v1/flagger/gate", body=flagger("ranker", "v2"))
    assert status == 200 and body["decision"] == "promote" and body["allow"] is True

    # -- the override expires: scorer goes back to hold, without an override --------------------
    assert request(env, "GET", "/v1/gate/scorer/v2")[2]["decision"] in ("promote", "hold")
    held = wait_for(lambda: latest(env, "scorer", "hold"), OVERRIDE_S + 10, "scorer held after the expiry")
    assert time.time() >= env.override_expires
    assert held["overrides"] == [] and held["reasons"] == [
        "scorer-availability (infrastructure) has 30% of its error budget left, below the 50% required to roll out"
    ]
    status, _, body = request(env, "GET", "/v1/gate/scorer/v2")
    assert status == 200 and body["decision"] == "hold" and body["overrides"] == []

    # -- garbage on the input topics is dead-lettered, not fatal ----------------------------------
    # ... and every budget is read as the flow's Budget type: a wrong type is refused with its path
    mistyped = as_sent({**budget("fraud", "v2", "availability", ts=time.time()), "burn_rates": {"1h": "fast"}})
    env.send("budget", [b"{not json", orjson.dumps({"type": "budget", "model": "fraud"}), orjson.dumps(mistyped)])
    letters = read_all(env, "dead_letter", 3)
    assert {json.loads(m.value())["topic"] for m in letters} == {env.topics["budget"]}
    assert {msgspec.json.decode(m.value(), type=DeadLetter).stage for m in letters} == {"controller"}
    errors = [json.loads(m.value())["error"] for m in letters]
    assert "slo: required field missing" in errors and "burn_rates[...]: expected float, got str" in errors
    assert env.controller.counters["invalid"] == 3

    # -- the audit log has every decision served, and every refusal ------------------------------
    entries = [json.loads(line) for line in env.audit.read_text().splitlines()]
    refused = [e for e in entries if e["status"] == 401]
    served = [e for e in entries if "decision" in e]
    assert len(refused) == 3 and all(e["refused"] for e in refused)
    assert {e["endpoint"] for e in served} == {"argo", "flagger-gate", "flagger-check", "flagger-rollback"}
    assert all(e["model"] and e["version"] and e["reasons"] is not None for e in served)
    gate_calls = [e for e in served if e["endpoint"] == "flagger-gate" and e["model"] == "fraud"]
    assert gate_calls[0]["caller"] == {"name": "fraud-canary", "namespace": "ml", "phase": "Progressing",
                                       "checksum": "6d5f8c"}  # fmt: skip


def read_all(env: Env, topic: str, n: int, timeout: float = 15) -> list[Any]:
    c = Consumer({"bootstrap.servers": env.controller.kafka.bootstrap_servers, "group.id": "x"})
    c.assign([TopicPartition(env.topics[topic], 0, OFFSET_BEGINNING)])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += [m for m in c.consume(100, timeout=0.2) if m.error() is None]
    c.close()
    return got


def test_gate_refuses_to_run_without_a_token() -> None:
    shared = SharedState(RolloutState(make_spec()))
    with pytest.raises(ValueError, match="token"):
        Gate(shared, [], AuditLog(None))
    gate = Gate(shared, ["a", "b"], AuditLog(None))
    assert gate.authorized("Bearer b") and gate.authorized("bearer a") and not gate.authorized("Bearer c")
    assert not gate.authorized("Basic a") and not gate.authorized(None) and not gate.authorized("Bearer ")
    assert Gate(shared, [], AuditLog(None), auth="none").authorized(None)


def test_load_controller_config_reads_the_rollout_section(tmp_path: Path) -> None:
    data = config_dict()
    data["rollout"] = {
        "policy": {"min_budget_remaining": {"infrastructure": 0.6}},
        "controller": {"listen": "0.0.0.0:9090", "token_file": "token", "audit_log": "audit/gate.jsonl"},
    }
    (tmp_path / "token").write_text("# rotated 2026-01\nold-token\nnew-token\n")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    config, spec, settings, kafka = load_controller_config(path, env={"SLOGUARD_GATE_TOKEN": "env-token"})
    assert spec.policy.min_budget_remaining == {"infrastructure": 0.6}
    assert (settings.host, settings.port) == ("0.0.0.0", 9090)
    assert settings.tokens == ("env-token", "old-token", "new-token")
    assert settings.audit_log == tmp_path / "audit/gate.jsonl"
    assert "env-token" not in repr(settings.redacted())
    assert kafka.is_embedded and set(config.models) == {"fraud", "recsys", "ranker", "scorer"}

    data["rollout"]["controller"] = {"listen": "nowhere", "clock": "sundial"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as e:
        load_controller_config(path, env={})
    assert {p.split(":")[0] for p in e.value.problems} == {"rollout.controller.listen", "rollout.controller.clock"}


def run_for(controller: Controller, until: Callable[[], Any], timeout: float = 20) -> None:
    """Run the controller's loop in a thread until ``until()`` holds, then stop it."""
    t = threading.Thread(target=controller.run, daemon=True)
    t.start()
    try:
        wait_for(until, timeout, "the controller")
    finally:
        controller.stop()
        t.join(15)


@pytest.mark.kafka
def test_restarts_keep_firing_pages_with_or_without_a_snapshot(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topics = {k: topic_factory(f"ctl-{k}") for k in ("budget", "alerts", "decisions", "dead_letter")}
    config = make_config(kafka={"bootstrap_servers": kafka_bootstrap, "topics": topics})
    spec = parse_rollout({}, config)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topics=config.topics)
    group = f"ctl-restart-{topics['budget']}"
    snap = tmp_path / "state.json"

    def make(state_path: Path | None) -> Controller:
        settings = ControllerSettings(group_id=group, tokens=(TOKEN,), state_path=state_path, evaluate_every_s=0.2)
        return Controller(config, spec, settings, kafka, session_timeout_ms=6000)

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    now = time.time()
    for e in (
        healthy("ranker", "v2", ts=now) + healthy("ranker", "v1", ts=now) + canary_pair("ranker", "v2", "v1", ts=now)
    ):
        producer.produce(topics["budget"], value=orjson.dumps(as_sent(e)))
    producer.produce(topics["alerts"], value=orjson.dumps(as_sent(alert("ranker", "v2", dimension="fairness", ts=now))))
    assert producer.flush(10) == 0

    def decide(c: Controller) -> str:
        with c.shared.lock:
            return c.shared.state.decide("ranker", "v2", time.time()).decision

    sent = len(healthy("ranker", "v2", ts=now)) * 2 + len(canary_pair("ranker", "v2", "v1", ts=now)) + 1
    first = make(snap)
    # every message folded (a first fetch may return only some); stopping commits what is pending
    run_for(first, lambda: first.counters["events"] >= sent and first.counters["decisions"] >= 1
            and first.counters["commits"] >= 1)
    assert decide(first) == "rollback" and snap.exists()

    # with the snapshot: the state is back before any message, and nothing is re-published
    second = make(snap)
    assert second.restored and decide(second) == "rollback"
    run_for(second, lambda: second.assigned and time.sleep(0.5) is None)
    assert second.counters["decisions"] == 0

    # without one: committed budgets are not re-read, but the alerts topic is, so the page holds.
    # What the group committed decides which budgets are re-read (usually none; a rebalance under
    # load can cost a commit). Each assignment re-reads the alerts topic from its start, and a
    # loaded machine may assign more than once, so what is counted is the budgets the state holds.
    uncommitted = sent - 1 - _committed(kafka_bootstrap, group, topics["budget"])  # the budgets not committed
    third = make(None)
    assert decide(third) == "hold"  # knows nothing yet
    run_for(third, lambda: third.shared.state.alerts and third.counters["events"] >= uncommitted + 1)
    assert [a.dimension for a in third.shared.state.alerts.values()] == ["fairness"]
    budgets_known = sum(len(b) for b in third.shared.state.budgets.values())
    assert budgets_known <= uncommitted, (uncommitted, first.counters, second.counters, third.counters)


def _committed(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset of `topic`'s one partition (0 when none): the next message a
    restart reads (the topic holds only the test's messages, from offset 0)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=10)
        return max(tp.offset, 0)
    finally:
        c.close()


def test_a_live_stream_a_few_messages_behind_is_judged_but_a_backlog_is_not() -> None:
    """While the flow keeps writing, the controller is always a little behind: it must still judge."""

    class Part:
        def __init__(self, offset: int, low: int, high: int) -> None:
            self.offset, self.low, self.high = offset, low, high

    class FakeConsumer:
        def __init__(self, *parts: Part) -> None:
            self.parts = list(parts)

        def assignment(self) -> list[Part]:
            return self.parts

        def position(self, parts: list[Part]) -> list[Part]:
            return parts

        def get_watermark_offsets(self, part: Part, timeout: float, cached: bool) -> tuple[int, int]:
            return part.low, part.high

    config = make_config()
    controller = Controller(config, make_spec(), ControllerSettings(tokens=(TOKEN,)),
                            KafkaSettings(bootstrap_servers="127.0.0.1:1", topics=config.topics))
    assert not controller._lagging(FakeConsumer(Part(900, 0, 1000), Part(40, 0, 45)))  # 105 behind
    assert not controller._lagging(FakeConsumer(Part(1000, 0, 1000)))
    assert controller._lagging(FakeConsumer(Part(0, 0, 4000), Part(10, 0, 2000)))  # 5990 behind: a backlog
    assert controller._lagging(FakeConsumer(Part(-1001, 0, 6000)))  # nothing read yet from a full partition


def test_the_audit_log_is_bounded_in_size_and_in_refusals(tmp_path):
    """Issue 15: unauthenticated requests grew the gate's audit log without bound."""
    from sloguard.connectors.audit import AuditLog

    now = [0.0]
    path = tmp_path / "audit" / "gate.jsonl"
    log = AuditLog(path, max_bytes=4096, backups=2, refusals_per_minute=10, clock=lambda: now[0])
    for i in range(100_000):  # an unauthenticated flood: one minute of event per 1,000 requests
        now[0] = i * 0.06
        log.write({"client": f"10.0.{i % 256}.{i // 256 % 256}", "refused": "missing or invalid bearer token"})
    log.close()
    log = AuditLog(path, max_bytes=4096, backups=2, refusals_per_minute=10, clock=lambda: now[0])
    files = sorted(tmp_path.joinpath("audit").iterdir())
    assert [f.name for f in files] == ["gate.jsonl", "gate.jsonl.1", "gate.jsonl.2"]
    assert all(f.stat().st_size <= 4096 for f in files)
    refused = [json.loads(line) for f in reversed(files) for line in f.read_text().splitlines()]
    # 1,000 requests a minute, 10 written: each minute's first line counts the 990 left out before it
    counts = [e["suppressed_refusals"] for e in refused if "suppressed_refusals" in e]
    assert len(refused) > 20 and counts and set(counts) == {990} and len(counts) >= len(refused) // 10 - 1
    for i in range(200):  # decisions served are always written, and the newest survive rotation
        log.write({"client": "ci", "endpoint": "argo", "decision": "promote", "n": i})
    log.close()
    newest = [json.loads(line) for line in path.read_text().splitlines()]
    assert newest[-1]["n"] == 199 and len(list(path.parent.iterdir())) == 3
