"""Prometheus metrics of a flow: counts and gauges match what the flow wrote, and are served over HTTP."""

from __future__ import annotations

import gzip
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from bytewax.testing import run_main
from factories import alert_message, budget_message
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from sloguard.connectors.broker import free_port
from sloguard.connectors.files import JsonlReplaySource, JsonlSink
from sloguard.core.evaluate.labels import EVICTED, EXPIRED, LabelStore
from sloguard.core.messages.outputs import Counted, dead_letter
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
    assert not [s for m in registry.collect() for s in m.samples if s.name == "sloguard_output_type_errors_total"]
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
                 firing: Sequence[str] = (), dimension: str = "infrastructure") -> dict:
    """A budget event of model `fraud` as the evaluator writes it (every field of `Budget`)."""
    return budget_message(slo=slo, dimension=dimension, model="fraud", segment=segment,
                          ts=f"2026-01-01T00:{minute:02d}:00.000Z", good=good, total=total,
                          events={"1h": total, "5m": total}, counted=Counted(good=good, total=total),
                          firing=list(firing))


def alert_event(rule: str, state: str, slo: str | None = "fraud-availability") -> dict:
    """An alert transition of model `fraud` (every field of `Alert`)."""
    return alert_message(id=f"{slo}-{rule}", rule=rule, state=state, slo=slo, model="fraud", budget_remaining=None)


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
    no_data = alert_event("no-data", "firing", slo=None)
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


def test_an_output_that_is_not_its_type_is_counted_and_sets_no_gauge(caplog):
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry)
    budget = budget_event("fraud-availability", {}, 1, good=9, total=10)
    renamed = {**{k: v for k, v in budget.items() if k != "burn_rates"}, "burn_rate": budget["burn_rates"]}
    missing = {k: v for k, v in budget.items() if k != "counted"}
    alert = {k: v for k, v in alert_event("fast-burn", "firing").items() if k != "severity"}
    dead = {"type": "dead_letter", "topic": "ml.inference", "partition": 0, "offset": 3, "stage": "parse",
            "reason": "id: missing", "payload": "{}", "payload_bytes": 2, "model": "fraud", "ts": None}
    with caplog.at_level("ERROR", logger="sloguard.flows.metrics"):
        for kind, message in (("budget", renamed), ("budget", missing), ("budget", renamed), ("alert", alert),
                              ("dead_letter", dead)):
            metrics.observe_output(kind, message)  # no exception: the metrics thread carries on
    errors = {k: registry.get_sample_value("sloguard_output_type_errors_total", {"kind": k})
              for k in ("budget", "alert", "dead_letter")}
    assert errors == {"budget": 3, "alert": 1, "dead_letter": 1}
    assert registry.get_sample_value("sloguard_outputs_total", {"kind": "budget"}) == 3
    said = "message does not match its type, no gauge set from it"
    assert [r.getMessage() for r in caplog.records] == [  # once per problem, naming the field
        f"budget {said}: burn_rates: required field missing",
        f"budget {said}: counted: required field missing",
        f"alert {said}: severity: required field missing",
        f"dead_letter {said}: message: object contains unknown field reason",  # one builder: exact fields
    ]
    for name in ("sloguard_sli", "sloguard_slo_events_total", "sloguard_alerts_firing", "sloguard_dead_letters_total"):
        assert not [s for m in registry.collect() for s in m.samples if s.name == name], name
    metrics.observe_output("budget", budget)  # the next good message is read as ever
    assert registry.get_sample_value("sloguard_sli", {"slo": "fraud-availability", "model": "fraud",
                                                      "segment": "all"}) == 0.99


def test_metrics_of_a_real_replay_s_outputs_are_what_its_messages_say():
    """The golden replay's budgets and alerts (tests/golden/), in the flow's order (a tick's budgets,
    then its alerts): counters add up `counted`, gauges hold each key's last budget event, and an
    alert fires as the last budget event of its key (or, for keys no budget reports, its last transition) says."""
    golden = ROOT / "tests" / "golden"
    read = {n: [orjson.loads(x) for x in gzip.decompress((golden / f"{n}.jsonl.gz").read_bytes()).splitlines()]
            for n in ("budget", "alerts")}
    assert read["budget"] and read["alerts"]
    stream = sorted([("budget", m) for m in read["budget"]] + [("alert", m) for m in read["alerts"]],
                    key=lambda km: km[1]["ts"])  # stable: budgets before the alerts of their tick
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry, {(a["slo"] or "", a["rule"]): a["severity"] for a in read["alerts"]},
                          retire_after_ticks=10**6)
    for kind, message in stream:
        metrics.observe_output(kind, message)
    assert not [s for m in registry.collect() for s in m.samples if s.name == "sloguard_output_type_errors_total"]
    sums: dict[tuple, list[float]] = {}
    last: dict[tuple, dict] = {}
    for b in read["budget"]:
        key = (b["slo"], ",".join(f"{k}={v}" for k, v in b["segment"].items()) or "all")
        acc = sums.setdefault((*key, b["dimension"]), [0.0, 0.0])
        acc[0] += b["counted"]["good"]
        acc[1] += b["counted"]["total"]
        last[key] = b
    for (slo, segment, dimension), (good, total) in sums.items():
        labels = {"model": "m", "slo": slo, "dimension": dimension, "segment": segment}
        assert registry.get_sample_value("sloguard_slo_good_total", labels) == pytest.approx(good)
        assert registry.get_sample_value("sloguard_slo_events_total", labels) == pytest.approx(total)
    for (slo, segment), b in last.items():
        labels = {"slo": slo, "model": "m", "segment": segment}
        assert registry.get_sample_value("sloguard_sli", labels) == b["sli"]
        assert registry.get_sample_value("sloguard_budget_remaining", {**labels, "dimension": b["dimension"]}) \
            == b["budget_remaining"]
        for window, rate in b["burn_rates"].items():
            assert registry.get_sample_value("sloguard_burn_rate", {**labels, "window": window}) == rate
    for a in read["alerts"]:
        segment = ",".join(f"{k}={v}" for k, v in a["segment"].items()) or "all"
        labels = {"slo": a["slo"] or "", "model": "m", "segment": segment, "rule": a["rule"], "severity": a["severity"]}
        reported = last.get((a["slo"], segment))
        want = a["rule"] in reported["firing"] if reported else [
            x for x in read["alerts"] if x["id"] == a["id"]][-1]["state"] == "firing"
        assert registry.get_sample_value("sloguard_alerts_firing", labels) == float(want), labels


# ---- dead-letter reasons as label values ----------------------------------------------------------

_ID = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(first=_ID, second=_ID)
def test_a_label_join_reason_class_does_not_depend_on_the_id(first, second):
    """The reasons name the id (quoted by repr: quotes, colons, parentheses, digits and all); their
    class must not, or every dead letter would add a series to the registry."""
    store = LabelStore(delay_s=7 * 86_400.0, cap=1_000_000, hold_s=300.0)
    for text in (lambda i: store._gone_reason(i, EVICTED), lambda i: store._gone_reason(i, EXPIRED),
                 store._unknown_reason):
        assert reason_class(text(first)) == reason_class(text(second))
    assert reason_class(store._gone_reason(first, EVICTED)) == "label for id came after its prediction was evicted"
    assert reason_class(store._gone_reason(first, EXPIRED)) == "label for id came after its prediction expired"
    assert reason_class(store._unknown_reason(first)) == "label for unknown prediction id"


@pytest.mark.parametrize(("error", "kind"), [
    ("latency_ms: must be a number, got boolean", "latency_ms"),
    ("features.amount: must be a number, string, boolean or null, got object", "features"),
    ("segment.region: longer than 256 characters", "segment"),
    ("oversized message: 70000 bytes > limit 65536", "oversized message"),
    ("model: unknown model 'x' (configured: fraud)", "model"),
    ("label for id 'a' came 2h30m after its prediction, beyond the label delay of 1h",
     "label for id came N after its prediction"),
    ("no prediction with id 'a:b': too many labels waiting for one", "no prediction with id"),
    ("duplicate: id 'a' was already seen within 1h", "duplicate"),
    ("", "unknown"),
])
def test_a_reason_class_is_the_kind_of_fault(error, kind):
    assert reason_class(error) == kind


def test_dead_letters_with_distinct_ids_add_no_series():
    """A thousand evicted labels of a thousand ids: one dead-letter series, counting all of them."""
    registry = CollectorRegistry()
    metrics = FlowMetrics(registry)
    store = LabelStore(delay_s=7 * 86_400.0, cap=1_000_000, hold_s=300.0)
    for n in range(1000):
        metrics.observe_output("dead_letter", dead_letter("ml.labels", 0, n, "label_join",
                                                          store._gone_reason(f"o-{n}", EVICTED), b"{}", model="fraud"))
    series = [s for m in registry.collect() for s in m.samples if s.name == "sloguard_dead_letters_total"]
    assert len(series) == 1
    assert series[0].value == 1000
