"""Recovery state written for another SLO list: carried over by SLO name, or refused saying what changed.

The oracle is an uninterrupted run: state snapshotted half way and resumed under a config whose
SLOs are reordered, added, removed or reset must give, for every SLO both configs share, exactly
the outputs the uninterrupted run gives (issue 15: a reordered list used to read one SLO's
counters as another's, silently; an added or removed one crash-looped on a numpy broadcast).
"""

from __future__ import annotations

import dataclasses
import pickle

import msgspec
import numpy as np
import orjson
import pytest
from factories import T0
from test_quality_slos import quality_config, run_mixed, traffic

from sloguard.core.evaluate.evaluator import ModelEvaluator
from sloguard.core.messages.outputs import Alert, Budget
from sloguard.core.spec.model import StateMismatch

AVAIL = {"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.99,
         "budgeting": {"method": "occurrences"}}
LATENCY = {"name": "lat", "dimension": "infrastructure", "sli": {"latency": {"threshold_ms": 100}},
           "objective": 0.99, "budgeting": {"method": "occurrences"}}
PRECISION = {"name": "prec", "sli": {"precision": {"positive": 1}}, "objective": 0.9}
RECALL = {"name": "rec", "sli": {"recall": {"positive": 1}}, "objective": 0.8}
P99 = {"name": "p99", "dimension": "infrastructure", "sli": {"latency_quantile": {"quantile": 0.99}},
       "objective": 250, "budgeting": {"timeslices": "5m", "min_samples": 5, "target": 0.99}}
SLOS = [AVAIL, LATENCY, PRECISION, RECALL, P99]
CUT = T0 + 2400


@pytest.fixture(scope="module")
def history():
    rng = np.random.default_rng(15)
    preds, labels = traffic(T0, T0 + 4800, 2.0, rng, accuracy=0.85, label_delay=900)
    for k, p in enumerate(preds):
        p["status"] = "error" if k % 37 == 0 else "ok"
        p["latency_ms"] = float(40 + (k * 7919) % 150)
    return preds, labels


def halves(events: list[dict]) -> tuple[list[dict], list[dict]]:
    return [e for e in events if e["ts"] < CUT], [e for e in events if e["ts"] >= CUT]


def resumed(history, slos_before: list[dict], slos_after: list[dict], reset: frozenset[str] = frozenset()):
    """Outputs after resuming, under `slos_after`, the state a run of `slos_before` left half way."""
    preds, labels = history
    (p1, p2), (l1, l2) = halves(preds), halves(labels)
    _, ev = run_mixed(quality_config(slos_before), p1, l1, finish=False)
    snapshot = pickle.dumps(ev.snapshot())
    config = quality_config(slos_after)
    restored = ModelEvaluator.from_snapshot(config, "m", pickle.loads(snapshot), reset=reset)
    out, _ = run_mixed(config, p2, l2, evaluator=restored)
    return out


def uninterrupted_second_half(history, slos: list[dict]):
    preds, labels = history
    (p1, p2), (l1, l2) = halves(preds), halves(labels)
    config = quality_config(slos)
    _, ev = run_mixed(config, p1, l1, finish=False)
    out, _ = run_mixed(config, p2, l2, evaluator=ev)
    return out


def by_slo(outputs, names) -> list[bytes]:
    """Every budget and alert message of the named SLOs, whole, in a canonical order."""
    keep = [msgspec.to_builtins(m) for kind, m in outputs if kind in ("budget", "alert") and m.slo in names]
    return sorted(orjson.dumps({k: v for k, v in m.items() if k != "health"}, option=orjson.OPT_SORT_KEYS)
                  for m in keep)


@pytest.fixture(scope="module")
def reference(history):
    return uninterrupted_second_half(history, SLOS)


def test_a_reordered_slo_list_resumes_the_same_state(history, reference):
    out = resumed(history, SLOS, [P99, RECALL, LATENCY, PRECISION, AVAIL])
    names = {s["name"] for s in SLOS}
    assert by_slo(out, names) == by_slo(reference, names)
    assert [m for k, m in out if k == "alert"], "the history pages: the comparison covers alerts"


def test_a_state_cached_while_budget_events_were_dicts_resumes_like_an_uninterrupted_run(history, reference):
    """Recovery state written before the flow carried Structs keeps its last budget events as dicts
    (to repeat them at a tick where nothing changed): they come back as Budget Structs, and the run
    goes on as if it had never stopped."""
    preds, labels = history
    (p1, p2), (l1, l2) = halves(preds), halves(labels)
    config = quality_config(SLOS)
    _, ev = run_mixed(config, p1, l1, finish=False)
    state = pickle.loads(ev.snapshot())
    cached = [k.cache for j in state["judges"] for k in j.ordered if k.cache is not None and k.cache[1]]
    assert cached, "no key has cached budget events: the test would prove nothing"
    for j in state["judges"]:
        for k in j.ordered:
            if k.cache is not None:
                k.cache = (k.cache[0], [msgspec.to_builtins(e) for e in k.cache[1]], k.cache[2])
    restored = ModelEvaluator.from_snapshot(config, "m", pickle.dumps(state))
    assert all(isinstance(e, Budget) for j in restored.judges for k in j.state.ordered if k.cache is not None
               for e in k.cache[1])
    out, _ = run_mixed(config, p2, l2, evaluator=restored)
    names = {s["name"] for s in SLOS}
    assert by_slo(out, names) == by_slo(reference, names)


def firing_at_the_cut(history, slos: list[dict], names: set[str]) -> dict[str, Alert]:
    """The named SLOs' alerts still firing when the first half ends, by id."""
    preds, labels = history
    out, _ = run_mixed(quality_config(slos), *[halves(x)[0] for x in (preds, labels)], finish=False)
    firing: dict[str, dict] = {}
    for kind, m in out:
        if kind == "alert" and m.slo in names:
            if m.state == "firing":
                firing[m.id] = m
            else:
                firing.pop(m.id, None)
    return firing


def test_a_removed_slo_leaves_the_others_as_they_were_and_its_pages_resolve(history, reference):
    kept = [AVAIL, PRECISION, P99]
    out = resumed(history, SLOS, kept)
    assert by_slo(out, {s["name"] for s in kept}) == by_slo(reference, {s["name"] for s in kept})
    firing = firing_at_the_cut(history, SLOS, {"lat", "rec"})
    assert firing, "the history must leave a page of a removed SLO firing at the cut"
    gone = [m for k, m in out if k in ("budget", "alert") and m.slo in ("lat", "rec")]
    # no budget of them any more; each alert that fired is resolved once, at the first tick after the resume
    # (it would otherwise stay open for ever: its page, its incident)
    assert sorted(m.id for m in gone) == sorted(firing) and all(isinstance(m, Alert) for m in gone)
    assert len({m.ts for m in gone}) == 1 and gone[0].ts == min(m.ts for k, m in out if k == "budget")
    for m in gone:
        was = firing[m.id]
        assert m.state == "resolved" and m.summary.endswith(f"was removed from the config: its {m.rule} "
                                                            "alert is resolved")
        fields = ("severity", "dimension", "owner", "segment", "rule", "started_at")
        assert {k: getattr(m, k) for k in fields} == {k: getattr(was, k) for k in fields}


def test_an_added_slo_starts_with_empty_windows_and_the_others_go_on(history, reference):
    fresh = {"name": "lat2", "dimension": "infrastructure", "sli": {"latency": {"threshold_ms": 60}},
             "objective": 0.95, "budgeting": {"method": "occurrences"}}
    out = resumed(history, [AVAIL, LATENCY, PRECISION, P99], [fresh, AVAIL, LATENCY, PRECISION, P99])
    names = {"avail", "lat", "prec", "p99"}
    assert by_slo(out, names) == by_slo(reference, names)
    preds = halves(history[0])[1]  # it counts the events after the resume only, every one of them
    last = [m for k, m in out if k == "budget" and m.slo == "lat2" and m.segment == {}][-1]
    timed = [p for p in preds if p["status"] != "error"]
    assert last.total == len(timed)
    assert last.good == sum(p["latency_ms"] <= 60 for p in timed)


def test_an_slo_changed_under_its_name_is_refused_unless_reset(history):
    changed = {**LATENCY, "sli": {"latency": {"threshold_ms": 50}}}
    with pytest.raises(StateMismatch, match=r"SLOs changed under the same name: lat .*--reset-state lat"):
        resumed(history, SLOS, [AVAIL, changed, PRECISION, RECALL, P99])
    out = resumed(history, SLOS, [AVAIL, changed, PRECISION, RECALL, P99], reset=frozenset({"lat"}))
    last = [m for k, m in out if k == "budget" and m.slo == "lat" and m.segment == {}][-1]
    assert last.total == sum(p["status"] != "error" for p in halves(history[0])[1])  # afresh from the resume
    others = {"avail", "prec", "rec", "p99"}
    assert by_slo(out, others) == by_slo(uninterrupted_second_half(history, SLOS), others)


def test_an_slo_reading_labels_as_the_waiting_ones_did_not_keep_is_refused(history):
    other_class = {"name": "prec0", "sli": {"precision": {"positive": 0}}, "objective": 0.5}
    with pytest.raises(StateMismatch, match=r"prec0 read the predictions or labels .*start with a new --recovery-dir"):
        resumed(history, SLOS, [*SLOS, other_class])


def test_state_of_an_older_schema_or_other_shape_is_refused_saying_what_to_do(history):
    preds, labels = history
    _, ev = run_mixed(quality_config(SLOS), *[halves(x)[0] for x in (preds, labels)], finish=False)
    state = pickle.loads(ev.snapshot())
    old = pickle.dumps({**state, "fingerprint": None})
    with pytest.raises(StateMismatch, match=r"written by an older sloguard.*new --recovery-dir"):
        ModelEvaluator.from_snapshot(quality_config(SLOS), "m", old)
    resharded = quality_config(SLOS, segments=["region", "variant"])
    with pytest.raises(StateMismatch, match=r"models.m.segments changed"):
        ModelEvaluator.from_snapshot(resharded, "m", ev.snapshot())


def test_the_flow_steps_carry_state_over_by_name_too():
    """The Bytewax keyed steps resume through the same migration (flows/operators.py)."""
    from factories import make_config

    from sloguard.core.evaluate.plan import ModelPlan
    from sloguard.core.evaluate.shard import Shard
    from sloguard.core.evaluate.summary import Summary
    from sloguard.flows.operators import JudgeLogic, ShardLogic

    a = {"name": "a", "dimension": "infrastructure", "sli": "availability", "objective": 0.99}
    b = {"name": "b", "dimension": "infrastructure", "sli": {"latency": {"threshold_ms": 100}}, "objective": 0.99}
    def two_parts(slos):  # the judge in two parts, as a two-worker `sloguard run` sets it
        return dataclasses.replace(make_config(slos), judge_parts=2)

    old = {"m": ModelPlan(two_parts([a, b]), "m")}
    judge = JudgeLogic(old, (), True, None)
    judge.on_item((1, Summary("m", 0)))  # the second of the judge's two parts (scale.judge_parts)
    shard = ShardLogic(old, (), True, None)
    shard.shard = Shard(old["m"], 0)
    snapshots = [judge.snapshot(), shard.snapshot()]
    for slos in ([b, a], [a], [a, b, {**b, "name": "c"}]):
        new = {"m": ModelPlan(two_parts(slos), "m")}
        resumed = JudgeLogic.build(new, (), True, snapshots[0]).judge
        assert resumed.plan is new["m"] and resumed.part == 1
        assert ShardLogic.build(new, (), True, snapshots[1]).shard.plan is new["m"]
    changed = {"m": ModelPlan(two_parts([a, {**b, "objective": 0.95, "sli": {"latency": {"threshold_ms": 9}}}]), "m")}
    with pytest.raises(StateMismatch, match="--reset-state b"):
        JudgeLogic.build(changed, (), True, snapshots[0])
    assert JudgeLogic.build(changed, (), True, snapshots[0], reset=frozenset({"b"})).judge is not None
    with pytest.raises(StateMismatch, match="no longer has"):
        JudgeLogic.build({"n": old["m"]}, (), True, snapshots[0])
    regrouped = {"m": ModelPlan(dataclasses.replace(make_config([a, b]), judge_parts=3), "m")}
    with pytest.raises(StateMismatch, match=r"scale.judge_parts changed \(2 -> 3\).*set scale.judge_parts: 2"):
        JudgeLogic.build(regrouped, (), True, snapshots[0])
