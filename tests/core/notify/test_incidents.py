"""Incidents (sloguard/core/notify/incidents.py): grouping by cause, inhibition, the segment that explains the
whole model, the SLO that burned first, stable ids, order independence, snapshots, config errors.

Alerts and budget events are built by hand here, so every expected incident is a hand count."""

from __future__ import annotations

import pickle
import random
from typing import Any

import msgspec
import pytest
from factories import make_alert, make_budget
from msgspec import UNSET
from msgspec.structs import replace

from sloguard.core.evaluate.alerts import alert_id
from sloguard.core.messages.outputs import AdjustmentRef, Alert, Budget, Incident, RuleWindows
from sloguard.core.notify.incident_cause import SloBurn
from sloguard.core.notify.incident_policy import IncidentPolicy, parse_incident_policy
from sloguard.core.notify.incidents import IncidentBook, incident_id
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.timeutil import to_rfc3339

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SLOS = {
    "avail": SloBurn("infrastructure", (("5m", 14.4), ("30m", 6.0))),
    "fresh": SloBurn("data", (("5m", 14.4),)),
    "recall": SloBurn("quality", (("15m", 14.4),)),
    "dq": SloBurn("data", (("5m", 14.4),)),
}
DIMENSION = {"avail": "infrastructure", "fresh": "data", "recall": "quality", "dq": "data"}
OWNER = {"avail": "sre", "fresh": "data-eng", "recall": "ml", "dq": "data-eng"}


def seg(text: str) -> dict[str, str]:
    return dict([text.split("=")]) if text else {}


def alert(slo: str | None, key: str, rule: str, state: str, minute: float, started: float | None = None,
          severity: str = "page") -> tuple[str, Alert]:
    skey = key
    return ("alert", make_alert(
        id=alert_id(slo, "fraud", skey, rule), state=state, severity=severity, rule=rule, slo=slo,
        dimension=DIMENSION.get(slo or "", "infrastructure"), model="fraud", version="1", segment=seg(key),
        owner=OWNER.get(slo or "", "sre"), burn_rates={}, budget_remaining=0.5,
        started_at=to_rfc3339(T0 + 60 * (minute if started is None else started)), ts=to_rfc3339(T0 + 60 * minute),
        summary=f"{rule} on {slo} {key}", actions=["look"],
        windows=RuleWindows(long="1h", short="5m") if rule == "fast-burn" else UNSET,
    ))


def budget(slo: str, key: str, minute: float, burn: float, events: int = 1000, window: str = "1h",
           short: str = "5m", budgeting: str = "occurrences", burn_to: float | None = None) -> tuple[str, Budget]:
    return ("budget", make_budget(
        slo=slo, dimension=DIMENSION[slo], model="fraud", segment=seg(key), ts=to_rfc3339(T0 + 60 * minute),
        target=0.999, budgeting=budgeting, burn_rates={short: burn, window: burn},
        events={short: events, window: events}, budget_remaining=0.5,
        burn_rates_to=UNSET if burn_to is None else to_rfc3339(T0 + 60 * burn_to),
    ))


def incidents(out: list) -> list[Incident]:
    return [m for k, m in out if k == "incident"]


def book(**kw: Any) -> IncidentBook:
    return IncidentBook(IncidentPolicy(**kw), SLOS)


def outage_tick(minute: float) -> list:
    """A regional outage: eu burns 50x on 900 of the model's 1000 events, so the whole model burns
    45x; eu, the whole model and merchant_type=pos (all of whose traffic is in eu) page."""
    return [
        budget("avail", "", minute, 45.0, 1000), budget("avail", "region=eu", minute, 50.0, 900),
        budget("avail", "region=us", minute, 0.0, 100), budget("avail", "merchant_type=pos", minute, 50.0, 900),
        alert("avail", "", "fast-burn", "firing", minute), alert("avail", "region=eu", "fast-burn", "firing", minute),
        alert("avail", "merchant_type=pos", "fast-burn", "firing", minute),
    ]


def test_pages_of_one_slo_on_a_region_its_segments_and_the_whole_model_are_one_incident():
    b = book()
    out = b.process(outage_tick(10))
    [inc] = incidents(out)
    assert inc.change == "opened" and inc.state == "firing" and inc.seq == 1
    assert inc.slo == "avail" and inc.owner == "sre" and inc.severity == "page" and inc.keys == 3
    assert [m.segment for m in inc.members] == [{}, {"merchant_type": "pos"}, {"region": "eu"}]
    # eu's bad events over the short window (5m): 50 x 0.001 x 900 = 45 of the whole model's 45 x 0.001 x 1000
    assert inc.explained_by == {"segment": {"region": "eu"}, "share": 1.0, "window": "5m"}
    assert "in region=eu (100% of the whole model's bad events over 5m); 3 keys burn" in inc.summary
    group = ("sre", "fraud", "page")  # owner route, then group_by: model, severity
    assert inc.id == incident_id(group, T0 + 600)  # stable: group + the tick it opened
    assert all(m.incident_id == inc.id for k, m in out if k == "alert")
    assert [k for k, _ in out][-1] == "incident"  # after the tick's outputs


def test_members_join_and_leave_and_the_incident_resolves_with_its_last_alert():
    b = book()
    b.process(outage_tick(10))
    out = b.process([alert("avail", "region=eu", "medium-burn", "firing", 12),
                     alert("avail", "merchant_type=pos", "fast-burn", "resolved", 12, started=10)])
    [inc] = incidents(out)
    assert inc.change == "joined" and inc.seq == 2  # one message per tick, whatever changed
    states = {(m.rule, str(m.segment)): m.state for m in inc.members}
    assert states[("fast-burn", "{'merchant_type': 'pos'}")] == "resolved"
    assert states[("medium-burn", "{'region': 'eu'}")] == "firing"
    out = b.process([alert("avail", "", "fast-burn", "resolved", 20, started=10),
                     alert("avail", "region=eu", "fast-burn", "resolved", 20, started=10)])
    assert incidents(out)[0].change == "left"
    first_id = incidents(out)[0].id
    out = b.process([alert("avail", "region=eu", "medium-burn", "resolved", 25, started=12)])
    [done] = incidents(out)
    assert done.state == "resolved" and done.resolved_at == to_rfc3339(T0 + 1500) and done.seq == 4
    assert next(m for k, m in out if k == "alert").incident_id == first_id  # the resolve names its incident
    out = b.process(outage_tick(40))  # the same SLO burns again: a new incident, a new id
    [again] = incidents(out)
    assert again.change == "opened" and again.id not in (first_id,) and again.seq == 1


def test_group_by_decides_what_is_one_incident():
    ticks = [*outage_tick(10), alert("avail", "region=eu", "medium-burn", "firing", 10),
             alert("fresh", "region=eu", "fast-burn", "firing", 10)]
    assert len(incidents(book().process(list(ticks)))) == 2  # one per SLO (owner differs too)
    by_rule = incidents(book(group_by=("model", "slo", "rule")).process(list(ticks)))
    assert sorted(m.group["rule"] for m in by_rule) == ["fast-burn", "fast-burn", "medium-burn"]
    per_key = incidents(book(group_by=("model", "slo", "segment")).process(list(ticks)))
    assert len(per_key) == 4  # avail: whole, eu, pos; fresh: eu


def test_a_page_mutes_the_tickets_of_its_slo_and_no_data_mutes_the_rest():
    b = book()
    out = b.process([*outage_tick(10), alert("avail", "region=us", "slow-burn", "firing", 10, severity="ticket")])
    [inc] = incidents(out)
    assert [i["rule"] for i in inc.inhibited] == ["slow-burn"] and inc.severity == "page"
    ticket = next(m for k, m in out if k == "alert" and m.rule == "slow-burn")
    assert ticket.inhibited_by and ticket.incident_id == inc.id
    # the page resolves, the ticket outlives it: it is no longer muted and opens a ticket incident
    out = b.process([alert("avail", k, "fast-burn", "resolved", 30, started=10)
                     for k in ("", "region=eu", "merchant_type=pos")])
    changes = sorted((m.severity, m.change) for m in incidents(out))
    assert changes == [("page", "resolved"), ("ticket", "opened")]
    # a silent model: no-data mutes a new page; the ticket incident, open before, stays open
    out = b.process([alert(None, "", "no-data", "firing", 40),
                     alert("fresh", "region=eu", "fast-burn", "firing", 40)])
    assert [m.members[0].rule for m in incidents(out)] == ["no-data"]  # only no-data opens
    fresh = next(m for k, m in out if k == "alert" and m.slo == "fresh")
    assert fresh.inhibited_by is not UNSET


def test_the_incident_names_the_slo_that_started_burning_first():
    """Data freshness burns from minute 3; recall (labelled: its burn is dated by burn_rates_to)
    from minute 15; freshness alerts at 8 (a ticket), recall pages at 40 once labels arrive."""
    b = book()
    ticks = []
    for minute in range(0, 41):
        tick = [budget("fresh", "region=eu", minute, 20.0 if minute >= 3 else 0.5),
                budget("recall", "", minute, 20.0 if minute >= 38 else 0.0, window="1h", short="15m",
                       budgeting="timeslices", burn_to=minute - 23)]
        if minute == 8:
            tick.append(alert("fresh", "region=eu", "slow-burn", "firing", 8, severity="ticket"))
        if minute == 40:
            tick.append(alert("recall", "", "fast-burn", "firing", 40))
        ticks += tick
    out = b.process(ticks)
    recall = next(m for m in incidents(out) if m.slo == "recall")
    cause = recall.cause
    assert cause["slo"] == "fresh" and cause["dimension"] == "data" and cause["segment"] == {"region": "eu"}
    assert cause["burning_since"] == to_rfc3339(T0 + 180)
    # recall's burn at minute 38 refers to minute 15: freshness led by 12 minutes
    assert cause["lead_s"] == 12 * 60 and cause["summary"] == \
        "fresh (data, region=eu) started burning 12m before recall"
    assert cause["summary"] in recall.summary
    fresh = next(m for m in incidents(out) if m.slo == "fresh")
    assert fresh.cause["lead_s"] == 0 and "burned first" in fresh.cause["summary"]


def test_a_burn_that_started_before_the_lookback_is_not_the_cause():
    b = book(cause_lookback_s=600)
    ticks = [budget("fresh", "", m, 20.0) for m in range(0, 30)]
    ticks.insert(0, alert("fresh", "", "slow-burn", "firing", 0, severity="ticket"))
    ticks += [alert("avail", "", "fast-burn", "firing", 29), budget("avail", "", 29, 20.0)]
    avail = next(m for m in incidents(b.process(ticks)) if m.slo == "avail")
    assert avail.cause["slo"] == "avail" and avail.cause["lead_s"] == 0


def test_decisions_do_not_depend_on_the_order_within_a_tick():
    ticks = [*outage_tick(10), alert("avail", "region=us", "slow-burn", "firing", 10, severity="ticket"),
             alert("fresh", "region=eu", "fast-burn", "firing", 10)]
    want = incidents(book().process(list(ticks)))
    rng = random.Random(3)
    for _ in range(20):
        shuffled = list(ticks)
        rng.shuffle(shuffled)
        assert incidents(book().process(shuffled)) == want


def test_a_restored_book_continues_like_an_uninterrupted_one():
    steps = [outage_tick(10), [alert("avail", "region=eu", "medium-burn", "firing", 12)],
             [alert("avail", k, "fast-burn", "resolved", 20, started=10)
              for k in ("", "region=eu", "merchant_type=pos")],
             [alert("avail", "region=eu", "medium-burn", "resolved", 25, started=12)]]
    whole = book()
    want = [whole.process(list(s)) for s in steps]
    first = book()
    got = [first.process(list(steps[0]))]
    restored = IncidentBook(IncidentPolicy(), SLOS, pickle.loads(pickle.dumps(first.state)))
    got += [restored.process(list(s)) for s in steps[1:]]
    assert got == want
    # recovery state written while alerts were dicts: its firing alerts come back as Structs
    first = book()
    got = [first.process(list(steps[0]))]
    assert first.state.firing
    first.state.firing = {aid: msgspec.to_builtins(a) for aid, a in first.state.firing.items()}
    restored = IncidentBook(IncidentPolicy(), SLOS, pickle.loads(pickle.dumps(first.state)))
    assert all(isinstance(a, Alert) for a in restored.state.firing.values())
    got += [restored.process(list(s)) for s in steps[1:]]
    assert got == want


def test_config_errors_name_the_field():
    problems: list[str] = []
    parse_incident_policy({"group_by": ["slo", "colour"], "inhibit": [
        {"source_matchers": ['severity=page'], "target_matchers": ['rule!~"("'], "equal": ["model"]},
        {"target_matchers": ['severity="ticket"']}], "cause": {"lookback": "soon"}, "explain_share": 2,
        "grouping": 1}, lambda path, msg: problems.append(f"{path}: {msg}"))
    text = "\n".join(problems)
    for path in ("incidents.group_by: unknown label(s) colour", "incidents.inhibit[0].source_matchers[0]",
                 "incidents.inhibit[0].target_matchers[0]: bad regex", "incidents.inhibit[1].source_matchers",
                 "incidents.cause.lookback", "incidents.explain_share", "incidents.grouping: unknown key"):
        assert path in text, text
    problems.clear()
    parse_incident_policy({"group_by": ["slo"]}, lambda path, msg: problems.append(f"{path}: {msg}"))
    assert problems == ["incidents.group_by: must include model: an incident belongs to one model"]


def test_the_section_is_read_with_the_config(tmp_path):
    from factories import example_yaml

    data = example_yaml("fraud")
    data["incidents"] = {"group_by": ["model", "slo", "rule"], "inhibit": [], "cause": {"lookback": "30m"}}
    config = parse_config(data, base_dir=tmp_path.parent)
    assert config.incidents.group_by == ("model", "slo", "rule") and config.incidents.inhibit == ()
    assert config.incidents.cause_lookback_s == 1800 and config.topics["incidents"] == "slo.incidents"
    data["incidents"] = {"enabled": "yes"}
    with pytest.raises(ConfigError, match=r"incidents\.enabled: must be true or false"):
        parse_config(data, base_dir=tmp_path.parent)


def test_the_flow_step_resumes_from_its_snapshot_like_an_uninterrupted_run():
    from factories import example_yaml

    from sloguard.flows.incident_step import IncidentLogic, explode

    config = parse_config(example_yaml("fraud"))
    steps = [outage_tick(10), [alert("avail", "region=eu", "medium-burn", "firing", 12)],
             [alert("avail", k, "fast-burn", "resolved", 20, started=10)
              for k in ("", "region=eu", "merchant_type=pos")]]

    def run(logic: IncidentLogic, batch: list) -> list:
        out, retain = logic.on_item(batch)
        assert retain is False  # StatefulLogic.RETAIN
        return [o for item in out for o in explode(("fraud", item))]

    whole = IncidentLogic.build(config, True, None)
    want = [run(whole, list(s)) for s in steps]
    first = IncidentLogic.build(config, True, None)
    got = [run(first, list(steps[0]))]
    resumed = IncidentLogic.build(config, True, first.snapshot())
    got += [run(resumed, list(s)) for s in steps[1:]]
    assert got == want and any(k == "incident" for _m, (k, _msg) in got[-1])
    assert IncidentLogic.build(config, False, None).snapshot() is None  # nothing without recovery


def test_a_silenced_alert_opens_no_incident_until_it_outlives_its_silence():
    b = book()
    kind, silenced = alert("avail", "region=eu", "fast-burn", "firing", 10)
    silenced = replace(silenced, silenced=AdjustmentRef(id="s1", reason="maintenance"))
    assert incidents(b.process([(kind, silenced)])) == []
    [inc] = incidents(b.process([alert("avail", "region=eu", "fast-burn", "firing", 30, started=10)]))
    assert inc.change == "opened" and inc.opened_at == to_rfc3339(T0 + 1800)


@pytest.mark.slow
def test_with_incidents_off_the_flow_writes_the_alerts_alone(tmp_path):
    import dataclasses

    from sloguard.apps.replay import replay
    from sloguard.core.spec.config import load_config
    from sloguard.core.synth.scenarios import plan, write_scenario

    root = __import__("pathlib").Path(__file__).resolve().parents[3]
    paths = write_scenario(plan("fraud", events=20_000, seed=3), tmp_path / "in")
    inputs = {k: paths[k] for k in ("inference", "labels", "features")}
    config = load_config(root / "examples" / "fraud.yaml")
    on, off = tmp_path / "on", tmp_path / "off"
    replay(config, inputs, on)
    replay(dataclasses.replace(config, incidents=IncidentPolicy(enabled=False)), inputs, off)
    assert (off / "incidents.jsonl").read_bytes() == b"" and (on / "incidents.jsonl").read_bytes()
    assert (off / "budget.jsonl").read_bytes() == (on / "budget.jsonl").read_bytes()
    import orjson

    with_ids = [orjson.loads(x) for x in (on / "alerts.jsonl").read_bytes().splitlines()]
    without = [orjson.loads(x) for x in (off / "alerts.jsonl").read_bytes().splitlines()]
    assert without == [{k: v for k, v in a.items() if k not in ("incident_id", "inhibited_by")} for a in with_ids]
    assert all("incident_id" not in a for a in without) and any("incident_id" in a for a in with_ids)


def test_an_incident_of_several_slos_of_one_dimension_says_which_burned_first():
    """Stale features (from minute 3) drag data quality down (from minute 7): by default one
    incident (per model and severity), which says the freshness burned 4 minutes before the data quality."""
    b = book()
    ticks = []
    for minute in range(0, 12):
        ticks += [budget("fresh", "region=eu", minute, 20.0 if minute >= 3 else 0.0),
                  budget("dq", "", minute, 20.0 if minute >= 7 else 0.0)]
        if minute == 8:
            ticks.append(alert("fresh", "region=eu", "fast-burn", "firing", 8))
        if minute == 10:
            ticks.append(alert("dq", "", "fast-burn", "firing", 10))
    msgs = incidents(b.process(ticks))
    assert len({m.id for m in msgs}) == 1 and [m.change for m in msgs] == ["opened", "joined"]
    assert msgs[0].cause["lead_s"] == 0  # freshness alone: it burned first, nothing to add
    joined = msgs[1]
    assert joined.slo is None and joined.dimension == "data"
    assert joined.group == {"model": "fraud", "severity": "page"}
    assert joined.cause["summary"] == "fresh (data, region=eu) started burning 4m before dq"
    assert joined.summary.startswith("dq, fresh: fast-burn on the whole model, region=eu")
