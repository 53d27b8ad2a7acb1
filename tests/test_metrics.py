"""Prometheus metrics of a flow: counts and gauges match what the flow wrote, and are served over HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import orjson
from bytewax.testing import run_main
from prometheus_client import CollectorRegistry

from connectors.broker import free_port
from connectors.files import JsonlReplaySource, JsonlSink
from flows.metrics import FlowMetrics, reason_class, serve
from flows.slo_flow import Sinks, build_flow
from sloguard.config import load_config
from sloguard.scenarios import plan, write_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_metrics_count_what_the_flow_read_and_wrote(tmp_path):
    data = tmp_path / "in"
    write_scenario(plan("fraud", events=50_000, seed=2), data)
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry)
    out = tmp_path / "out"
    sinks = Sinks(*(JsonlSink(out / f"{n}.jsonl") for n in ("budget", "alerts", "dead_letter")))
    inputs = {k: data / f"{k}.jsonl" for k in ("inference", "labels", "features")}
    config = load_config(ROOT / "examples" / "fraud.yaml")
    run_main(build_flow(config, JsonlReplaySource(inputs), sinks, sources=tuple(inputs), metrics=metrics))

    def value(name: str, **labels: str) -> float:
        got = registry.get_sample_value(name, labels)
        assert got is not None, (name, labels)
        return got

    lines = {k: len(p.read_bytes().splitlines()) for k, p in inputs.items()}
    assert value("sloguard_events_in_total", topic="inference") == lines["inference"]
    outputs = {n: [orjson.loads(x) for x in (out / f"{n}.jsonl").read_bytes().splitlines()]
               for n in ("budget", "alerts", "dead_letter")}
    assert value("sloguard_outputs_total", kind="budget") == len(outputs["budget"])
    assert value("sloguard_outputs_total", kind="alert") == len(outputs["alerts"])
    dead = outputs["dead_letter"]
    for reason in {reason_class(d["error"]) for d in dead}:
        want = sum(1 for d in dead if reason_class(d["error"]) == reason)
        assert value("sloguard_dead_letters_total", model="fraud", reason=reason) == want
    last = {}
    for b in outputs["budget"]:
        last[(b["slo"], tuple(b["segment"].items()))] = b
    b = last[("fraud-availability", ())]
    assert value("sloguard_budget_remaining", slo="fraud-availability", model="fraud", segment="all",
                 dimension="infrastructure") == b["budget_remaining"]
    assert value("sloguard_burn_rate", slo="fraud-availability", model="fraud", segment="all",
                 window="1h") == b["burn_rates"]["1h"]
    latest = {}
    for a in outputs["alerts"]:  # the last transition of each alert decides its gauge
        latest[a["id"]] = a
    assert latest
    for a in latest.values():
        segment = ",".join(f"{k}={v}" for k, v in a["segment"].items()) or "all"
        assert value("sloguard_alerts_firing", slo=a["slo"] or "", model="fraud", rule=a["rule"],
                     severity=a["severity"], segment=segment) == float(a["state"] == "firing")


def test_metrics_are_served_for_prometheus():
    metrics = FlowMetrics(CollectorRegistry())
    metrics.set_lag("ml.inference", 0, 42)
    port = free_port()
    serve(metrics, port, host="127.0.0.1")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'sloguard_consumer_lag{partition="0",topic="ml.inference"} 42.0' in body
