"""The demo reads alerts, budgets and rollout decisions as their types: a renamed or missing field
stops it with the file (or topic and offset) and the field, in one line, not a KeyError."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest
from factories import alert_message, budget_message

from sloguard.apps.cli import main
from sloguard.apps.demo import EXAMPLES_DIR, decisions_from_outputs, format_alert
from sloguard.apps.live_demo import read_kafka
from sloguard.apps.runs import UnreadableOutput
from sloguard.core.messages.outputs import AlertRead, BudgetRead, Check, Decision


def renamed(message: dict, old: str, new: str) -> dict:
    return {(new if k == old else k): v for k, v in message.items()}


def test_the_live_demo_reads_its_topics_as_the_types_and_names_a_bad_field() -> None:
    alert = read_kafka("alerts", "fraud.slo.alerts", 0, 7, orjson.dumps(alert_message()))
    assert isinstance(alert, AlertRead)
    assert format_alert(alert, colour=False).startswith("2026-01-01T00:01:00  PAGE     fast-burn        (whole model)")
    assert isinstance(read_kafka("budget", "fraud.slo.budget", 0, 1, orjson.dumps(budget_message())), BudgetRead)
    decision = Decision(model="m", version="v2", decision="hold", result=0, allow=False, reasons=["few events"],
                        checks=[Check(code="few", outcome="hold", message="few events", dimension=None)], budgets={},
                        overrides=[], canary=[], stable_version="v1", ts="2026-01-01T00:01:00.000Z")
    assert read_kafka("decisions", "fraud.rollout.decisions", 0, 2, msgspec.json.encode(decision)) == decision
    assert read_kafka("dead_letter", "fraud.slo.dead-letter", 0, 3, b'{"error": "x"}') == {"error": "x"}
    cases = [
        ("alerts", renamed(alert_message(), "severity", "level"), "severity: required field missing"),
        ("budget", renamed(budget_message(), "burn_rates", "burn"), "burn_rates: required field missing"),
        ("budget", budget_message() | {"sli": "high"}, "sli: expected float | null, got str"),
        ("budget", {k: v for k, v in budget_message().items() if k != "counted"}, "counted: required field missing"),
    ]
    for kind, message, problem in cases:
        with pytest.raises(UnreadableOutput) as e:
            read_kafka(kind, f"fraud.slo.{kind}", 2, 41, orjson.dumps(message))
        assert str(e.value) == f"topic fraud.slo.{kind} partition 2 offset 41: {problem}"
    with pytest.raises(UnreadableOutput, match=r"^topic t partition 0 offset 1: malformed JSON"):
        read_kafka("alerts", "t", 0, 1, b"{")


def test_the_replayed_rollout_names_the_file_line_and_field_of_a_bad_budget(tmp_path: Path) -> None:
    budgets = [budget_message(model="fraud", slo="fraud-availability", ts=f"2026-01-01T00:0{i}:00.000Z")
               for i in range(3)]
    budgets[1] = renamed(budgets[1], "firing", "firing_rules")
    (tmp_path / "budget.jsonl").write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in budgets))
    (tmp_path / "alerts.jsonl").write_bytes(orjson.dumps(alert_message(model="fraud")) + b"\n")
    with pytest.raises(UnreadableOutput) as e:
        decisions_from_outputs(EXAMPLES_DIR / "fraud.yaml", tmp_path)
    assert str(e.value) == f"{tmp_path / 'budget.jsonl'}: line 2: firing: required field missing"
    budgets[1] = renamed(budgets[1], "firing_rules", "firing")
    (tmp_path / "budget.jsonl").write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in budgets))
    assert all(isinstance(d, Decision) for d in decisions_from_outputs(EXAMPLES_DIR / "fraud.yaml", tmp_path))


def test_sloguard_demo_reports_an_alert_that_is_not_its_type_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    """The flow writes `severity`; a demo that read it as `severity_level` (a field renamed on one
    side) stops at the first alert it reads back from the real replay's files (for the rollout
    policy), naming the file, line and field, exit 2."""

    class RenamedAlert(AlertRead, kw_only=True):
        severity_level: str

    monkeypatch.setattr("sloguard.apps.demo.AlertRead", RenamedAlert)
    assert main(["demo", "--replay", "--events", "3000", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'fraud-run' / 'alerts.jsonl'}: line 1: severity_level: required field missing\n"
