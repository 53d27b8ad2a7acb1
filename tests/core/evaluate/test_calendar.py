"""Calendar SLO windows (issue 14): a budget that counts from the start of the month (or ISO week) in
its timezone and starts over at the boundary, checked against hand counts of a replay that crosses
the Europe/Berlin month boundary, and the period arithmetic against hand-written dates."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from sloguard.apps.replay import replay
from sloguard.core.spec.calendar import Calendar
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.timeutil import parse_rfc3339, to_rfc3339
from sloguard.core.synth.llm_scenario import generate_llm

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llm.yaml"
BERLIN_FEB = parse_rfc3339("2026-01-31T23:00:00Z")  # 2026-02-01T00:00 in Europe/Berlin (UTC+1)


@pytest.mark.parametrize(
    ("calendar", "at", "start", "end"),
    [
        (Calendar("month", "Europe/Berlin"), "2026-01-31T22:59:59Z", "2025-12-31T23:00:00Z", "2026-01-31T23:00:00Z"),
        (Calendar("month", "Europe/Berlin"), "2026-01-31T23:00:00Z", "2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z"),
        # March holds the switch to summer time: the month ends at 22:00 UTC
        (Calendar("month", "Europe/Berlin"), "2026-03-15T12:00:00Z", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z"),
        (Calendar("month"), "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        # ISO weeks start on Monday; 2026-01-01 is a Thursday
        (Calendar("week"), "2026-01-01T00:00:00Z", "2025-12-29T00:00:00Z", "2026-01-05T00:00:00Z"),
        # India is UTC+5:30: its midnight is 18:30 UTC
        (Calendar("week", "Asia/Kolkata"), "2026-01-04T18:29:59Z", "2025-12-28T18:30:00Z", "2026-01-04T18:30:00Z"),
    ],
)
def test_period_bounds_are_local_midnights(calendar: Calendar, at: str, start: str, end: str) -> None:
    got = calendar.bounds(parse_rfc3339(at))
    assert (to_rfc3339(got[0]), to_rfc3339(got[1])) == (parse_and_format(start), parse_and_format(end))


def parse_and_format(text: str) -> str:
    return to_rfc3339(parse_rfc3339(text))


def test_a_half_hour_timezone_gets_quarter_hour_buckets() -> None:
    assert Calendar("month", "Europe/Berlin").bucket_s == 3600
    assert Calendar("month", "Asia/Kolkata").bucket_s == 900


def _config(**windows: object) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    for slo in data["slos"]:
        if slo["name"] in windows:
            slo["window"] = windows[slo["name"]]
    return data


def test_bad_calendar_windows_name_the_field() -> None:
    data = _config(**{"assistant-availability": {"calendar": "quarter", "timezone": "Europe/Nowhere"},
                      "assistant-ttft": {"calendar": "month", "zone": "UTC"}})
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    problems = "\n".join(e.value.problems)
    assert "slos[0].window.calendar: must be one of month, week, got 'quarter'" in problems
    assert "slos[0].window.timezone: unknown timezone 'Europe/Nowhere'" in problems
    assert "slos[1].window.zone" in problems


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two hours of Berlin's January and eight of its February: availability per calendar month, p95
    TTFT per calendar month in timeslices, and the cost SLO per ISO week. The llm scenario's TTFT
    spike (1.5 h to 2.5 h in) straddles the boundary, so both periods have bad slices."""
    base = tmp_path_factory.mktemp("calendar")
    month = {"calendar": "month", "timezone": "Europe/Berlin"}
    config = parse_config(_config(**{"assistant-availability": month, "assistant-ttft-p95": month,
                                     "assistant-cost": {"calendar": "week"}}), base_dir=EXAMPLE.parent)
    paths = generate_llm(base / "in", seed=11, start=BERLIN_FEB - 2 * 3600)
    replay(config, {k: paths[k] for k in ("inference", "labels", "features")}, base / "out",
           now=BERLIN_FEB + 9 * 3600)
    budget = [orjson.loads(line) for line in (base / "out" / "budget.jsonl").read_bytes().splitlines()]
    inference = [orjson.loads(line) for line in paths["inference"].read_bytes().splitlines()]
    return {"config": config, "budget": budget, "inference": inference}


def _whole(run: dict, slo: str) -> list[dict]:
    return [b for b in run["budget"] if b["slo"] == slo and not b["segment"]]


def test_a_calendar_budget_counts_from_the_period_start_and_starts_over(run: dict) -> None:
    events = [(e["ts"], e["status"] == "ok") for e in run["inference"]]
    budgets = _whole(run, "assistant-availability")
    before = [b for b in budgets if parse_rfc3339(b["ts"]) <= BERLIN_FEB]
    after = [b for b in budgets if parse_rfc3339(b["ts"]) > BERLIN_FEB]
    assert before and after
    for b in budgets:
        t = parse_rfc3339(b["ts"])
        start = BERLIN_FEB if t > BERLIN_FEB else parse_rfc3339("2025-12-31T23:00:00Z")
        mine = [ok for ts, ok in events if start <= ts < t]
        assert (b["good"], b["total"]) == (sum(mine), len(mine)), b["ts"]
        bad = len(mine) - sum(mine)
        assert b["budget_remaining"] == pytest.approx(1 - bad / (0.001 * len(mine)), abs=1e-6)
        assert b["period"]["start"] == to_rfc3339(start) and b["period"]["timezone"] == "Europe/Berlin"
    # the rolling SLO beside it keeps counting across the boundary
    ttft = _whole(run, "assistant-ttft")
    assert max(b["total"] for b in ttft) > max(b["total"] for b in after)
    assert all("period" not in b for b in ttft)


def test_a_calendar_timeslice_budget_is_a_share_of_the_whole_periods_slices(run: dict) -> None:
    budgets = _whole(run, "assistant-ttft-p95")
    # a timeslice SLO reads up to the last slice boundary: the tick after the month ends closes January
    feb = [b for b in budgets if b["period"]["start"] == to_rfc3339(BERLIN_FEB)]
    jan = [b for b in budgets if b["period"]["end"] == to_rfc3339(BERLIN_FEB)]
    assert feb and jan and len(feb) + len(jan) == len(budgets)
    assert all(b["period"]["end"] == "2026-02-28T23:00:00.000Z" for b in feb)
    slices_in_february = 28 * 86_400 / 300
    for b in feb:  # the slices judged so far are those since the boundary, not the last 30 days'
        assert b["total"] <= (parse_rfc3339(b["ts"]) - BERLIN_FEB) / 300
        bad = b["total"] - b["good"]
        assert b["budget_remaining"] == pytest.approx(1 - bad / (0.01 * slices_in_february), abs=1e-6)
    assert max(b["total"] for b in feb) == 8 * 3600 / 300  # the eight hours of February in the run
    # the spike's slices after the boundary cost February's budget, not those before it
    january_bad = max(b["total"] - b["good"] for b in jan)
    february_bad = max(b["total"] - b["good"] for b in feb)
    assert january_bad == 6 and february_bad == 6  # 30 minutes of 5-minute slices on each side


def test_a_week_calendar_reports_its_iso_week(run: dict) -> None:
    budgets = _whole(run, "assistant-cost")
    # Saturday 31 January to Sunday 1 February: one ISO week, Monday 26 January to Monday 2 February
    assert budgets and {b["period"]["start"] for b in budgets} == {"2026-01-26T00:00:00.000Z"}
    assert {b["window"] for b in budgets} == {"7d"}


def test_calendar_budget_events_are_budget_messages(run: dict) -> None:
    """The period field is part of the Budget type the readers and the JSON Schema share."""
    import jsonschema
    import msgspec

    from sloguard.core.messages.outputs import Budget

    schema = orjson.loads((Path(__file__).resolve().parents[3] / "schemas" / "budget.schema.json").read_bytes())
    with_period = [b for b in run["budget"] if "period" in b]
    assert with_period
    for b in with_period[:: max(1, len(with_period) // 50)]:
        assert msgspec.convert(b, Budget).period.calendar in ("month", "week")
        jsonschema.validate(b, schema)


def test_the_editors_schema_accepts_calendar_windows_and_refuses_unknown_keys() -> None:
    import jsonschema

    from sloguard.core.spec.config_schema import config_schema

    schema = config_schema()
    good = _config(**{"assistant-availability": {"calendar": "month", "timezone": "Europe/Berlin"},
                      "assistant-cost": {"calendar": "week"}})
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_config(**{"assistant-availability": {"calendar": "month", "zone": "UTC"}}), schema)
