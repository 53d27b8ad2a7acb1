"""What the notifier sends, and when: dedupe, grouping, reminders and retry timing, with no I/O.

This is the notifier's pure core. It never reads a clock: every call takes `now` (seconds, from
whatever clock the caller injects), so the timing rules are table-testable. It does not talk to
Slack or Kafka either; the driver (`connectors/notifier.py`) offers alerts, asks which batches are
`due`, sends them, and reports each outcome back (`delivered`, `dead_lettered`, `retry_later`).

Rules:

- **Episodes, not ids, are deduplicated.** An alert id is a fingerprint of slo + model + segment +
  rule, so the same id fires again after it resolves. A notice is identified by
  (target, id, started_at, state): a repeat of a notice already delivered (or queued) is a
  duplicate; a `firing` with a new `started_at` is a new episode.
- **Grouping.** Alerts for one target, one model and one kind (`firing`, `resolved`) that arrive
  within `group_window_s` of the first go out as one message (at most `max_group_size` alerts).
  A `resolved` arriving while its `firing` still waits in a group closes that group at once, so
  the firing notice always goes first.
- **Reminders.** A delivered `firing` whose severity is in `reminder_severities` is re-posted every
  `reminder_interval_s` until it resolves, at most `max_reminders` times (0: no limit).
- **Retries.** A batch that failed for a reason that may pass (429, 5xx, timeouts) comes back after
  `retry_after_s` when the receiver said so, else after an exponential backoff.
- **Pacing** (sloguard/core/notify/pacing.py). At most one message per `min_interval_s` goes to each receiver
  (its pace key: two routes on one webhook share it), and a receiver's Retry-After holds every
  batch bound for it, not only the one that was refused.
- **Order.** A `resolved` notice never goes out while its episode's `firing` notice is unsettled
  (queued, in flight or being retried): it waits for it.
- **Every episode** of every alert has its own ledger entry (target, id, started_at), kept until
  `forget_after_s` after it closed, so an old episode consumed again after a restart is a duplicate.

The ledger of delivered episodes is what survives restarts: `snapshot()` is plain JSON-able data
and `Notifications.from_snapshot(policy, data)` rebuilds the core from it; `take_changes()` gives
the entries written since the last call, so a driver can journal them instead of rewriting the
whole snapshot after every message. Groups still waiting are
not snapshotted: their Kafka offsets are not committed yet, so they are consumed again.

Not for: rendering (`connectors/slack.py`) or deciding where an alert goes (the driver's routes).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sloguard.core.notify.offsets import OffsetTracker
from sloguard.core.notify.pacing import Pacer
from sloguard.core.spec.timeutil import parse_rfc3339

DEFAULT_GROUP_ID = "sloguard-notifier"  # the notifier's consumer group unless its config names one

__all__ = [
    "SNAPSHOT_VERSION",
    "Batch",
    "Episode",
    "Notifications",
    "NotifyPolicy",
    "OffsetTracker",
    "Pending",
]

FIRING = "firing"
RESOLVED = "resolved"
REMINDER = "reminder"
SNAPSHOT_VERSION = 1
_SEVERITY_RANK = {"page": 2, "ticket": 1}


@dataclass(frozen=True)
class NotifyPolicy:
    """Timing rules of the notifier (seconds); the defaults suit a production Slack channel."""

    group_window_s: float = 30.0
    max_group_size: int = 10
    reminder_interval_s: float = 4 * 3600.0  # 0 disables reminders
    reminder_severities: frozenset[str] = frozenset({"page"})
    max_reminders: int = 6  # 0: remind until resolved
    retry_initial_s: float = 5.0
    retry_max_s: float = 300.0
    forget_after_s: float = 7 * 86_400.0  # resolved episodes are remembered this long
    min_interval_s: float = 1.0  # per receiver (webhook): Slack allows about one message a second

    def __post_init__(self) -> None:
        if self.group_window_s < 0:
            raise ValueError("group_window_s must be >= 0")
        if self.max_group_size < 1:
            raise ValueError("max_group_size must be >= 1")
        if self.reminder_interval_s < 0 or self.max_reminders < 0:
            raise ValueError("reminder_interval_s and max_reminders must be >= 0")
        if self.retry_initial_s <= 0 or self.retry_max_s < self.retry_initial_s:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s")
        if self.min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")

    def backoff_s(self, attempts: int) -> float:
        """Delay before retry number `attempts` (1, 2, ...): initial x 2^(attempts-1), capped."""
        return min(self.retry_max_s, self.retry_initial_s * 2.0 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Pending:
    """One alert bound for one target. `token` is the driver's handle (e.g. its Kafka offset)."""

    target: str
    alert: Mapping[str, Any]
    token: Hashable | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return notice_key(self.target, self.alert)


@dataclass
class Batch:
    """One message to send: alerts of one kind for one target and model.

    `refs` maps an alert id to what the message should say about its firing notice, for resolved
    alerts and reminders: `{"posted_at": when it was posted or None, "reminders": count so far}`.
    """

    target: str
    kind: str  # firing | resolved | reminder
    model: str
    items: list[Pending]
    opened_at: float
    due_at: float
    attempts: int = 0
    refs: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int = 0

    @property
    def severity(self) -> str:
        """The most urgent severity in the batch (page > ticket)."""
        return max((str(p.alert.get("severity", "ticket")) for p in self.items),
                   key=lambda s: _SEVERITY_RANK.get(s, 0))

    @property
    def tokens(self) -> list[Hashable]:
        return [p.token for p in self.items if p.token is not None]


@dataclass
class Episode:
    """What was last delivered for one (target, alert id): the ledger entry."""

    target: str
    id: str
    started_at: str
    state: str  # firing | resolved: the last notice settled for this episode
    at: float  # when it was settled
    dead: bool = False  # it went to the dead letters instead of the receiver
    posted_at: float | None = None  # when the firing notice was posted
    last_posted_at: float | None = None  # firing notice or latest reminder
    reminders: int = 0
    remind: bool = False
    alert: dict[str, Any] | None = None  # kept while reminders may be due

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Episode:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def notice_key(target: str, alert: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(target, alert id, started_at, state): what makes one notice distinct."""
    return (target, str(alert.get("id")), str(alert.get("started_at")), str(alert.get("state")))


def alert_epoch(alert: Mapping[str, Any], field_name: str) -> float | None:
    """Epoch seconds of an alert's RFC 3339 (or epoch-number) timestamp field, or None."""
    value = alert.get(field_name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_rfc3339(value) if isinstance(value, str) else None


class Notifications:
    """The notifier's decisions: feed alerts with `offer`, send what `due` returns, report back.

    >>> n = Notifications(NotifyPolicy(group_window_s=30))
    >>> a = {"id": "a1", "state": "firing", "severity": "page", "model": "fraud",
    ...      "started_at": "2026-01-01T00:00:00Z"}
    >>> n.offer("sre", a, token=("t", 0, 7), now=100.0)
    'queued'
    >>> n.due(now=110.0)
    []
    >>> [b.kind for b in n.due(now=130.0)]
    ['firing']
    """

    def __init__(self, policy: NotifyPolicy | None = None,
                 episodes: Iterable[Episode] = (), pace_keys: Mapping[str, Hashable] | None = None) -> None:
        self.policy = policy or NotifyPolicy()
        self.episodes: dict[tuple[str, str, str], Episode] = {(e.target, e.id, e.started_at): e for e in episodes}
        self.pacer = Pacer(self.policy.min_interval_s)
        self.pace_keys = dict(pace_keys or {})
        self._open: dict[tuple[str, str, str], Batch] = {}  # (target, kind, model) -> batch
        self._waiting: list[tuple[float, int, Batch]] = []  # closed or retrying, by due time
        self._queued: set[tuple[str, str, str, str]] = set()  # notice keys in open/waiting batches
        self._reminding: set[tuple[str, str, str]] = set()  # episodes with a reminder in flight
        self._changed: dict[tuple[str, str, str], Episode] = {}  # ledger entries not yet taken
        self._seq = itertools.count()

    # -- intake ---------------------------------------------------------------------------------

    def offer(self, target: str, alert: Mapping[str, Any], token: Hashable | None, now: float,
              *, group: bool = True, remind: bool = True) -> str:
        """Take one alert for `target`; returns `"queued"` or `"duplicate"` (nothing to send: a
        repeat, or an alert that fired or resolved during a silence, which carries `silenced`).

        `group=False` sends it on its own at once (receivers that group themselves, e.g. a
        PagerDuty-style webhook); `remind=False` never reminds about it on this target.
        """
        if alert.get("silenced"):  # sloguard/core/spec/adjustments.py: re-sent unsilenced if it outlives the silence
            return "duplicate"
        item = Pending(target, dict(alert), token)
        key = item.key
        if key in self._queued or self._already_delivered(target, alert):
            return "duplicate"
        state = key[3]
        kind = RESOLVED if state == RESOLVED else FIRING
        if kind == RESOLVED:
            self._close_group_holding(target, key[1], key[2])
        self._queued.add(key)
        model = str(alert.get("model") or "")
        if not group or self.policy.group_window_s == 0:
            self._push(Batch(target, kind, model, [item], now, now, seq=next(self._seq)),
                       remind)
            return "queued"
        gkey = (target, kind, model)
        batch = self._open.get(gkey)
        if batch is None:
            batch = Batch(target, kind, model, [], now, now + self.policy.group_window_s,
                          seq=next(self._seq))
            self._open[gkey] = batch
        batch.items.append(item)
        batch.refs.setdefault(key[1], {})["remind"] = remind
        if len(batch.items) >= self.policy.max_group_size:
            del self._open[gkey]
            batch.due_at = now
            self._push(batch, None)
        return "queued"

    def pace_key(self, target: str) -> Hashable:
        """The receiver a target posts to (targets on one webhook share their pace)."""
        return self.pace_keys.get(target, target)

    def _already_delivered(self, target: str, alert: Mapping[str, Any]) -> bool:
        ep = self.episodes.get((target, str(alert.get("id")), str(alert.get("started_at"))))
        if ep is None:
            return False
        if alert.get("state") == FIRING:
            return True  # this episode's firing was settled (or it has resolved already)
        return ep.state == RESOLVED

    def _close_group_holding(self, target: str, alert_id: str, started_at: str) -> None:
        """Send the open group holding this episode's firing now, so it precedes the resolve."""
        for gkey, batch in list(self._open.items()):
            if gkey[0] == target and gkey[1] == FIRING and any(
                    str(p.alert.get("id")) == alert_id and str(p.alert.get("started_at")) == started_at
                    for p in batch.items):
                del self._open[gkey]
                batch.due_at = min(batch.due_at, batch.opened_at)
                self._push(batch, None)

    def _push(self, batch: Batch, remind: bool | None) -> None:
        if remind is not None:
            for p in batch.items:
                batch.refs.setdefault(str(p.alert.get("id")), {})["remind"] = remind
        heapq.heappush(self._waiting, (batch.due_at, batch.seq, batch))

    # -- output ---------------------------------------------------------------------------------

    def due(self, now: float) -> list[Batch]:
        """Batches to send now, oldest first; each must be reported back exactly once."""
        for gkey, batch in list(self._open.items()):
            if batch.due_at <= now:
                del self._open[gkey]
                self._push(batch, None)
        self._queue_reminders(now)
        out, later = [], []
        while self._waiting and self._waiting[0][0] <= now:
            batch = heapq.heappop(self._waiting)[2]
            key = self.pace_key(batch.target)
            if not self.pacer.ready(key, now):
                batch.due_at = self.pacer.next_at(key)
                later.append(batch)
            elif batch.kind == RESOLVED and self._firing_unsettled(batch):
                batch.due_at = self._firing_due(batch, now)  # when the firing goes (now: it is going now)
                later.append(batch)
            else:
                self.pacer.sent(key, now)
                out.append(batch)
        for batch in later:
            self._push(batch, None)
        for batch in out:
            self._attach_refs(batch)
        return out

    def _firing_due(self, batch: Batch, now: float) -> float:
        ids = {(str(p.alert.get("id")), str(p.alert.get("started_at"))) for p in batch.items}
        dues = [b.due_at for b in self._all_waiting() if b.kind == FIRING and b.target == batch.target
                and any((str(p.alert.get("id")), str(p.alert.get("started_at"))) in ids for p in b.items)]
        return max([now, *dues])

    def _firing_unsettled(self, batch: Batch) -> bool:
        """Whether a firing notice of an episode this resolved batch closes is still unsettled."""
        return any((batch.target, str(p.alert.get("id")), str(p.alert.get("started_at")), FIRING) in self._queued
                   for p in batch.items)

    def flush_all(self, now: float) -> list[Batch]:
        """Every batch still waiting, regardless of its due time or pace (shutdown, rebalance);
        firing batches first. A driver must stop sending to a receiver after a failure."""
        for batch in self._open.values():
            self._push(batch, None)
        self._open.clear()
        out = [heapq.heappop(self._waiting)[2] for _ in range(len(self._waiting))]
        out.sort(key=lambda b: (b.kind == RESOLVED, b.due_at, b.seq))
        for batch in out:
            self._attach_refs(batch)
        return out

    def next_due_at(self) -> float | None:
        """Earliest time a batch or a reminder becomes due, or None when nothing is pending."""
        times = [b.due_at for b in self._open.values()]
        if self._waiting:
            b = self._waiting[0][2]
            times.append(max(self._waiting[0][0], self.pacer.next_at(self.pace_key(b.target))))
        times.extend(t for t in (self._reminder_due_at(e) for e in self.episodes.values())
                     if t is not None)
        return min(times) if times else None

    @property
    def pending_count(self) -> int:
        """Alerts queued but not yet reported back."""
        return len(self._queued) + len(self._reminding)

    def _attach_refs(self, batch: Batch) -> None:
        if batch.kind == FIRING:
            return
        for p in batch.items:
            ep = self.episodes.get((batch.target, str(p.alert.get("id")), str(p.alert.get("started_at"))))
            ref = batch.refs.setdefault(str(p.alert.get("id")), {})
            ref["posted_at"] = ep.posted_at if ep else None
            ref["reminders"] = ep.reminders if ep else 0

    # -- reminders ------------------------------------------------------------------------------

    def _reminder_due_at(self, ep: Episode) -> float | None:
        pol = self.policy
        if (ep.state != FIRING or ep.dead or not ep.remind or pol.reminder_interval_s <= 0
                or ep.last_posted_at is None or ep.alert is None
                or (ep.target, ep.id, ep.started_at) in self._reminding
                or (pol.max_reminders and ep.reminders >= pol.max_reminders)):
            return None
        return ep.last_posted_at + pol.reminder_interval_s

    def _queue_reminders(self, now: float) -> None:
        groups: dict[tuple[str, str], Batch] = {}
        for ep in self.episodes.values():
            t = self._reminder_due_at(ep)
            if t is None or t > now or ep.alert is None:  # alert checked again for type checkers
                continue
            model = str(ep.alert.get("model") or "")
            batch = groups.get((ep.target, model))
            if batch is None or len(batch.items) >= self.policy.max_group_size:
                batch = Batch(ep.target, REMINDER, model, [], now, now, seq=next(self._seq))
                groups[(ep.target, model)] = batch
                self._push(batch, None)
            batch.items.append(Pending(ep.target, ep.alert, None))
            self._reminding.add((ep.target, ep.id, ep.started_at))

    # -- outcomes -------------------------------------------------------------------------------

    def delivered(self, batch: Batch, now: float, ref: Any = None) -> None:
        """The receiver accepted `batch`: record its notices in the ledger (`ref`: unused here)."""
        for p in batch.items:
            self._settle(batch, p, now, dead=False)

    def dead_lettered(self, batch: Batch, now: float) -> None:
        """`batch` can never be delivered (e.g. the webhook is gone) and went to the dead letters."""
        for p in batch.items:
            self._settle(batch, p, now, dead=True)

    def retry_later(self, batch: Batch, now: float, retry_after_s: float | None = None) -> float:
        """`batch` failed for a reason that may pass; it is due again at the returned time."""
        batch.attempts += 1
        delay = self.policy.backoff_s(batch.attempts)
        if retry_after_s is not None and retry_after_s >= 0:
            delay = retry_after_s  # the receiver said when: honour it
        batch.due_at = now + delay
        if retry_after_s is not None and retry_after_s >= 0:  # the receiver waits for everything
            self.pacer.hold(self.pace_key(batch.target), batch.due_at)
        self._push(batch, None)
        return batch.due_at

    def discard(self, batch: Batch) -> None:
        """Forget `batch` without recording it (its source will be consumed again elsewhere)."""
        for p in batch.items:
            self._queued.discard(p.key)
            self._reminding.discard((batch.target, str(p.alert.get("id")), str(p.alert.get("started_at"))))

    def drop_waiting(self, keep: Callable[[Pending], bool]) -> list[Batch]:
        """Remove and return every waiting batch holding an item `keep` rejects (revoked input)."""
        dropped = [b for b in self._all_waiting() if not all(keep(p) for p in b.items)]
        ids = {id(b) for b in dropped}
        self._open = {k: b for k, b in self._open.items() if id(b) not in ids}
        self._waiting = [w for w in self._waiting if id(w[2]) not in ids]
        heapq.heapify(self._waiting)
        for b in dropped:
            self.discard(b)
        return dropped

    def _all_waiting(self) -> list[Batch]:
        return list(self._open.values()) + [w[2] for w in self._waiting]

    def _settle(self, batch: Batch, p: Pending, now: float, *, dead: bool) -> None:
        alert = p.alert
        aid = str(alert.get("id"))
        started = str(alert.get("started_at"))
        self._queued.discard(p.key)
        self._reminding.discard((batch.target, aid, started))
        key = (batch.target, aid, started)
        ep = self.episodes.get(key)
        if batch.kind == REMINDER:
            if ep is not None and ep.state == FIRING:
                if dead:
                    ep.dead, ep.at, ep.alert, ep.remind = True, now, None, False
                else:
                    ep.reminders += 1
                    ep.last_posted_at = now
                self._changed[key] = ep
            return
        if ep is not None and ep.state == RESOLVED and batch.kind == FIRING:
            return  # a late firing of an episode already closed: keep the closed state
        remind = bool(batch.refs.get(aid, {}).get("remind", True))
        if batch.kind == FIRING:
            for other in self.episodes.values():  # a new episode ends the reminders of older ones
                if other.target == batch.target and other.id == aid and other.started_at != started and other.remind:
                    other.remind, other.alert = False, None
                    self._changed[(other.target, other.id, other.started_at)] = other
            eligible = remind and str(alert.get("severity")) in self.policy.reminder_severities
            self.episodes[key] = Episode(
                batch.target, aid, started, FIRING, now, dead=dead,
                posted_at=None if dead else now, last_posted_at=None if dead else now,
                remind=eligible and not dead, alert=dict(alert) if eligible and not dead else None)
        else:
            posted = ep.posted_at if ep is not None else None
            self.episodes[key] = Episode(
                batch.target, aid, started, RESOLVED, now, dead=dead, posted_at=posted)
        self._changed[key] = self.episodes[key]

    # -- persistence ----------------------------------------------------------------------------

    def prune(self, now: float) -> int:
        """Forget closed episodes older than `forget_after_s`; returns how many were forgotten."""
        horizon = now - self.policy.forget_after_s
        old = [k for k, e in self.episodes.items() if (e.state != FIRING or e.dead) and e.at < horizon]
        for k in old:
            del self.episodes[k]
        return len(old)

    def take_changes(self) -> list[dict[str, Any]]:
        """Ledger entries written since the last call, as JSON-able records (for a journal:
        appending them to a snapshot's episodes and rebuilding gives the current ledger)."""
        out = [e.to_json() for e in self._changed.values()]
        self._changed.clear()
        return out

    def snapshot(self) -> dict[str, Any]:
        """The ledger as plain JSON-able data (no side effects)."""
        return {"version": SNAPSHOT_VERSION,
                "episodes": [e.to_json() for e in self.episodes.values()]}

    @classmethod
    def from_snapshot(cls, policy: NotifyPolicy | None, data: Mapping[str, Any] | None,
                      pace_keys: Mapping[str, Hashable] | None = None) -> Notifications:
        """Rebuild from `snapshot()` output; None or an empty mapping starts with no history."""
        if not data:
            return cls(policy, pace_keys=pace_keys)
        if data.get("version") != SNAPSHOT_VERSION or data.get("kind", "alerts") != "alerts":
            raise ValueError(f"unsupported notifier state (version {data.get('version')!r}, kind "
                             f"{data.get('kind')!r}): a state file belongs to one notifier.source")
        return cls(policy, (Episode.from_json(e) for e in data.get("episodes", []) if "id" in e),
                   pace_keys=pace_keys)
