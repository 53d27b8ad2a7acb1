"""End to end: generated scenarios replayed through the real Bytewax dataflow, checked against manifests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest
from factories import epoch

from sloguard.apps.replay import replay
from sloguard.core.messages.outputs import MAX_DEAD_LETTER_PAYLOAD_BYTES
from sloguard.core.spec.config import load_config
from sloguard.core.synth.scenarios import plan, write_scenario

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 170_000  # ~3.4 events/s over the 14 h timeline


def _read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module", params=["fraud", "recsys"])
def replayed(request, tmp_path_factory):
    name = request.param
    base = tmp_path_factory.mktemp(name)
    paths = write_scenario(plan(name, events=EVENTS, seed=11), base / "in")
    inputs = {k: paths[k] for k in ("inference", "labels", "features")}
    config = load_config(ROOT / "examples" / f"{name}.yaml")
    replay(config, inputs, base / "out")
    out = base / "out"
    return {
        "name": name,
        "config": config,
        "inputs": inputs,
        "out": out,
        "manifest": json.loads(paths["manifest"].read_text()),
        "alerts": _read(out / "alerts.jsonl"),
        "budget": _read(out / "budget.jsonl"),
        "dead": _read(out / "dead_letter.jsonl"),
        "incidents": _read(out / "incidents.jsonl"),
    }


def _matching(alerts: list[dict], inc: dict, state: str) -> list[dict]:
    return [
        a
        for a in alerts
        if a["state"] == state
        and a["rule"] == inc["rule"]
        and a["segment"] == inc["segment"]
        and (inc["rule"] == "no-data" or a["slo"] in inc["slos"])
    ]


def test_every_incident_raises_its_rule_dimension_and_segment_in_time(replayed):
    for inc in replayed["manifest"]["incidents"]:
        fired = [a for a in _matching(replayed["alerts"], inc, "firing") if epoch(a["ts"]) >= inc["start"]]
        assert fired, f"{inc['name']}: no {inc['rule']} alert for {inc['slos']} {inc['segment']}"
        first = min(fired, key=lambda a: epoch(a["ts"]))
        delay = epoch(first["ts"]) - inc["start"]
        assert delay <= inc["detect_within_s"], f"{inc['name']}: detected after {delay:.0f}s"
        if inc["rule"] != "no-data":
            assert first["dimension"] == inc["dimension"]
        assert first["severity"] == "page"
        if inc.get("group"):  # a fairness regression names the group it hurts
            (attr, value), = inc["group"].items()
            assert first["fairness"]["worst_group"] == value, inc["name"]
            assert f"worst group {attr}={value}" in first["summary"]
        if inc.get("feature"):  # a drift alert names the drifting feature
            assert inc["feature"] in [d["feature"] for d in first["drift"] if d["drifted"]], inc["name"]
            assert f"drifting: {inc['feature']} (" in first["summary"]


def test_every_incident_alert_resolves_after_the_incident_ends(replayed):
    for inc in replayed["manifest"]["incidents"]:
        # the incident's own alerts: fired after it started and before its detection bound ran out
        # (a later incident may hit the same SLO and segment: a fairness regression costs precision)
        fired = [
            a
            for a in _matching(replayed["alerts"], inc, "firing")
            if inc["start"] <= epoch(a["ts"]) <= max(inc["end"], inc["start"] + inc["detect_within_s"])
        ]
        ids = {a["id"] for a in fired}
        resolved = [a for a in _matching(replayed["alerts"], inc, "resolved") if a["id"] in ids]
        ends = []
        for f in fired:  # each of them resolves: the first resolution of its id after it fired
            later = [epoch(a["ts"]) for a in resolved if a["id"] == f["id"] and a["ts"] > f["ts"]]
            assert later, f"{inc['name']}: {f['slo']} {f['rule']} never resolved"
            ends.append(min(later))
        last = max(ends)
        # an alert resolves once its rule has stayed false for its resolve hold (an hour for hourly slices)
        holds = [s.resolve_hold_s for s in replayed["config"].slos if s.name in {f["slo"] for f in fired}]
        hold = max(holds, default=replayed["config"].resolve_hold_s)
        assert inc["end"] < last <= inc["end"] + 2 * 3600 + hold, inc["name"]


def test_no_alert_before_the_first_incident(replayed):
    first = min(inc["start"] for inc in replayed["manifest"]["incidents"])
    early = [a for a in replayed["alerts"] if epoch(a["ts"]) < first]
    assert early == []


def test_the_control_segment_raises_nothing(replayed):
    control = replayed["manifest"]["control"]
    hits = [a for a in replayed["alerts"] if a["segment"].items() & control.items()]
    assert hits == []
    budgets = [b for b in replayed["budget"] if b["segment"] == control]
    assert budgets, "the control segment is evaluated"


def test_bad_input_lands_in_dead_letters_with_reasons_and_counts_toward_the_schema_slo(replayed):
    bad = Counter()
    for inc in replayed["manifest"]["incidents"]:
        bad.update(inc.get("bad_messages") or {})
    dead = replayed["dead"]
    assert len(dead) == sum(bad.values())
    reasons = Counter(d["error"].split(":")[0] for d in dead)
    assert reasons["malformed JSON"] == bad["malformed_json"] + bad["nan_token"]
    assert reasons["oversized message"] == bad["oversized"]
    assert reasons["duplicate"] == bad["duplicate_id"]
    for d in dead:
        assert d["topic"] == "ml.inference" and d["offset"] >= 0 and d["error"] and d["payload"]
        assert len(d["payload"]) <= MAX_DEAD_LETTER_PAYLOAD_BYTES and d["payload_bytes"] >= len(d["payload"])
        assert d["stage"] == ("dedupe" if d["error"].startswith("duplicate") else "parse")
    model = replayed["name"]
    known = sum(1 for d in dead if d["model"] == model)
    schema = [b for b in replayed["budget"] if b["slo"] == f"{model}-schema" and b["segment"] == {}][-1]
    assert schema["total"] - schema["good"] == known


def test_replay_is_deterministic_to_the_byte(replayed, tmp_path):
    replay(replayed["config"], replayed["inputs"], tmp_path)
    for name in ("budget.jsonl", "alerts.jsonl", "dead_letter.jsonl", "incidents.jsonl"):
        assert (tmp_path / name).read_bytes() == (replayed["out"] / name).read_bytes(), name


def test_outputs_follow_their_json_schemas(replayed):
    jsonschema = pytest.importorskip("jsonschema")
    for kind, file in (("budget", "budget"), ("alerts", "alert"), ("dead", "dead_letter"), ("incidents", "incident")):
        schema = json.loads((ROOT / "schemas" / f"{file}.schema.json").read_text())
        validator = jsonschema.Draft202012Validator(schema)
        for message in replayed[kind][:: max(1, len(replayed[kind]) // 500)]:
            errors = sorted(validator.iter_errors(message), key=str)
            assert not errors, f"{kind}: {errors[0].message} in {message}"


def test_the_example_rollout_policy_rolls_back_the_regressing_canary_and_promotes_the_healthy_one(replayed):
    from sloguard.apps.demo import decisions_from_outputs, rollout_summary

    decisions = decisions_from_outputs(ROOT / "examples" / f"{replayed['name']}.yaml", replayed["out"])
    lines, ok = rollout_summary(replayed["manifest"], decisions)
    assert ok, "\n".join(lines)
    kinds = [d.decision for d in decisions]
    if replayed["name"] == "fraud":  # the canary-regression incident: rolled back with the test's p-value
        worse = [c for d in decisions for c in d.canary if c["verdict"] == "fail"]
        assert "promote" not in kinds and worse and all(c["p_value"] < 0.05 for c in worse)
    else:  # a healthy canary: promoted once it has the traffic, before the first outage freezes promotions
        first = min(i["start"] for i in replayed["manifest"]["incidents"])
        promoted = [d for d in decisions if d.decision == "promote"]
        assert promoted and epoch(promoted[0].ts) < first and "rollback" not in kinds


def test_pages_fold_into_one_incident_per_overlapping_burn_of_an_slo(replayed):
    """Oracle from the raw alerts: per (owner, model), page episodes whose firing spans overlap
    or touch are one incident (the default group_by [model, severity]), a new one after
    a gap."""
    alerts = replayed["alerts"]
    spans: dict[tuple, list[list]] = {}
    open_: dict[str, tuple] = {}
    for a in alerts:
        if a["severity"] != "page" or a["rule"] == "no-data" or "inhibited_by" in a:
            continue  # muted pages (inhibit rules) belong to no incident of their own
        if a["state"] == "firing":
            open_[a["id"]] = (epoch(a["ts"]), a)
        elif a["id"] in open_:
            start, f = open_.pop(a["id"])
            spans.setdefault((f["owner"], f["model"]), []).append([start, epoch(a["ts"]), f["incident_id"]])
    for start, f in open_.values():
        spans.setdefault((f["owner"], f["model"]), []).append([start, float("inf"), f["incident_id"]])
    assert spans
    for key, group in spans.items():
        group.sort()
        components, end = [], -1.0
        for start, stop, inc in group:
            if start > end:  # a gap: the previous incident resolved before this page fired
                components.append(set())
            components[-1].add(inc)
            end = max(end, stop)
        assert all(len(c) == 1 for c in components), (key, components)
        assert len({next(iter(c)) for c in components}) == len(components), key  # a new id each time
    by_id = {i["id"]: i for i in replayed["incidents"]}
    for a in alerts:  # every alert names an incident that lists it (or that lists its muting alert)
        if a.get("incident_id") and "inhibited_by" not in a:
            assert a["id"] in {m["alert_id"] for m in by_id[a["incident_id"]]["members"]}
    opened = [i for i in replayed["incidents"] if i["change"] == "opened"]
    assert len(opened) == len(by_id) and len(opened) < len([a for a in alerts if a["state"] == "firing"]) / 3
