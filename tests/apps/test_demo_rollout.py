"""The demo's account of the rollout controller: one line per decision, and a verdict per canary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sloguard.apps.demo import format_decision, main_reasons, rollout_summary
from sloguard.core.messages.outputs import Check, Decision


def decision(ts: str, what: str, *checks: tuple[str, str, str], canary: list[dict] | None = None) -> Decision:
    """A ``rollout.decisions`` message as the controller publishes it (every field of `Decision`)."""
    return Decision(
        model="fraud", version="v2", decision=what, result={"promote": 1, "hold": 0, "rollback": -1}[what],
        allow=what == "promote", reasons=[m for _, _, m in checks],
        checks=[Check(code=c, outcome=o, message=m, dimension=None) for c, o, m in checks], budgets={},
        overrides=[], canary=canary or [], stable_version="v1", ts=f"2026-01-01T{ts}:00.000Z",
    )  # fmt: skip


def manifest(*kinds: str) -> dict[str, Any]:
    return {"scenario": "fraud", "incidents": [{"kind": k, "name": k.replace("_", "-")} for k in kinds]}


PAGE = ("page:1", "rollback", "fast-burn page on fraud-availability (infrastructure, variant=canary): roll back")
WORSE = ("canary-worse:fraud-availability", "rollback", "fraud-availability: ... p = 1e-9 < 0.05: canary is worse")
FEW = ("canary-inconclusive:fraud-availability", "hold", "fraud-availability: only 12 canary events, need 1500")


def test_a_rollback_line_leads_with_the_statistical_test_and_counts_the_rest() -> None:
    d = decision("00:31", "rollback", PAGE, WORSE, FEW)
    assert main_reasons(d) == [WORSE[2], PAGE[2]]
    line = format_decision(d, colour=False)
    assert line.startswith("2026-01-01T00:31:00  ROLLBACK fraud v2: fraud-availability: ...")
    assert line.endswith("(+2 more)")
    assert format_decision(d, colour=True).startswith("\033[31m")
    ok = decision("00:20", "promote", canary=[{"message": "fraud-availability: p = 0.8: no significant regression"}])
    assert format_decision(ok, colour=False).endswith("no significant regression")


def test_a_regressing_canary_must_be_rolled_back_and_never_promoted() -> None:
    flow = [decision("00:01", "hold", FEW), decision("00:31", "rollback", PAGE), decision("00:32", "rollback", PAGE),
            decision("01:14", "hold", FEW), decision("01:20", "rollback", WORSE)]
    lines, ok = rollout_summary(manifest("error_outage", "canary_regression"), flow)
    assert ok and lines[0].endswith("expected rollback (canary-regression): as expected")
    assert lines[1] == "  00:01 hold  ->  00:31 ROLLBACK  ->  01:14 hold  ->  01:20 ROLLBACK"
    assert lines[2] == "  ROLLBACK at 00:31:" and "canary analysis at 01:20:" in lines[-2]
    lines, ok = rollout_summary(manifest("canary_regression"), [decision("00:20", "promote"), *flow])
    assert not ok and "NOT AS EXPECTED" in lines[0]


def test_a_healthy_canary_must_be_promoted_and_never_rolled_back() -> None:
    promote = decision("00:20", "promote")
    assert rollout_summary(manifest("error_outage"), [decision("00:01", "hold", FEW), promote])[1]
    assert not rollout_summary(manifest("error_outage"), [decision("00:01", "hold", FEW)])[1]
    assert not rollout_summary(manifest(), [promote, decision("00:31", "rollback", PAGE)])[1]
    lines, ok = rollout_summary(manifest(), [])
    assert not ok and lines == ["fraud: no rollout decision published; expected promote (a healthy canary): MISSED"]


@pytest.mark.parametrize("scenario", ["fraud", "recsys"])
def test_the_live_demo_writes_configs_that_load_from_its_output_directory(scenario: str, tmp_path: Path) -> None:
    import yaml

    from sloguard.apps.live_demo import example_config
    from sloguard.core.spec.config import load_config

    path = tmp_path / f"{scenario}-live.yaml"
    path.write_text(yaml.safe_dump(example_config(scenario)))
    config = load_config(path)  # the baseline is found although the file moved
    assert config.models[scenario].reference
