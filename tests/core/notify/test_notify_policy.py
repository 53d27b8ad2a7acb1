"""The notifier's pure core: dedupe, grouping, reminders, retry timing and committable offsets,
all driven by an injected clock (plain numbers)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.notify.notify_policy import Batch, Notifications, NotifyPolicy, OffsetTracker

START = "2026-01-01T00:00:00.000Z"


def alert(aid: str = "a1", state: str = "firing", *, model: str = "fraud", severity: str = "page",
          started_at: str = START, ts: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "alert", "id": aid, "state": state, "severity": severity, "rule": "fast-burn",
            "slo": "fraud-availability", "dimension": "infrastructure", "model": model,
            "version": "v1", "segment": {}, "owner": "sre", "burn_rates": {"5m": 20.0, "1h": 15.0},
            "budget_remaining": 0.5, "started_at": started_at, "ts": ts or started_at,
            "summary": f"{aid} {state}", "actions": ["roll back"], **extra}


def ids(batch: Batch) -> list[str]:
    return [p.alert["id"] for p in batch.items]


def deliver_all(n: Notifications, now: float) -> list[Batch]:
    out = n.due(now)
    for b in out:
        n.delivered(b, now)
    return out


# -- grouping --------------------------------------------------------------------------------------


def test_alerts_for_one_model_within_the_window_go_out_as_one_message() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=30))
    for i, t in enumerate((0.0, 5.0, 10.0)):
        assert n.offer("sre", alert(f"a{i}"), ("t", 0, i), now=t) == "queued"
    assert n.next_due_at() == 30.0
    assert n.due(29.9) == []
    [batch] = n.due(30.0)
    assert (batch.target, batch.kind, batch.model, ids(batch)) == ("sre", "firing", "fraud", ["a0", "a1", "a2"])
    assert batch.tokens == [("t", 0, 0), ("t", 0, 1), ("t", 0, 2)]


def test_groups_are_per_target_model_and_kind() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=30))
    n.offer("sre", alert("a", model="fraud"), 1, 0.0)
    n.offer("sre", alert("b", model="recsys"), 2, 1.0)
    n.offer("data", alert("c", model="fraud"), 3, 2.0)
    n.offer("sre", alert("d", "resolved", model="fraud", started_at="2025-12-31T00:00:00Z"), 4, 3.0)
    batches = n.due(100.0)
    assert sorted((b.target, b.model, b.kind, tuple(ids(b))) for b in batches) == [
        ("data", "fraud", "firing", ("c",)),
        ("sre", "fraud", "firing", ("a",)),
        ("sre", "fraud", "resolved", ("d",)),
        ("sre", "recsys", "firing", ("b",)),
    ]


def test_a_full_group_is_sent_at_once() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=30, max_group_size=3))
    for i in range(4):
        n.offer("sre", alert(f"a{i}"), i, now=0.0)
    [full] = n.due(0.0)
    assert ids(full) == ["a0", "a1", "a2"]
    assert [ids(b) for b in n.due(30.0)] == [["a3"]]


def test_zero_window_or_ungrouped_targets_send_each_alert_at_once() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0))
    n.offer("sre", alert("a"), 1, 0.0)
    n.offer("sre", alert("b"), 2, 0.0)
    assert [ids(b) for b in n.due(0.0)] == [["a"], ["b"]]
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=30))
    n.offer("pager", alert("a"), 1, 0.0, group=False)
    assert [ids(b) for b in n.due(0.0)] == [["a"]]


def test_a_resolve_closes_the_group_holding_its_firing_so_the_firing_goes_first() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=30))
    n.offer("sre", alert("a"), 1, 0.0)
    n.offer("sre", alert("b"), 2, 1.0)
    n.offer("sre", alert("a", "resolved", ts="2026-01-01T00:00:10Z"), 3, 10.0)
    first = n.due(10.0)
    assert [(b.kind, ids(b)) for b in first] == [("firing", ["a", "b"])]
    n.delivered(first[0], 10.0)
    [resolved] = n.due(40.0)
    assert (resolved.kind, ids(resolved)) == ("resolved", ["a"])
    assert resolved.refs["a"]["posted_at"] == 10.0  # the message can say when the firing was posted


# -- dedupe ----------------------------------------------------------------------------------------


def test_a_notice_is_sent_once_per_episode_and_state() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0))
    assert n.offer("sre", alert("a"), 1, 0.0) == "queued"
    assert n.offer("sre", alert("a"), 2, 0.0) == "duplicate"  # queued already
    deliver_all(n, 0.0)
    assert n.offer("sre", alert("a"), 3, 5.0) == "duplicate"  # delivered already
    assert n.offer("other", alert("a"), 4, 5.0) == "queued"  # another target is another notice
    assert n.offer("sre", alert("a", "resolved"), 5, 6.0) == "queued"
    deliver_all(n, 6.0)
    assert n.offer("sre", alert("a", "resolved"), 6, 7.0) == "duplicate"
    assert n.offer("sre", alert("a"), 7, 7.0) == "duplicate"  # a late firing of a closed episode
    # the same id firing again later is a new episode
    assert n.offer("sre", alert("a", started_at="2026-01-02T00:00:00Z"), 8, 8.0) == "queued"


def test_a_resolve_without_a_known_firing_is_still_sent_and_says_so() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0))
    n.offer("sre", alert("a", "resolved"), 1, 0.0)
    [b] = n.due(0.0)
    assert b.refs["a"]["posted_at"] is None


def test_the_ledger_survives_a_snapshot_round_trip_through_json() -> None:
    pol = NotifyPolicy(min_interval_s=0, group_window_s=0, reminder_interval_s=3600)
    n = Notifications(pol)
    n.offer("sre", alert("a"), 1, 0.0)
    n.offer("sre", alert("b", severity="ticket"), 2, 0.0)
    n.offer("sre", alert("c"), 3, 0.0)
    deliver_all(n, 0.0)
    n.offer("sre", alert("c", "resolved"), 4, 1.0)
    deliver_all(n, 1.0)
    n.offer("sre", alert("d"), 5, 2.0)  # queued, not delivered: not in the ledger
    restored = Notifications.from_snapshot(pol, json.loads(json.dumps(n.snapshot())))
    for a in (alert("a"), alert("b", severity="ticket"), alert("c"), alert("c", "resolved")):
        assert restored.offer("sre", a, 9, 2.0) == "duplicate"
    assert restored.offer("sre", alert("d"), 9, 2.0) == "queued"
    assert restored.next_due_at() == 2.0
    assert [ids(b) for b in restored.due(3600.0)] == [["d"], ["a"]]  # d now, then a's reminder


def test_a_dead_lettered_notice_is_not_retried_or_reminded() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0, reminder_interval_s=60))
    n.offer("sre", alert("a"), 1, 0.0)
    [b] = n.due(0.0)
    n.dead_lettered(b, 0.0)
    assert n.offer("sre", alert("a"), 2, 1.0) == "duplicate"
    assert n.due(10_000.0) == []
    assert n.offer("sre", alert("a", "resolved"), 3, 2.0) == "queued"  # a fixed route gets the resolve


def test_closed_episodes_are_forgotten_after_the_retention() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0, forget_after_s=100))
    n.offer("sre", alert("a"), 1, 0.0)
    n.offer("sre", alert("b", severity="ticket"), 2, 0.0)
    deliver_all(n, 0.0)
    n.offer("sre", alert("a", "resolved"), 3, 1.0)
    deliver_all(n, 1.0)
    assert n.prune(50.0) == 0
    assert n.prune(102.0) == 1  # a resolved; b still firing is kept
    assert [k[:2] for k in n.episodes] == [("sre", "b")]  # keyed by episode: (target, id, started_at)


# -- reminders -------------------------------------------------------------------------------------


def test_pages_still_firing_are_reminded_every_interval_until_resolved() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0, reminder_interval_s=3600, max_reminders=0))
    n.offer("sre", alert("page"), 1, 0.0)
    n.offer("sre", alert("ticket", severity="ticket"), 2, 0.0)
    deliver_all(n, 0.0)
    assert n.next_due_at() == 3600.0
    assert n.due(3599.0) == []
    [r1] = n.due(3600.0)
    assert (r1.kind, ids(r1), r1.tokens) == ("reminder", ["page"], [])
    assert r1.refs["page"] == {"posted_at": 0.0, "reminders": 0}
    assert n.due(3600.0) == []  # not twice while one is in flight
    n.delivered(r1, 3601.0)
    assert n.next_due_at() == 7201.0
    [r2] = n.due(7201.0)
    assert r2.refs["page"]["reminders"] == 1
    n.delivered(r2, 7201.0)
    n.offer("sre", alert("page", "resolved"), 3, 8000.0)
    deliver_all(n, 8000.0)
    assert n.due(100_000.0) == []
    assert n.next_due_at() is None


def test_reminders_stop_at_the_limit_and_when_disabled() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0, reminder_interval_s=10, max_reminders=2))
    n.offer("sre", alert("a"), 1, 0.0)
    deliver_all(n, 0.0)
    sent = [len(deliver_all(n, t)) for t in (10.0, 20.0, 30.0, 40.0)]
    assert sent == [1, 1, 0, 0]
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0, reminder_interval_s=0))
    n.offer("sre", alert("a"), 1, 0.0)
    deliver_all(n, 0.0)
    assert n.next_due_at() is None
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=0, reminder_interval_s=10))
    n.offer("pager", alert("a"), 1, 0.0, remind=False)
    deliver_all(n, 0.0)
    assert n.due(100.0) == []


def test_reminders_for_one_model_are_grouped() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=5, reminder_interval_s=100))
    for i in range(3):
        n.offer("sre", alert(f"a{i}"), i, 0.0)
    deliver_all(n, 5.0)
    [r] = n.due(105.0)
    assert (r.kind, sorted(ids(r))) == ("reminder", ["a0", "a1", "a2"])


# -- retries ---------------------------------------------------------------------------------------


def test_failed_batches_come_back_with_backoff_or_after_retry_after() -> None:
    pol = NotifyPolicy(min_interval_s=0, group_window_s=0, retry_initial_s=5, retry_max_s=60)
    assert [pol.backoff_s(k) for k in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    n = Notifications(pol)
    n.offer("sre", alert("a"), 1, 0.0)
    [b] = n.due(0.0)
    assert n.retry_later(b, 0.0) == 5.0
    assert n.offer("sre", alert("a"), 2, 1.0) == "duplicate"  # still in flight
    assert n.due(4.9) == []
    [b] = n.due(5.0)
    assert n.retry_later(b, 5.0) == 15.0
    [b] = n.due(15.0)
    assert n.retry_later(b, 15.0, retry_after_s=120) == 135.0  # the receiver said so
    [b] = n.due(135.0)
    assert b.attempts == 3
    n.delivered(b, 135.0)
    assert n.pending_count == 0


def test_dropping_waiting_batches_of_revoked_partitions() -> None:
    n = Notifications(NotifyPolicy(min_interval_s=0, group_window_s=30))
    n.offer("sre", alert("a"), (("t", 0), 1), 0.0)
    n.offer("sre", alert("b", model="recsys"), (("t", 1), 1), 0.0)
    dropped = n.drop_waiting(lambda p: p.token[0] != ("t", 0))
    assert [ids(b) for b in dropped] == [["a"]]
    assert n.offer("sre", alert("a"), (("t", 0), 1), 1.0) == "queued"  # the next owner may send it
    assert sorted(ids(b)[0] for b in n.due(100.0)) == ["a", "b"]


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        NotifyPolicy(max_group_size=0)
    with pytest.raises(ValueError):
        NotifyPolicy(retry_initial_s=10, retry_max_s=5)
    with pytest.raises(ValueError):
        Notifications.from_snapshot(None, {"version": 99, "episodes": []})


# -- offsets ---------------------------------------------------------------------------------------


def test_only_a_finished_prefix_of_offsets_is_committed() -> None:
    t = OffsetTracker()
    tp = ("alerts", 0)
    for off, parts in ((10, 1), (11, 2), (12, 0), (13, 1)):
        t.add(tp, off, parts)
    assert t.committable() == {}
    t.done(tp, 11)
    t.done(tp, 13)
    assert t.committable() == {}
    t.done(tp, 10)
    assert t.committable() == {tp: 11}  # 11 has one of two notices left
    t.done(tp, 11)
    assert t.committable() == {tp: 14}
    t.committed({tp: 14})
    assert t.committable() == {}
    t.forget([tp])
    assert t.committable() == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=40), st.randoms())
def test_committed_offsets_never_pass_an_unfinished_message(
        messages: list[tuple[int, bool]], rnd: Any) -> None:
    t = OffsetTracker()
    tp = ("alerts", 0)
    open_parts = {}
    for off, (parts, _) in enumerate(messages):
        t.add(tp, off, parts)
        if parts:
            open_parts[off] = parts
    order = [off for off, p in open_parts.items() for _ in range(p)]
    rnd.shuffle(order)
    for off in order:
        t.done(tp, off)
        open_parts[off] -= 1
        unfinished = [o for o, p in open_parts.items() if p > 0]
        nxt = t.committable().get(tp)
        if nxt is not None:
            assert all(o >= nxt for o in unfinished)
            t.committed({tp: nxt})
    assert t.committable().get(tp, len(messages)) == len(messages)


def test_the_docstring_examples_run() -> None:
    import doctest

    import sloguard.core.notify.notify_policy as module

    assert doctest.testmod(module).failed == 0
