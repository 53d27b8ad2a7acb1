"""The notifier's pure decisions for incidents (sloguard/core/notify/incident_notify.py) and the pacing and
ordering rules shared with alerts (sloguard/core/notify/pacing.py,
sloguard/core/notify/notify_policy.py), on an injected
clock: one Slack message per incident, opens before resolves, one message a second per receiver,
Retry-After holding the whole receiver, every episode in the ledger."""

from __future__ import annotations

import doctest
import itertools
import json
from typing import Any

import sloguard.core.notify.pacing
from sloguard.core.notify.incident_notify import IncidentNotifications, Notified
from sloguard.core.notify.notify_policy import Notifications, NotifyPolicy

POLICY = NotifyPolicy(group_window_s=0, min_interval_s=1.0, retry_initial_s=5, retry_max_s=60)


def msg(inc: str, seq: int, state: str = "firing") -> dict[str, Any]:
    return {"type": "incident", "id": inc, "seq": seq, "state": state, "model": "fraud", "owner": "sre",
            "severity": "page", "opened_at": "2026-01-01T00:00:00Z", "ts": "2026-01-01T00:00:00Z", "members": [{}]}


def run(core: Any, until: float, step: float = 0.25, fail: Any = None) -> list[tuple[float, str, str, str, int]]:
    """Deliver whatever is due every `step` seconds until `until`; (t, target, kind, incident, seq)."""
    out = []
    t = 0.0
    while t <= until:
        for s in core.due(t):
            wait = fail(s, t) if fail is not None else None
            if wait is not None:
                core.retry_later(s, t, wait)
                continue
            out.append((t, s.target, s.kind, s.incident, s.message["seq"]))
            core.delivered(s, t, ref={"channel": "C", "ts": s.incident} if s.kind == "post" else None)
        t = round(t + step, 6)
    return out


def test_the_api_target_posts_once_then_edits_with_the_newest_state():
    core = IncidentNotifications(POLICY, updates={"sre": True})
    for seq in (1, 2, 3):
        assert core.offer("sre", msg("a", seq), ("t", seq), 0.0) == "queued"
    sent = run(core, 0.0)
    assert sent == [(0.0, "sre", "post", "a", 3)]  # three messages waiting: one post with the newest
    core.offer("sre", msg("a", 4), ("t", 4), 0.5)
    core.offer("sre", msg("a", 5, "resolved"), ("t", 5), 0.5)
    assert run(core, 3.0)[0][1:] == ("sre", "update", "a", 5)
    assert core.offer("sre", msg("a", 4), ("t", 4), 4.0) == "duplicate"  # consumed again after a restart
    assert core.ledger[("sre", "a")].ref == {"channel": "C", "ts": "a"} and core.ledger[("sre", "a")].resolved


def test_webhooks_get_the_open_and_the_resolve_only_in_that_order_even_when_the_open_is_retried():
    core = IncidentNotifications(POLICY)
    core.offer("hook", msg("a", 1), 1, 0.0)
    core.offer("hook", msg("a", 2), 2, 0.0)
    core.offer("hook", msg("a", 3, "resolved"), 3, 0.0)
    refused = {"n": 0}

    def fail(send: Any, t: float) -> float | None:  # the open is refused twice (429, Retry-After 3)
        if send.kind == "open" and refused["n"] < 2:
            refused["n"] += 1
            return 3.0
        return None

    sent = run(core, 10.0, fail=fail)
    assert [(k, seq) for _t, _h, k, _i, seq in sent] == [("open", 2), ("resolve", 3)]
    assert sent[0][0] == 6.0 and sent[1][0] >= 7.0  # after two Retry-Afters; then one second apart
    assert core.offer("hook", msg("a", 2), 2, 11.0) == "duplicate"
    assert core.offer("hook", msg("a", 3, "resolved"), 3, 11.0) == "duplicate"


def test_one_message_a_second_per_receiver_and_retry_after_holds_every_message_for_it():
    core = IncidentNotifications(POLICY, pace_keys={"sre": "hook1", "sre-copy": "hook1", "data": "hook2"})
    for i in range(4):
        core.offer("sre", msg(f"s{i}", 1), i, 0.0)
        core.offer("data", msg(f"d{i}", 1), i, 0.0)
    core.offer("sre-copy", msg("c0", 1), 9, 0.0)
    held = {"done": False}

    def fail(send: Any, t: float) -> float | None:
        if send.target == "data" and not held["done"]:
            held["done"] = True
            return 5.0
        return None

    sent = run(core, 20.0, fail=fail)
    hook1 = [t for t, target, *_ in sent if target in ("sre", "sre-copy")]
    hook2 = [t for t, target, *_ in sent if target == "data"]
    assert len(hook1) == 5 and len(hook2) == 4
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(hook1))  # two routes, one webhook: one pace
    assert hook2[0] == 5.0 and all(b - a >= 1.0 for a, b in itertools.pairwise(hook2))


def test_the_ledger_survives_a_restart_through_its_journal_entries():
    core = IncidentNotifications(POLICY, updates={"api": True})
    core.offer("api", msg("a", 1), 1, 0.0)
    core.offer("hook", msg("a", 1), 1, 0.0)
    run(core, 2.0)
    entries = [json.loads(json.dumps(e)) for e in core.take_changes()]
    again = IncidentNotifications.from_snapshot(POLICY, {"version": 1, "episodes": entries}, updates={"api": True})
    assert again.offer("api", msg("a", 1), 1, 3.0) == "duplicate"
    assert again.offer("hook", msg("a", 2), 2, 3.0) == "duplicate"  # webhooks: no updates
    assert again.offer("api", msg("a", 2), 2, 3.0) == "queued"
    [send] = again.due(3.0)
    assert send.kind == "update" and send.ref == {"channel": "C", "ts": "a"}
    again.delivered(send, 3.0)
    again.ledger[("hook", "a")].resolved = True
    assert again.prune(3.0 + POLICY.forget_after_s + 1) == 1 and list(again.ledger) == [("api", "a")]
    assert Notified.from_json(entries[0]).incident == "a"


def test_a_message_arriving_while_its_post_is_in_flight_is_sent_after_it():
    core = IncidentNotifications(NotifyPolicy(group_window_s=0, min_interval_s=0), updates={"api": True})
    core.offer("api", msg("a", 1), 1, 0.0)
    [post] = core.due(0.0)
    core.offer("api", msg("a", 2), 2, 0.0)  # while the post is on the wire
    assert core.due(0.0) == []
    core.delivered(post, 0.0, ref={"channel": "C", "ts": "1.0"})
    [update] = core.due(0.0)
    assert (update.kind, update.message["seq"], update.ref["ts"], update.tokens) == ("update", 2, "1.0", [2])


# -- alerts: the same pacing and order ------------------------------------------------------------------


def alert(aid: str, state: str = "firing", started: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"id": aid, "state": state, "severity": "page", "model": "fraud", "started_at": started,
            "ts": started}


def test_alerts_are_paced_per_receiver_and_a_resolve_never_precedes_its_firing():
    n = Notifications(POLICY)
    n.offer("sre", alert("a"), 1, 0.0)
    n.offer("sre", alert("b"), 2, 0.0)
    n.offer("sre", alert("a", "resolved"), 3, 0.0)
    first = n.due(0.0)
    assert [(b.kind, b.items[0].alert["id"]) for b in first] == [("firing", "a")]
    n.retry_later(first[0], 0.0, 4.0)  # 429, Retry-After 4: nothing goes to sre before t = 4
    assert n.due(3.9) == [] and n.next_due_at() == 4.0
    order = []
    t = 4.0
    while t < 10:
        for b in n.due(t):
            order.append((t, b.kind, b.items[0].alert["id"]))
            n.delivered(b, t)
        t += 0.5
    assert [o[1:] for o in order] == [("firing", "a"), ("firing", "b"), ("resolved", "a")]
    assert [o[0] for o in order] == [4.0, 5.0, 6.0]


def test_every_episode_of_an_alert_is_in_the_ledger():
    n = Notifications(NotifyPolicy(group_window_s=0, min_interval_s=0))
    first, second = "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z"
    for a in (alert("a", started=first), alert("a", "resolved", first), alert("a", started=second)):
        n.offer("sre", a, None, 0.0)
        for b in n.due(0.0):
            n.delivered(b, 0.0)
        for b in n.due(0.0):
            n.delivered(b, 0.0)
    # a restart re-reads the first episode: each notice of it is a duplicate, not a re-post
    assert n.offer("sre", alert("a", started=first), None, 1.0) == "duplicate"
    assert n.offer("sre", alert("a", "resolved", first), None, 1.0) == "duplicate"
    assert len(n.episodes) == 2


def test_the_pacing_doctest_runs():
    assert doctest.testmod(sloguard.core.notify.pacing).failed == 0


def test_a_rising_severity_is_a_notice_and_firing_pages_are_reminded_until_they_resolve():
    pol = NotifyPolicy(group_window_s=0, min_interval_s=0, reminder_interval_s=3600, max_reminders=2)
    hooks = IncidentNotifications(pol)
    api = IncidentNotifications(pol, updates={"api": True})
    ticket = {**msg("a", 1), "severity": "ticket"}
    for core, target in ((hooks, "hook"), (api, "api")):
        core.offer(target, ticket, 1, 0.0)
    assert [s.kind for s in hooks.due(0.0)] == ["open"]
    hooks.delivered(hooks._pending[("hook", "a", "open")], 0.0)
    [post] = api.due(0.0)
    api.delivered(post, 0.0, ref={"channel": "C", "ts": "1.0"})
    assert hooks.offer("hook", {**msg("a", 2), "severity": "ticket"}, 2, 10.0) == "duplicate"
    assert hooks.offer("hook", msg("a", 3), 3, 20.0) == "queued"  # now it pages: people must hear it
    [esc] = hooks.due(20.0)
    assert esc.kind == "escalate" and esc.message["severity"] == "page"
    hooks.delivered(esc, 20.0)
    api.offer("api", msg("a", 3), 3, 20.0)
    [upd] = api.due(20.0)  # the edit first, then the reply in its thread that pings people
    api.delivered(upd, 20.0)
    [reply] = api.due(20.0)
    assert (upd.kind, reply.kind, reply.ref) == ("update", "escalate", {"channel": "C", "ts": "1.0"})
    api.delivered(reply, 20.0)
    # reminders: an hour after the last notice, twice at most; the API replies in the thread
    assert hooks.due(3619.0) == [] and hooks.next_due_at() == 3620.0
    kinds = []
    for t in (3620.0, 7220.0, 10820.0, 14420.0):
        for core in (hooks, api):
            for s in core.due(t):
                kinds.append((s.target, s.kind, s.ref["ts"] if s.ref else None))
                core.delivered(s, t)
    assert kinds == [("hook", "remind", None), ("api", "remind", "1.0")] * 2
    assert hooks.ledger[("hook", "a")].reminders == 2 and hooks.ledger[("hook", "a")].ref is None
    hooks.offer("hook", msg("a", 4, "resolved"), 4, 15000.0)
    [res] = hooks.due(15000.0)
    hooks.delivered(res, 15000.0)
    assert hooks.next_due_at() is None  # resolved: no more reminders


def test_the_cli_previews_an_incidents_file(tmp_path, capsys):
    from sloguard.apps.notifier import main

    path = tmp_path / "incidents.jsonl"
    rows = [msg("a", 1), msg("a", 2), msg("b", 1), msg("a", 3, "resolved"), msg("b", 2, "resolved")]
    path.write_text("\n".join(json.dumps({**m, "summary": "s"}) for m in rows) + "\n")
    assert main(["--alerts", str(path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # webhooks: a and b each open and resolve; the API: one message per incident, then edits
    assert last.startswith("2 incidents -> 4 webhook messages (opens and resolves, 0 escalations, 0 reminders); "
                           "Slack API: 2 messages")


def test_a_new_slo_joining_is_a_notice_but_new_keys_of_the_same_slos_are_not():
    def state(seq: int, slos: list[str], keys: int = 1) -> dict[str, Any]:
        members = [{"slo": slo, "rule": "fast-burn", "state": "firing", "segment": {"region": f"r{k}"}}
                   for slo in slos for k in range(keys)]
        return {**msg("a", seq), "members": members}

    hooks = IncidentNotifications(NotifyPolicy(group_window_s=0, min_interval_s=0))
    sent = []
    for seq, (slos, keys) in enumerate([(["fresh"], 1), (["fresh"], 4), (["fresh", "dq"], 4), (["dq", "fresh"], 5)], 1):
        hooks.offer("hook", state(seq, slos, keys), seq, float(seq))
        for s in hooks.due(float(seq)):
            sent.append((s.kind, s.message["seq"]))
            hooks.delivered(s, float(seq))
    assert sent == [("open", 1), ("escalate", 3)]
    assert hooks.ledger[("hook", "a")].slos == ["dq", "fresh"]
