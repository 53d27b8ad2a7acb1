"""Block Kit payloads: valid for slack_sdk's block models, within Slack's limits, escaped, and
saying what an on-call engineer needs (what burns, how fast, budget left, since when, playbook)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_server import example_alerts as examples
from slack_server import notices_in as refs_in

from sloguard.connectors.slack import (
    MAX_BLOCKS,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    human_duration,
    render_batch_preview,
    render_message,
    render_preview,
    render_text,
)
from sloguard.core.notify.notify_policy import Batch, Pending


def batch(kind: str, alerts: list[dict[str, Any]], refs: dict[str, Any] | None = None) -> Batch:
    return Batch("sre-oncall", kind, str(alerts[0]["model"]), [Pending("sre-oncall", a, None) for a in alerts],
                 0.0, 0.0, refs=refs or {})


def check_limits(payload: dict[str, Any]) -> None:
    """Slack's documented limits, and slack_sdk's own validation of every block."""
    blocks = payload["blocks"]
    assert 1 <= len(blocks) <= MAX_BLOCKS
    assert isinstance(payload["text"], str) and 0 < len(payload["text"]) <= 3000
    for b in blocks:
        model = Block.parse(b)
        assert model is not None, b
        model.validate_json()  # raises SlackObjectFormationError past a limit
        assert model.to_dict() == b  # nothing slack_sdk does not know about
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= MAX_HEADER_TEXT
            assert b["text"]["type"] == "plain_text"
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= MAX_SECTION_TEXT
            assert len(b.get("fields", [])) <= 10
            assert all(len(f["text"]) <= MAX_FIELD_TEXT for f in b.get("fields", []))
        if b["type"] == "context":
            assert len(b["elements"]) <= 10
    assert blocks[0]["type"] == "header"


def flat(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


# -- content ---------------------------------------------------------------------------------------


def test_a_firing_page_says_what_burns_how_fast_budget_since_and_what_to_do() -> None:
    firing = examples()[0]
    payload = render_message(batch("firing", [firing]))
    check_limits(payload)
    text = flat(payload)
    header = payload["blocks"][0]["text"]["text"]
    assert header.startswith("🔴 PAGE: fast-burn on fraud-availability (fraud, region=eu)")
    for expected in ("PAGE", "fraud 2024.06.1", "region=eu", "infrastructure",
                     "5m 18.2x · 1h 14.9x", "71.0%", "2024-06-03 14:21 UTC", "sre-oncall",
                     "1. freeze deployments", "2. roll back the last change",
                     "<https://runbooks.example.com/fraud/infrastructure|Open the runbook →>",
                     "<!date^1717424460^"):
        assert expected in text, expected
    assert refs_in(payload) == [("firing", firing["id"])]


def test_a_resolved_message_references_the_firing_one_and_says_how_long_it_lasted() -> None:
    resolved = examples()[1]
    payload = render_message(batch("resolved", [resolved], {resolved["id"]: {"posted_at": 1717424490.0}}))
    check_limits(payload)
    text = flat(payload)
    assert payload["blocks"][0]["text"]["text"].startswith("✅ RESOLVED: fast-burn on fraud-availability")
    assert "resolved after *27m*" in text
    assert "fired 2024-06-03 14:21 UTC" in text
    assert "its firing notice was posted <!date^1717424490^" in text
    assert refs_in(payload) == [("resolved", resolved["id"])]
    unknown = render_message(batch("resolved", [resolved]))
    assert "no firing notice was posted by this notifier" in flat(unknown)


def test_a_reminder_says_it_is_still_firing_and_for_how_long() -> None:
    firing = examples()[0]
    now = 1717424460.0 + 4 * 3600 + 600
    payload = render_message(batch("reminder", [firing], {firing["id"]: {"posted_at": 1717424470.0,
                                                                          "reminders": 1}}), now=now)
    check_limits(payload)
    assert payload["blocks"][0]["text"]["text"].startswith("⏰ STILL FIRING for 4h 10m")
    assert "reminder 2" in flat(payload)
    assert refs_in(payload) == [("still firing", firing["id"])]


def test_a_group_has_one_header_every_alert_and_each_distinct_playbook_once() -> None:
    a, _, ticket = examples()[:3]
    group = [a, {**a, "id": "aa11", "segment": {"region": "us"}}, {**ticket, "model": "fraud"}]
    payload = render_message(batch("firing", group))
    check_limits(payload)
    assert payload["blocks"][0]["text"]["text"] == (
        "🔴 PAGE: 3 fraud alerts firing · fraud-availability, recsys-freshness")
    assert [i for _, i in refs_in(payload)] == [a["id"], "aa11", ticket["id"]]
    playbooks = [b for b in payload["blocks"] if b["type"] == "section" and "*Playbook" in b["text"]["text"]]
    assert len(playbooks) == 2  # infrastructure once, data once


def test_no_data_alerts_have_no_slo_and_no_burn_rates() -> None:
    alert = {**examples()[0], "rule": "no-data", "slo": None, "burn_rates": {}, "budget_remaining": None,
             "summary": "recsys has sent no inference events for 10m"}
    alert.pop("windows", None)
    payload = render_message(batch("firing", [alert]))
    check_limits(payload)
    text = flat(payload)
    assert "no-data on model fraud" in text
    assert "no burn rate (no data)" in text
    assert "n/a" in text


def test_text_from_alerts_cannot_mention_channels_or_forge_links() -> None:
    evil = {**examples()[0], "segment": {"region": "<!channel> & <https://evil.example|click>"},
            "summary": "<!here> pwned", "model": "<@U123>", "runbook": "javascript:alert(1)",
            "actions": ["<!everyone> run `rm -rf`"]}
    payload = render_message(batch("firing", [evil]))
    check_limits(payload)
    assert payload["blocks"][0]["text"]["type"] == "plain_text"  # Slack never parses plain_text
    text = flat({"text": payload["text"], "blocks": payload["blocks"][1:]})  # everything mrkdwn
    for forbidden in ("<!channel>", "<!here>", "<@U123>", "<https://evil", "<!everyone>", "javascript:"):
        assert forbidden not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text


# -- limits ----------------------------------------------------------------------------------------


def test_huge_groups_and_huge_texts_stay_within_slack_limits() -> None:
    base = examples()[0]
    many = [{**base, "id": f"{i:016x}", "summary": "x" * 5000, "actions": [f"step {j} " * 50 for j in range(40)],
             "segment": {"region": "r" * 300}} for i in range(120)]
    payload = render_message(batch("firing", many))
    check_limits(payload)
    carried = [i for _, i in refs_in(payload)]
    assert carried[:10] == [a["id"] for a in many[:10]]  # detailed first, then listed
    assert "…and" in flat(payload)
    resolved = render_message(batch("resolved", [{**a, "state": "resolved"} for a in many]))
    check_limits(resolved)
    assert len(render_text(batch("firing", many))) < 40_000


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 70),
    kind=st.sampled_from(["firing", "resolved", "reminder"]),
    summary=_text, segment=st.dictionaries(st.text(min_size=1, max_size=30), _text, max_size=3),
    actions=st.lists(_text, max_size=12), slo=st.one_of(st.none(), _text.filter(bool)),
    burns=st.dictionaries(st.sampled_from(["5m", "30m", "1h", "6h", "3d", "bogus"]),
                          st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=6),
    budget=st.one_of(st.none(), st.floats(-1e6, 1.0)),
)
def test_any_batch_renders_within_limits(n: int, kind: str, summary: str, segment: dict, actions: list,
                                         slo: str | None, burns: dict, budget: float | None) -> None:
    base = examples()[0]
    alerts = [{**base, "id": f"{i:016x}", "summary": summary or "s", "segment": segment, "actions": actions,
               "slo": slo, "burn_rates": burns, "budget_remaining": budget, "state": kind} for i in range(n)]
    payload = render_message(batch(kind, alerts), now=1717430000.0)
    check_limits(payload)
    assert len({i for _, i in refs_in(payload)}) >= min(n, 10)


# -- previews --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alert", examples(), ids=lambda a: f"{a['state']}-{a['rule']}")
def test_render_preview_is_one_line_with_severity_route_model_and_what_burns(alert: dict[str, Any]) -> None:
    line = render_preview(alert)
    assert "\n" not in line
    assert f"#{alert['owner'] or 'default'}" in line
    assert alert["model"] in line
    if alert["state"] == "resolved":
        assert line.startswith("✅ RESOLVED") and "lasted 27m" in line
    else:
        assert alert["severity"].upper() in line and "budget" in line


def test_batch_preview_lists_each_alert_and_the_playbook() -> None:
    a = examples()[0]
    text = render_batch_preview(batch("firing", [a, {**a, "id": "b2"}]))
    lines = text.splitlines()
    assert lines[0] == "[sre-oncall] 🔴 PAGE: 2 fraud alerts firing · fraud-availability"
    assert len(lines) == 4 and lines[-1].startswith("    playbook: freeze deployments")


@pytest.mark.parametrize(("seconds", "text"), [(45, "45s"), (1620, "27m"), (4 * 3600, "4h"),
                                               (4 * 3600 + 600, "4h 10m"), (2 * 86400 + 3 * 3600, "2d 3h"),
                                               (None, "unknown")])
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_the_docstring_examples_run() -> None:
    import doctest

    import sloguard.connectors.slack
    import sloguard.connectors.webhooks

    for module in (sloguard.connectors.slack, sloguard.connectors.webhooks):
        assert doctest.testmod(module).failed == 0, module.__name__
