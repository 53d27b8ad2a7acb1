"""Canary rollouts end to end on a real broker: inference -> the Kafka flow -> the controller.

Three models serve a stable version (v1) and a canary (v2) for 40 minutes of event time. The flow
(`sloguard.apps.run`, segments ``[region, variant]``) turns the inference events into budget and
alert events on Kafka; the controller (`sloguard.connectors.controller`) consumes those topics and
publishes its decisions, and its HTTP gate answers from the same state:

* ``fraud``: the canary fails 3 % of its requests, stable 0.02 %: rollback, with p < 0.05;
* ``recsys``: the canary is as healthy as stable, with 2,000 requests: promote;
* ``ranker``: the canary is healthy but has served only 200 requests: hold, never promote.

The traffic is deterministic (errors and slow requests at fixed strides), so the budgets, the
alerts and the decisions are the same on every run.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from sloguard.apps.run import INPUTS, RunOptions, build_kafka_flow
from sloguard.connectors.audit import AuditLog
from sloguard.connectors.controller import Controller
from sloguard.connectors.controller_settings import ControllerSettings
from sloguard.connectors.gate import Gate, GateServer
from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.core.rollout.spec import parse_rollout
from sloguard.core.spec.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "rollout_decision.schema.json").read_text())
pytestmark = pytest.mark.kafka

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SPAN_S = 40 * 60.0
EVENTS = 20_000  # per model
TOKEN = "e2e-token"
#: model -> (one canary request in every N, one canary error in every M canary requests or None)
MODELS = {"fraud": (10, 33), "recsys": (10, None), "ranker": (100, None)}
EXPECTED = {"fraud": "rollback", "recsys": "promote", "ranker": "hold"}


def inference(model: str, canary_every: int, canary_error_every: int | None) -> list[bytes]:
    """Deterministic traffic: stable errs once in 5,000 requests; one request in 1,000 of each
    variant takes 150 ms (the latency SLO's threshold is 100 ms)."""
    out, n_stable, n_canary = [], 0, 0
    for i in range(EVENTS):
        canary = i % canary_every == 0
        if canary:
            n_canary += 1
            n = n_canary
            failed = canary_error_every is not None and n_canary % canary_error_every == 0
        else:
            n_stable += 1
            n = n_stable
            failed = n_stable % 5_000 == 0
        ts = START + i * SPAN_S / EVENTS
        latency = 2.0 if failed else (150.0 if n % 1_000 == 500 else 20.0 + (i * 7) % 60)
        out.append(orjson.dumps({
            "id": f"{model}-{i}", "model": model, "version": "v2" if canary else "v1", "ts": ts,
            "status": "error" if failed else "ok", "latency_ms": latency,
            "prediction": None if failed else i % 2, "score": None if failed else 0.5,
            "segment": {"region": "eu" if i % 2 else "us"}, "features": {}, "feature_ts": ts - 60,
            "variant": "canary" if canary else "stable",
        }))  # fmt: skip
    return out


def config_dict(kafka: dict[str, Any]) -> dict[str, Any]:
    slos = []
    for m in MODELS:
        slos.append({"name": f"{m}-availability", "model": m, "dimension": "infrastructure", "sli": "availability",
                     "objective": 0.999, "window": "30d"})
        slos.append({"name": f"{m}-latency", "model": m, "dimension": "infrastructure",
                     "sli": {"latency": {"threshold_ms": 100}}, "objective": 0.99, "window": "30d"})
    return {
        "kafka": kafka,
        "evaluation_interval": "1m",
        "allowed_lateness": "1m",
        # the models' events come one model after another on one partition, so the later ones look silent
        # until their turn and page no-data; without a resolve hold that page resolves before the input ends
        "alerting": {"policy": "sre-workbook", "min_events": 100, "resolve_hold": 0},
        "models": {m: {"segments": ["region", "variant"], "no_data_after": "10m"} for m in MODELS},
        "owners": {"infrastructure": {"route": "sre", "actions": ["roll back the canary"]}},
        "slos": slos,
    }


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def gate(port: int, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn.request("GET" if body is None else "POST", path, body=None if body is None else orjson.dumps(body),
                 headers=headers)
    resp = conn.getresponse()
    status, payload = resp.status, orjson.loads(resp.read())
    conn.close()
    return status, payload


@pytest.fixture
def decisions(kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Run the flow over the generated traffic, then the controller over the flow's output.

    Yields ``{"latest": model -> newest decision message, "all": every message, "port": gate port,
    "controller": the Controller}`` once every model has a decision.
    """
    names = {k: topic_factory(f"e2e-{k}") for k in (*INPUTS, "budget", "alerts", "dead_letter", "decisions")}
    kafka = {"bootstrap_servers": kafka_bootstrap, "topics": names}
    config = parse_config(config_dict(kafka))
    settings = KafkaSettings.from_mapping(kafka, env={})
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for model, (canary_every, errors) in MODELS.items():
        for line in inference(model, canary_every, errors):
            producer.produce(names["inference"], line)
            producer.poll(0)
    assert producer.flush(30) == 0

    run_main(build_kafka_flow(config, settings, RunOptions(tail=False)))  # drains the input, then returns

    spec = parse_rollout({"canary": {"slos": [f"{m}-{s}" for m in MODELS for s in ("availability", "latency")],
                                     "min_samples": 500, "lookback": "1h"}}, config)
    controller = Controller(
        config, spec,
        ControllerSettings(group_id=f"e2e-{names['budget']}", tokens=(TOKEN,), clock="event", evaluate_every_s=0.3),
        settings, session_timeout_ms=6000,
    )  # fmt: skip
    audit = AuditLog(tmp_path / "audit.jsonl")
    server = GateServer(Gate(controller.shared, (TOKEN,), audit), port=0).start()
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "e2e-reader", "enable.auto.commit": False})
    reader.assign([TopicPartition(names["decisions"], 0, OFFSET_BEGINNING)])

    def read() -> None:
        while not stop.is_set():
            seen.extend(orjson.loads(m.value()) for m in reader.consume(100, timeout=0.1) if m.error() is None)

    threads = [threading.Thread(target=read, daemon=True), threading.Thread(target=controller.run, daemon=True)]
    for t in threads:
        t.start()
    try:

        def settled() -> dict[str, Any] | None:
            latest = {d["model"]: d for d in list(seen)}
            return latest if {m: d["decision"] for m, d in latest.items()} == EXPECTED else None

        try:
            latest = wait_for(settled, 45, f"decisions {EXPECTED}")
        except AssertionError as e:  # say what was decided instead
            got = {d["model"]: (d["decision"], d["reasons"][:4]) for d in list(seen)}
            raise AssertionError(f"{e}; got {got}, controller {controller.counters}") from None
        yield {"latest": latest, "all": list(seen), "port": server.port, "controller": controller}
    finally:
        controller.stop()
        stop.set()
        for t in threads:
            t.join(15)
        reader.close()
        server.stop()
        audit.close()


def test_the_controller_judges_canaries_from_the_flows_budgets_and_alerts(decisions: dict[str, Any]) -> None:
    latest = decisions["latest"]
    for message in decisions["all"]:
        jsonschema.validate(message, SCHEMA)
        assert message["version"] == "v2" and message["stable_version"] == "v1"

    # the canary that errs: rolled back, and the reasons carry the two-proportion test at p < 0.05
    fraud = latest["fraud"]
    assert fraud["result"] == -1 and fraud["allow"] is False
    worse = [r for r in fraud["reasons"] if "canary is worse" in r]
    assert worse and all("< 0.05: canary is worse: roll back" in r for r in worse)
    assert any(r.startswith("fraud-availability: canary bad rate 3") for r in worse)
    (availability,) = [c for c in fraud["canary"] if c["slo"] == "fraud-availability"]
    assert availability["verdict"] == "fail" and availability["p_value"] < 0.05
    assert availability["canary"]["bad_rate"] > 0.025 > 0.001 > availability["stable"]["bad_rate"]
    # the flow's own alert on the canary's segment is a hard stop the canary does not share with stable
    own = [c for c in fraud["checks"] if c["code"].startswith("page:") and "variant=canary" in c["message"]]
    assert own and all(c["outcome"] == "rollback" for c in own)

    # the healthy canary with enough traffic: promoted, on fresh whole-model budgets and a passing comparison
    recsys = latest["recsys"]
    assert recsys["result"] == 1 and recsys["reasons"] == []
    assert [c["verdict"] for c in recsys["canary"]] == ["pass", "pass"]
    assert all(c["canary"]["total"] >= 500 and c["p_value"] >= 0.05 for c in recsys["canary"])
    assert {b["status"] for b in recsys["budgets"].values()} == {"ok"}

    # too little canary traffic: hold, never promote
    ranker = latest["ranker"]
    assert ranker["result"] == 0 and ranker["reasons"]
    # all 200 of its requests: the last partial minute is judged at the end of the input too
    assert all(re.search(r"only 200 canary events over 1h, need 500 per variant", r) for r in ranker["reasons"])
    assert "promote" not in {d["decision"] for d in decisions["all"] if d["model"] == "ranker"}

    # the gate answers deployment tools from the same state
    port = decisions["port"]
    for model, want in EXPECTED.items():
        status, body = gate(port, f"/v1/gate/{model}/canary")
        assert status == 200 and body["version"] == "v2" and body["decision"] == want
    flagger = {"name": "recsys", "namespace": "ml", "phase": "Progressing", "metadata": {"version": "v2"}}
    assert gate(port, "/v1/flagger/gate", flagger)[0] == 200
    assert gate(port, "/v1/flagger/gate", {**flagger, "name": "ranker"})[0] == 403
    assert gate(port, "/v1/flagger/rollback", {**flagger, "name": "fraud"})[0] == 200
    assert decisions["controller"].counters["invalid"] == 0
