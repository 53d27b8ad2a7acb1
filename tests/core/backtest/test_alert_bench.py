"""Per-incident alert quality (sloguard/core/backtest/alert_bench.py) on hand-counted cases."""

from __future__ import annotations

from sloguard.core.backtest.alert_bench import alert_spans, bench, flaps
from sloguard.core.spec.timeutil import to_rfc3339

T0 = 1_767_225_600.0


def at(minutes: float) -> str:
    return to_rfc3339(T0 + 60 * minutes)


def alert(id_: str, state: str, minute: float, started: float | None = None, severity: str = "page",
          slo: str = "avail", segment: dict | None = None, rule: str = "fast-burn", **extra: object) -> dict:
    return {"type": "alert", "id": id_, "state": state, "ts": at(minute),
            "started_at": at(minute if started is None else started), "severity": severity, "rule": rule,
            "slo": slo, "model": "fraud", "version": None, "segment": segment or {}, **extra}


def incident(name: str, start: float, end: float, slos: tuple[str, ...] = ("avail",), grace_min: float = 10,
             segment: dict | None = None) -> dict:
    return {"name": name, "model": "fraud", "start": T0 + 60 * start, "end": T0 + 60 * end,
            "detect_within_s": 60 * grace_min, "slos": list(slos), "rule": "fast-burn", "segment": segment or {}}


def test_pages_tickets_detection_reset_per_incident() -> None:
    alerts = [
        alert("a", "firing", 12), alert("b", "firing", 13, segment={"region": "eu"}),
        alert("t", "firing", 14, severity="ticket", rule="slow-burn"),
        alert("a", "resolved", 40, started=12), alert("b", "resolved", 35, started=13),
        alert("t", "resolved", 50, started=14, severity="ticket", rule="slow-burn"),
    ]
    manifest = {"scenario": "fraud", "incidents": [incident("outage", 10, 30, segment={"region": "eu"})]}
    r = bench(alerts, manifest, T0 + 3600 * 5)
    row = r.rows[0]
    assert (row.pages, row.tickets) == (2, 1)
    assert row.detect_s == 120  # first page at 12 min, incident at 10
    assert row.expected_s == 180  # the expected alert (region=eu) fired at 13
    assert row.reset_s == 600  # last page resolved at 40, incident ended at 30
    assert r.pages_outside == [] and r.flaps == []


def test_a_page_belongs_to_one_incident_even_when_graces_overlap() -> None:
    # incident A ends at 30 with 60 minutes of grace; B starts at 50: a page at 55 meets both,
    # but belongs to B, the incident that started most recently before it fired
    alerts = [alert("a", "firing", 11), alert("a", "resolved", 20, started=11),
              alert("b", "firing", 55), alert("b", "resolved", 70, started=55)]
    manifest = {"incidents": [incident("A", 10, 30, grace_min=60), incident("B", 50, 60)], "scenario": "fraud"}
    r = bench(alerts, manifest, T0 + 3600 * 5)
    assert [x.pages for x in r.rows] == [1, 1]
    assert r.rows[1].detect_s == 300
    # the second firing of alert id "a"-like keys is no flap when another incident caused it
    alerts2 = [alert("a", "firing", 11), alert("a", "resolved", 20, started=11),
               alert("a", "firing", 55), alert("a", "resolved", 70, started=55)]
    r2 = bench(alerts2, manifest, T0 + 3600 * 5)
    assert len(r2.refires) == 1 and r2.flaps == []


def test_flaps_pages_outside_and_incident_ids() -> None:
    alerts = [
        alert("a", "firing", 100), alert("a", "resolved", 105, started=100),
        alert("a", "firing", 150), alert("a", "resolved", 160, started=150),  # 45 min later: a flap
        alert("a", "firing", 300),  # 140 min after the resolve: not a flap, still firing at the end
    ]
    spans = alert_spans(alerts)
    assert [s.end is None for s in spans] == [False, False, True]
    assert [s.start for s in flaps(spans)] == [T0 + 150 * 60]
    r = bench(alerts, {"scenario": "fraud", "incidents": [incident("x", 0, 10)]}, T0 + 3600 * 8)
    assert len(r.pages_outside) == 3 and len(r.flaps) == 1 and r.page_flaps == 1
    assert r.to_json()["pages_outside"] == 3
    # with incident ids, the pages of one incident id are one page for the person on call
    grouped = [alert("a", "firing", 12, incident_id="i1"), alert("b", "firing", 12, incident_id="i1"),
               alert("c", "firing", 14, incident_id="i1", segment={"region": "eu"})]
    r = bench(grouped, {"scenario": "fraud", "incidents": [incident("x", 10, 30)]}, T0 + 3600)
    assert r.rows[0].pages == 1 and r.grouped and r.rows[0].still_firing


def test_messages_count_once_per_incident() -> None:
    alerts = [alert("a", "firing", 12), alert("b", "firing", 12), alert("a", "resolved", 20, started=12),
              alert("b", "resolved", 20, started=12), alert("z", "firing", 200)]
    messages = [[alerts[0], alerts[1]], [alerts[2], alerts[3]], [alerts[4]]]
    r = bench(alerts, {"scenario": "fraud", "incidents": [incident("x", 10, 30)]}, T0 + 3600 * 5, messages)
    assert r.rows[0].messages == 2  # the firing message and the resolution, not one per alert
    assert r.messages_outside == 1 and r.messages == 3


def test_teams_are_the_owner_routes_an_incidents_pages_went_to() -> None:
    # one incident id per route: the fairness regression pages responsible-AI and, through precision,
    # the model's team; two pages, one per team
    alerts = [
        alert("gap", "firing", 12, slo="fpr-gap", owner="responsible-ai", incident_id="inc-1"),
        alert("gap-eu", "firing", 13, slo="fpr-gap", segment={"region": "eu"}, owner="responsible-ai",
              incident_id="inc-1"),
        alert("prec", "firing", 14, slo="precision", owner="fraud-ml", incident_id="inc-2"),
        alert("t", "firing", 14, severity="ticket", rule="slow-burn", owner="sre-oncall", incident_id="inc-3"),
    ]
    manifest = {"scenario": "fraud", "incidents": [incident("fairness", 10, 30, slos=("fpr-gap", "precision"))]}
    row = bench(alerts, manifest, T0 + 3600 * 5).rows[0]
    assert row.pages == 2 and row.teams == ["fraud-ml", "responsible-ai"]  # tickets page no team
    assert row.to_json()["teams"] == ["fraud-ml", "responsible-ai"]
