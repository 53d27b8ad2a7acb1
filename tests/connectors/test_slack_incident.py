"""Slack Block Kit for incidents (connectors/slack_incident.py): what an on-call engineer reads
first, within Slack's limits however large the incident, and no way for a segment value to ping
the channel or forge a link."""

from __future__ import annotations

from typing import Any

from slack_server import FakeSlack

from sloguard.connectors.slack import MAX_BLOCKS, MAX_HEADER_TEXT, MAX_SECTION_TEXT
from sloguard.connectors.slack_incident import INCIDENT_REF, render_incident


def incident(n: int = 3, state: str = "firing", segment: str = "eu") -> dict[str, Any]:
    members = [{"alert_id": f"{i:016x}", "slo": "fraud-availability", "dimension": "infrastructure",
                "rule": "fast-burn", "severity": "page", "segment": {"region": f"{segment}{i}"},
                "started_at": "2026-01-01T01:21:00Z", "state": "firing" if i % 2 == 0 else "resolved",
                "burn_rates": {"5m": 217.0, "1h": 18.7}, "budget_remaining": -12.8,
                "windows": {"long": "1h", "short": "5m"}} for i in range(n)]
    return {"type": "incident", "id": "bc778cd45c1c2e0e", "seq": 4, "state": state, "change": "joined",
            "severity": "page", "model": "fraud", "owner": "sre-oncall", "slo": "fraud-availability",
            "opened_at": "2026-01-01T01:21:00Z", "ts": "2026-01-01T02:10:00Z",
            "resolved_at": "2026-01-01T02:10:00Z" if state == "resolved" else None, "keys": n,
            "members": members, "inhibited": [{"alert_id": "x", "rule": "slow-burn", "slo": "fraud-availability",
                                               "segment": {"region": "us"}, "inhibited_by": "y"}],
            "explained_by": {"segment": {"region": f"{segment}0"}, "share": 0.97, "window": "5m"},
            "cause": {"slo": "fraud-stale-features", "dimension": "data", "segment": {"region": "latam"},
                      "burning_since": "2026-01-01T01:17:00Z", "lead_s": 240.0,
                      "summary": "fraud-stale-features (data, region=latam) started burning 4m before "
                                 "fraud-availability"},
            "summary": "fraud-availability: fast-burn in region=eu0 (97% ...); 3 keys burn",
            "actions": ["freeze deployments"], "runbook": "https://runbooks.example.com/fraud"}


def text(payload: dict[str, Any]) -> str:
    out = []
    for b in payload["blocks"]:
        if b["type"] in ("header", "section"):
            out.append(b["text"]["text"])
            out += [f["text"] for f in b.get("fields", [])]
        if b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return "\n".join(out)


def test_the_message_leads_with_severity_slo_where_and_what_burned_first():
    p = render_incident(incident())
    head = p["blocks"][0]["text"]["text"]
    assert head == "🔴 PAGE: fraud-availability burning (fraud, region=eu0)"
    body = text(p)
    assert "*Burned first:* fraud-stale-features (data, region=latam) started burning 4m before" in body
    assert "region=eu0* · fast-burn · 1h 18.7x · 5m 217x · budget exhausted" in body
    assert "✅ resolved" in body and "97% of the bad events over 5m" in body
    assert "muted by this incident (1): slow-burn on fraud-availability (region=us)" in body
    assert "Open the runbook" in body
    found = INCIDENT_REF.match(p["blocks"][-1]["elements"][0]["text"])
    assert found and found.groups() == ("firing", "bc778cd45c1c2e0e")


def test_resolved_and_reminder_messages_say_so():
    resolved = render_incident(incident(state="resolved"))
    assert resolved["blocks"][0]["text"]["text"].startswith("✅ RESOLVED after 49m: fraud-availability")
    assert INCIDENT_REF.match(resolved["blocks"][-1]["elements"][0]["text"]).group(1) == "resolved"
    assert "Playbook" not in text(resolved)
    remind = render_incident(incident(), "remind")
    assert remind["blocks"][0]["text"]["text"].startswith("⏰ STILL FIRING (PAGE, open 49m)")
    assert remind["blocks"][-1]["elements"][0]["text"].startswith("still firing · incident")
    assert not INCIDENT_REF.match(remind["blocks"][-1]["elements"][0]["text"])  # not counted as an open


def test_huge_incidents_and_hostile_segment_values_stay_within_slack_limits():
    p = render_incident(incident(n=400, segment="<!channel> <https://evil|x> & " + "y" * 300))
    assert len(p["blocks"]) <= MAX_BLOCKS and len(p["blocks"][0]["text"]["text"]) <= MAX_HEADER_TEXT
    for b in p["blocks"]:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= MAX_SECTION_TEXT
    body = text({"blocks": p["blocks"][1:]})  # the header is plain_text: Slack parses no mention there
    assert "<!channel>" not in body and "<https://evil" not in body and "&lt;!channel&gt;" in body
    assert "<!channel>" not in p["text"]
    assert "…and 375 more" in body
    with FakeSlack() as slack:  # the Slack stand-in's payload checks accept it
        assert slack._validate(__import__("json").dumps(p).encode()).status == 200
