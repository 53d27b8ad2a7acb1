"""Prometheus metrics of a flow: counts and gauges match what the flow wrote, and are served over HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import orjson
from bytewax.testing import run_main
from prometheus_client import CollectorRegistry

from sloguard.connectors.broker import free_port
from sloguard.connectors.files import JsonlReplaySource, JsonlSink
from sloguard.core.spec.config import load_config
from sloguard.core.synth.scenarios import plan, write_scenario
from sloguard.flows.metrics import FlowMetrics, reason_class, rule_severities, serve
from sloguard.flows.slo_flow import Sinks, build_flow

ROOT = Path(__file__).resolve().parents[2]


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
    # the label join's counters depend on how far each input was read: a gauge, not a budget field
    assert not any("labels" in b for b in outputs["budget"])
    assert 0 < value("sloguard_label_store", model="fraud", counter="joined") <= lines["labels"]
    assert value("sloguard_label_store", model="fraud", counter="pending") >= 0
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


def budget_event(slo: str, segment: dict[str, str], minute: int, *, good: int = 0, total: int = 0,
                 firing: list[str] | None = None, dimension: str = "infrastructure") -> dict:
    """A budget event as the evaluator writes it, with the `counted` and `firing` fields."""
    event = {
        "type": "budget", "slo": slo, "dimension": dimension, "model": "fraud", "version": None,
        "segment": segment, "ts": f"2026-01-01T00:{minute:02d}:00.000Z", "sli": 0.99, "objective": 0.999,
        "window": "30d", "good": good, "total": total, "budget_remaining": 0.5,
        "burn_rates": {"1h": 2.0, "5m": 3.0}, "counted": {"good": good, "total": total},
    }
    if firing is not None:
        event["firing"] = firing
    return event


def test_slo_counters_add_up_what_each_tick_counted():
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry)
    rng = __import__("random").Random(5)
    want: dict[tuple[str, str], list[int]] = {}
    for minute in range(30):
        for slo, segment in (("fraud-availability", {}), ("fraud-availability", {"region": "eu"}),
                             ("fraud-latency", {})):
            total = rng.randrange(0, 500)
            good = rng.randrange(0, total + 1)
            metrics.observe_output("budget", budget_event(slo, segment, minute, good=good, total=total))
            seg = ",".join(f"{k}={v}" for k, v in segment.items()) or "all"
            acc = want.setdefault((slo, seg), [0, 0])
            acc[0] += good
            acc[1] += total
    for (slo, seg), (good, total) in want.items():
        labels = {"model": "fraud", "slo": slo, "dimension": "infrastructure", "segment": seg}
        assert registry.get_sample_value("sloguard_slo_good_total", labels) == good
        assert registry.get_sample_value("sloguard_slo_events_total", labels) == total


def test_alerts_firing_follows_the_budget_events_after_a_restart():
    config = load_config(ROOT / "examples" / "fraud.yaml")
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry, rule_severities(config))  # a fresh process: no transition seen

    def firing(rule: str, severity: str, segment: str = "region=eu") -> float | None:
        return registry.get_sample_value("sloguard_alerts_firing", {
            "slo": "fraud-availability", "model": "fraud", "segment": segment, "rule": rule, "severity": severity})

    metrics.observe_output("budget", budget_event("fraud-availability", {"region": "eu"}, 1,
                                                  firing=["fast-burn", "slow-burn"]))
    assert firing("fast-burn", "page") == 1.0
    assert firing("slow-burn", "ticket") == 1.0
    metrics.observe_output("budget", budget_event("fraud-availability", {"region": "eu"}, 2, firing=["slow-burn"]))
    assert firing("fast-burn", "page") == 0.0
    assert firing("slow-burn", "ticket") == 1.0
    assert firing("fast-burn", "page", segment="all") is None


def test_gauges_of_silent_keys_are_retired_and_counters_kept():
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry, retire_after_ticks=3)
    eu = {"slo": "fraud-availability", "model": "fraud", "segment": "region=eu"}
    for minute in range(3):
        metrics.observe_output("budget", budget_event("fraud-availability", {"region": "eu"}, minute,
                                                      good=9, total=10, firing=["fast-burn"]))
        metrics.observe_output("budget", budget_event("fraud-availability", {}, minute, good=1, total=1))
    for minute in range(3, 6):  # eu silent for 3 ticks: still shown
        metrics.observe_output("budget", budget_event("fraud-availability", {}, minute))
        assert registry.get_sample_value("sloguard_burn_rate", {**eu, "window": "1h"}) == 2.0
    metrics.observe_output("budget", budget_event("fraud-availability", {}, 6))  # the 4th silent tick
    assert registry.get_sample_value("sloguard_sli", eu) is None
    assert registry.get_sample_value("sloguard_burn_rate", {**eu, "window": "1h"}) is None
    assert registry.get_sample_value("sloguard_budget_remaining", {**eu, "dimension": "infrastructure"}) is None
    assert registry.get_sample_value("sloguard_alerts_firing",
                                     {**eu, "rule": "fast-burn", "severity": "unknown"}) is None
    whole = {"slo": "fraud-availability", "model": "fraud", "segment": "all"}
    assert registry.get_sample_value("sloguard_sli", whole) == 0.99
    assert registry.get_sample_value("sloguard_slo_events_total", {
        "model": "fraud", "slo": "fraud-availability", "dimension": "infrastructure", "segment": "region=eu"}) == 30
    metrics.observe_output("budget", budget_event("fraud-availability", {"region": "eu"}, 7))  # back again
    assert registry.get_sample_value("sloguard_sli", eu) == 0.99


def test_an_alert_no_budget_event_reports_is_not_retired():
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry, retire_after_ticks=2)
    no_data = {"type": "alert", "id": "x", "state": "firing", "severity": "page", "rule": "no-data", "slo": None,
               "model": "fraud", "segment": {}}
    labels = {"slo": "", "model": "fraud", "segment": "all", "rule": "no-data", "severity": "page"}
    metrics.observe_output("alert", no_data)
    for minute in range(5):
        metrics.observe_output("budget", budget_event("fraud-availability", {}, minute))
    assert registry.get_sample_value("sloguard_alerts_firing", labels) == 1.0
    metrics.observe_output("alert", {**no_data, "state": "resolved"})
    assert registry.get_sample_value("sloguard_alerts_firing", labels) == 0.0


def test_metrics_bind_loopback_by_default():
    import inspect

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    from sloguard.apps.cli import build_parser

    args = build_parser().parse_args(["run", "--config", "c.yaml", "--metrics-port", "9100"])
    assert args.metrics_address == "127.0.0.1"
