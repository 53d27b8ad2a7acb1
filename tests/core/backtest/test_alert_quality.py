"""Backtest scoring (sloguard/core/backtest/alert_quality.py) on hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloguard.core.backtest.alert_quality import (
    BudgetSummary,
    Incident,
    firing_spans,
    key_label,
    key_of,
    key_stats,
    rank_key,
    score,
    union_length,
)
from sloguard.core.spec.timeutil import to_rfc3339

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def at(minutes: float) -> str:
    return to_rfc3339(T0 + 60 * minutes)


def alert(
    id_: str,
    state: str,
    minute: float,
    severity: str = "page",
    slo: str | None = "avail",
    segment: dict | None = None,
    model: str = "fraud",
    rule: str = "fast-burn",
) -> dict:
    return {
        "id": id_,
        "state": state,
        "ts": at(minute),
        "severity": severity,
        "rule": rule,
        "slo": slo,
        "model": model,
        "version": None,
        "segment": segment or {},
    }


def budget(minute: float, remaining: float | None, slo: str = "avail", segment: dict | None = None) -> dict:
    return {
        "type": "budget",
        "slo": slo,
        "dimension": "infrastructure",
        "model": "fraud",
        "version": None,
        "segment": segment or {},
        "ts": at(minute),
        "objective": 0.99,
        "window": "30d",
        "budget_remaining": remaining,
    }


@pytest.mark.parametrize(
    ("intervals", "length"),
    [
        ([], 0.0),
        ([(0, 10)], 10.0),
        ([(0, 10), (5, 20)], 20.0),  # overlap counted once
        ([(0, 10), (10, 20)], 20.0),  # touching
        ([(30, 40), (0, 10), (5, 8)], 20.0),  # unsorted, nested
    ],
)
def test_union_length(intervals, length):
    assert union_length(intervals) == length


def test_spans_pair_firing_with_resolved_by_id_and_leave_the_rest_open():
    spans = firing_spans(
        [
            alert("a", "firing", 10),
            alert("b", "firing", 12, severity="ticket", rule="slow-burn"),
            alert("a", "firing", 11),  # a repeat of a firing alert does not restart it
            alert("a", "resolved", 30),
            alert("c", "resolved", 31),  # resolved without firing: ignored
        ]
    )
    assert [(s.rule, s.start - T0, None if s.end is None else s.end - T0) for s in spans] == [
        ("fast-burn", 600.0, 1800.0),
        ("slow-burn", 720.0, None),
    ]


def test_key_stats_counts_union_firing_time_budget_end_and_exhaustion():
    eu = {"region": "eu"}
    alerts = [
        alert("p1", "firing", 10, segment=eu),
        alert("t1", "firing", 20, severity="ticket", segment=eu),
        alert("p1", "resolved", 30, segment=eu),
        alert("t1", "resolved", 40, segment=eu),
        alert("p2", "firing", 50, segment=eu),  # still firing at the run's end (minute 60)
        alert("n", "firing", 5, slo=None),  # no-data: its own key
    ]
    summary = BudgetSummary()
    for m, r in [(0, 1.0), (10, 0.5), (20, 0.0), (30, -0.2), (60, 0.1)]:
        summary.add(budget(m, r, segment=eu))
    summary.add(budget(0, None))
    summary.add(budget(60, 0.9))
    stats = {key_label(s.key): s for s in key_stats(firing_spans(alerts), summary, T0 + 3600)}
    eu_stats = stats["avail region=eu"]
    assert (eu_stats.pages, eu_stats.tickets) == (2, 1)
    assert eu_stats.firing_s == 30 * 60 + 10 * 60  # [10, 40) and [50, 60)
    assert eu_stats.budget_end == 0.1
    assert eu_stats.exhausted_after_s == 20 * 60  # first <= 0 at minute 20, key seen from minute 0
    whole = stats["avail (whole model)"]
    assert (whole.pages, whole.budget_end, whole.exhausted_after_s) == (0, 0.9, None)
    assert stats["no-data (whole model)"].firing_s == 55 * 60
    assert summary.meta[("fraud", "avail")]["objective"] == 0.99
    assert eu_stats.to_json()["budget_consumed_end"] == pytest.approx(0.9)


# One run of 100 minutes; incidents X [10, 20] (grace 5 min) and Y [50, 60], and Z of another model.
INCIDENTS = [
    Incident("X", "fraud", T0 + 600, T0 + 1200, grace_s=300),
    Incident("Y", "fraud", T0 + 3000, T0 + 3600),
]


@pytest.mark.parametrize(
    ("pages", "precision", "recall", "detection_s", "reset_s"),
    [
        # no pages: precision undefined, nothing detected
        ([], None, 0.0, None, None),
        # one page [12, 25] on X: detected after 2 min, resets 5 min after X's end
        ([(12, 25)], 1.0, 0.5, 120.0, 300.0),
        # a page already firing before X [5, 15] detects it at once (0), resets 0 (resolved before end)
        ([(5, 15)], 1.0, 0.5, 0.0, 0.0),
        # firing at minute 24 is inside X's grace (end 20 + 5): still a detection, 14 min late
        ([(24, 26)], 1.0, 0.5, 840.0, 360.0),
        # minute 26 is past the grace: a false page; [30, 40] too
        ([(26, 28), (30, 40)], 0.0, 0.0, None, None),
        # X by two pages (first 11, last resolves 22) and Y by one (55-70), one false (80-85)
        ([(11, 15), (13, 22), (55, 70), (80, 85)], 0.75, 1.0, (60 + 300) / 2, (120 + 600) / 2),
    ],
)
def test_score_table(pages, precision, recall, detection_s, reset_s):
    alerts = []
    for i, (a, b) in enumerate(pages):
        alerts += [alert(f"p{i}", "firing", a), alert(f"p{i}", "resolved", b)]
    s = score(firing_spans(alerts), INCIDENTS, T0 + 6000)
    assert s.pages == len(pages)
    assert s.precision == precision
    assert s.recall == recall
    assert s.detection_s == detection_s
    assert s.reset_s == reset_s


def test_score_only_pages_of_the_incidents_model_count_and_tickets_never_do():
    alerts = [
        alert("r", "firing", 12, model="recsys"),
        alert("t", "firing", 12, severity="ticket"),
        alert("p", "firing", 55),  # still firing at the end: detected, reset unknown
    ]
    s = score(firing_spans(alerts), INCIDENTS, T0 + 6000)
    assert (s.pages, s.tickets, s.precision, s.recall) == (2, 1, 0.5, 0.5)
    y = s.incidents[1]
    assert (y.detection_s, y.reset_s, y.still_firing) == (300.0, None, True)
    assert s.to_json()["incidents"][0] == {
        "incident": "X",
        "model": "fraud",
        "pages": 0,
        "detected": False,
        "detection_s": None,
        "reset_s": None,
        "still_firing": False,
    }


def test_without_incidents_precision_and_recall_are_undefined_and_the_quietest_config_ranks_first():
    noisy = score(firing_spans([alert("a", "firing", 1), alert("b", "firing", 2)]), [], T0 + 600)
    quiet = score(firing_spans([alert("a", "firing", 1)]), [], T0 + 600)
    assert (noisy.precision, noisy.recall) == (None, None)
    assert sorted([noisy, quiet], key=rank_key) == [quiet, noisy]


def test_ranking_prefers_recall_then_precision():
    def s(recall, precision, pages):
        return score([], [], 0.0).__class__(pages, 0, precision, recall, None, None)

    a, b, c = s(1.0, 0.2, 50), s(0.5, 1.0, 1), s(1.0, 0.9, 60)
    assert sorted([a, b, c], key=rank_key) == [c, a, b]


def test_incident_from_manifest_entry_and_key_label():
    inc = Incident.from_manifest({"name": "n", "start": 10, "end": 20}, model="fraud")
    assert inc == Incident("n", "fraud", 10.0, 20.0, 0.0)
    key = key_of({"model": "fraud", "slo": "avail", "version": "v2", "segment": {"region": "eu"}})
    assert key == key_of({"model": "fraud", "slo": "avail", "version": "v3", "segment": {"region": "eu"}})
    assert key_label(key) == "avail region=eu"


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 20)), max_size=12))
def test_union_length_is_the_number_of_unit_cells_covered(pairs):
    """Oracle: on integer intervals the union's length is the count of covered unit cells."""
    intervals = [(a, a + n) for a, n in pairs]
    cells = {c for a, b in intervals for c in range(a, b)}
    assert union_length(intervals) == len(cells)
