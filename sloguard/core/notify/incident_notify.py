"""What the notifier sends for incidents (slo.incidents), and when: one Slack message per incident.

The incident messages of the flow (sloguard/core/notify/incidents.py) each carry the whole incident, so only
the newest matters. Per (target, incident):

- **Slack Web API targets** (`updates=True`) post the incident once (`chat.postMessage`) and then
  edit that message (`chat.update`) as alerts join or resolve: one pending send per incident,
  always the newest message, a `post` until the receiver returned the message's reference
  (channel and ts, kept in the ledger), an `update` after.
- **Webhook targets** (Slack incoming webhooks, which cannot edit a message, and generic JSON
  webhooks) get two notices: `open` (the first firing message, or the newest one when several
  wait) and `resolve`. Updates in between are not sent, except an `escalate` when the incident
  grows in a way people must hear of: another SLO joins (a stale feature pipeline is now also a
  data-quality drop), or its severity rises (with a `group_by` without severity). New keys of the
  same SLOs are the fan-out grouping exists to fold: no notice. The Web API gets its edit and, for
  an escalation, a reply in the message's thread (an edit pings nobody). A resolve never goes out
  before its open has been delivered or dead-lettered.
- **Reminders.** An incident still firing at a severity in `reminder_severities` is notified again
  every `reminder_interval_s` after its last notice (at most `max_reminders`; 0: until resolved):
  webhooks get a new message, the Web API a reply in the incident message's thread (an edit pings
  nobody).

Pacing and Retry-After are per receiver (sloguard/core/notify/pacing.py). The ledger has one entry per
(target, incident id) and an incident id is unique per episode (it hashes the tick it opened), so
every incident ever notified is remembered until `forget_after_s` after it resolved; a message
consumed again after a restart whose `seq` was already delivered is a duplicate.

The driver (connectors/notifier.py) uses the same calls as for alerts (`offer`, `due`,
`delivered`, `retry_later`, ...); a `Send` has the `target`, `kind`, `items` and `tokens` a
`notify_policy.Batch` has. Pure: no I/O, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sloguard.core.notify.notify_policy import NotifyPolicy, Pending
from sloguard.core.notify.pacing import Pacer

SNAPSHOT_VERSION = 1
POST, UPDATE, OPEN, RESOLVE = "post", "update", "open", "resolve"
ESCALATE, REMIND = "escalate", "remind"
_RANK = {"page": 2, "ticket": 1}


@dataclass
class Send:
    """One message to send for one incident to one target."""

    target: str
    incident: str
    kind: str  # post | update (Slack API) ; open | resolve (webhooks)
    message: dict[str, Any]
    due_at: float
    items: list[Pending] = field(default_factory=list)  # every consumed message this send covers
    ref: dict[str, Any] | None = None  # the Slack message to update: {"channel", "ts"}
    attempts: int = 0
    seq: int = 0

    @property
    def tokens(self) -> list[Hashable]:
        return [p.token for p in self.items if p.token is not None]

    @property
    def model(self) -> str:
        return str(self.message.get("model") or "")


@dataclass
class Notified:
    """Ledger entry: what was delivered for one (target, incident)."""

    target: str
    incident: str
    seq: int = 0  # newest incident message delivered (updates targets) or settled
    opened: bool = False
    resolved: bool = False
    dead: bool = False
    ref: dict[str, Any] | None = None
    at: float = 0.0
    severity: str = ""  # of the last open, escalation or post
    notified_at: float | None = None  # last notice that reached people: open, escalation, reminder
    reminders: int = 0
    message: dict[str, Any] | None = None  # the newest firing message delivered, while reminders may be due
    slos: list[str] = field(default_factory=list)  # SLOs people were told of (open, post, escalations)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notified:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def firing_slos(message: Mapping[str, Any]) -> set[str]:
    """The SLOs of an incident message's firing alerts (model-wide alerts: their rule)."""
    return {str(m.get("slo") or m.get("rule")) for m in message.get("members") or ()
            if isinstance(m, Mapping) and m.get("state", "firing") == "firing"}


def _grows(message: Mapping[str, Any], entry: Notified) -> bool:
    """Whether people must hear of this state: a new SLO burns, or the severity rose."""
    return (_RANK.get(str(message.get("severity")), 0) > _RANK.get(entry.severity, 0)
            or bool(firing_slos(message) - set(entry.slos)))


class IncidentNotifications:
    """The decisions for incident messages (see the module docstring)."""

    def __init__(self, policy: NotifyPolicy | None = None, entries: Iterable[Notified] = (),
                 pace_keys: Mapping[str, Hashable] | None = None, updates: Mapping[str, bool] | None = None) -> None:
        self.policy = policy or NotifyPolicy()
        self.ledger: dict[tuple[str, str], Notified] = {(e.target, e.incident): e for e in entries}
        self.pacer = Pacer(self.policy.min_interval_s)
        self.pace_keys = dict(pace_keys or {})
        self.updates = dict(updates or {})
        self._pending: dict[tuple[str, str, str], Send] = {}  # (target, incident, kind)
        self._in_flight: set[tuple[str, str, str]] = set()
        self._changed: dict[tuple[str, str], Notified] = {}
        self._seq = itertools.count()

    def pace_key(self, target: str) -> Hashable:
        return self.pace_keys.get(target, target)

    # -- intake ---------------------------------------------------------------------------------

    def offer(self, target: str, message: Mapping[str, Any], token: Hashable | None, now: float,
              *, group: bool = True, remind: bool = True) -> str:
        """Take one incident message for `target`: `"queued"` or `"duplicate"` (nothing to send)."""
        inc, seq = str(message.get("id")), int(message.get("seq") or 0)
        entry = self.ledger.get((target, inc))
        resolved = message.get("state") == "resolved"
        item = Pending(target, dict(message), token)
        grows = (not resolved and entry is not None and entry.opened and not entry.resolved and not entry.dead
                 and _grows(message, entry))
        if self.updates.get(target, False):
            if entry is not None and (entry.seq >= seq or entry.dead):
                return "duplicate"
            queued = self._queue(target, inc, UPDATE if entry is not None and entry.ref else POST, item, now)
            if grows:  # the edit pings nobody: a reply in the thread does (its offset is the edit's)
                self._queue(target, inc, ESCALATE, Pending(target, dict(message), None), now)
            return queued
        if grows:
            return self._queue(target, inc, ESCALATE, item, now)
        if entry is not None and (entry.dead or (entry.resolved if resolved else entry.opened)):
            if not resolved and entry.message is not None and seq > int(entry.message.get("seq") or 0):
                entry.message = dict(message)  # what a reminder will say (webhooks get no updates)
                self._changed[(target, inc)] = entry
            return "duplicate"
        if resolved:
            return self._queue(target, inc, RESOLVE, item, now)
        return self._queue(target, inc, OPEN, item, now)

    def _queue(self, target: str, inc: str, kind: str, item: Pending, now: float) -> str:
        base = (target, inc, POST if kind == UPDATE else kind)  # a post and its updates coalesce
        key = base
        if base in self._in_flight and kind in (POST, UPDATE):  # the edit must follow the one in flight
            key = (target, inc, f"{base[2]}+")
        send = self._pending.get(key)
        if send is None:
            send = Send(target, inc, kind, dict(item.alert), now, seq=next(self._seq))
            self._pending[key] = send
        elif int(item.alert.get("seq") or 0) >= int(send.message.get("seq") or 0):
            send.message = dict(item.alert)  # an open or resolve in flight: its retry says the newest
        send.items.append(item)
        return "queued"

    # -- output ---------------------------------------------------------------------------------

    def due(self, now: float) -> list[Send]:
        """Sends to make now: one per receiver (pace), opens and posts before what follows them."""
        self._queue_reminders(now)
        out = []
        used: set[Hashable] = set()
        for key, send in sorted(self._pending.items(), key=lambda kv: (kv[1].due_at, kv[1].seq)):
            pace = self.pace_key(send.target)
            if key in self._in_flight or send.due_at > now or pace in used or not self.pacer.ready(pace, now):
                continue
            if self._waits(key, send):
                continue
            entry = self.ledger.get((send.target, send.incident))
            if send.kind in (POST, UPDATE):
                send.kind = UPDATE if entry is not None and entry.ref else POST
            send.ref = entry.ref if entry is not None else None  # what to edit, or reply under
            used.add(pace)
            self.pacer.sent(pace, now)
            self._in_flight.add(key)
            out.append(send)
        return out

    def _waits(self, key: tuple[str, str, str], send: Send) -> bool:
        """A resolve waits for its open; a queued follow-up waits for the send in flight before it."""
        target, inc, kind = key
        if kind.endswith("+"):
            return (target, inc, kind[:-1]) in self._pending
        if kind in (RESOLVE, ESCALATE, REMIND):  # the open's message comes first on the partition
            return ((target, inc, OPEN) in self._pending or (target, inc, POST) in self._pending
                    or (kind == RESOLVE and (target, inc, ESCALATE) in self._pending))
        return False

    def _reminder_due_at(self, e: Notified) -> float | None:
        pol = self.policy
        if (not e.opened or e.resolved or e.dead or e.message is None or e.notified_at is None
                or pol.reminder_interval_s <= 0 or e.severity not in pol.reminder_severities
                or (pol.max_reminders and e.reminders >= pol.max_reminders)
                or any(k[0] == e.target and k[1] == e.incident for k in self._pending)):
            return None
        return e.notified_at + pol.reminder_interval_s

    def _queue_reminders(self, now: float) -> None:
        if self.policy.reminder_interval_s <= 0:
            return
        for e in list(self.ledger.values()):
            t = self._reminder_due_at(e)
            if t is not None and t <= now and e.message is not None:
                send = Send(e.target, e.incident, REMIND, dict(e.message), now, seq=next(self._seq))
                send.ref = e.ref
                self._pending[(e.target, e.incident, REMIND)] = send

    def flush_all(self, now: float) -> list[Send]:
        """What may go out now, pace aside (shutdown, rebalance)."""
        self.pacer = Pacer(0.0) if self.pacer.min_interval_s else self.pacer
        out = self.due(now)
        self.pacer = Pacer(self.policy.min_interval_s)
        return out

    def next_due_at(self) -> float | None:
        times = [max(s.due_at, self.pacer.next_at(self.pace_key(s.target)))
                 for k, s in self._pending.items() if k not in self._in_flight and not self._waits(k, s)]
        times += [t for t in map(self._reminder_due_at, self.ledger.values()) if t is not None]
        return min(times) if times else None

    @property
    def pending_count(self) -> int:
        return sum(len(s.items) for s in self._pending.values())

    # -- outcomes -------------------------------------------------------------------------------

    def _key_of(self, send: Send) -> tuple[str, str, str]:
        return next(k for k, s in self._pending.items() if s is send)

    def _settle(self, send: Send, now: float, *, dead: bool, ref: dict[str, Any] | None = None) -> None:
        key = self._key_of(send)
        del self._pending[key]
        self._in_flight.discard(key)
        follow = (key[0], key[1], f"{key[2]}+")
        if follow in self._pending:  # the message that came in while this one was in flight
            self._pending[key] = self._pending.pop(follow)
        entry = self.ledger.get((send.target, send.incident)) or Notified(send.target, send.incident)
        entry.at = now
        entry.dead = entry.dead or dead
        if send.kind == REMIND:
            entry.reminders += 1
            entry.notified_at = now
        else:
            entry.seq = max(entry.seq, int(send.message.get("seq") or 0))
        if send.kind in (POST, OPEN, ESCALATE) or (send.kind == UPDATE and not entry.opened):
            entry.opened = True
            entry.notified_at = now
        if send.kind in (POST, OPEN, ESCALATE):
            entry.slos = sorted(set(entry.slos) | firing_slos(send.message))
            if _RANK.get(str(send.message.get("severity")), 0) >= _RANK.get(entry.severity, 0):
                entry.severity = str(send.message.get("severity"))
        if send.kind == RESOLVE or (send.kind in (POST, UPDATE) and send.message.get("state") == "resolved"):
            entry.opened = entry.resolved = True
        keep = self.policy.reminder_interval_s > 0 and not entry.resolved and not entry.dead
        if send.kind != REMIND:
            entry.message = dict(send.message) if keep and send.message.get("state") == "firing" else None
        if ref and send.kind != REMIND:
            entry.ref = dict(ref)
        self.ledger[(send.target, send.incident)] = entry
        self._changed[(send.target, send.incident)] = entry

    def delivered(self, send: Send, now: float, ref: dict[str, Any] | None = None) -> None:
        """The receiver accepted `send`; `ref` is the posted Slack message ({"channel", "ts"})."""
        self._settle(send, now, dead=False, ref=ref)

    def dead_lettered(self, send: Send, now: float) -> None:
        self._settle(send, now, dead=True)

    def retry_later(self, send: Send, now: float, retry_after_s: float | None = None) -> float:
        key = self._key_of(send)
        self._in_flight.discard(key)
        follow = self._pending.pop((key[0], key[1], f"{key[2]}+"), None)
        if follow is not None:  # what came in meanwhile goes with the retry
            send.message, send.items = follow.message, send.items + follow.items
        send.attempts += 1
        delay = self.policy.backoff_s(send.attempts)
        if retry_after_s is not None and retry_after_s >= 0:
            delay = retry_after_s
            self.pacer.hold(self.pace_key(send.target), now + delay)
        send.due_at = now + delay
        return send.due_at

    def discard(self, send: Send) -> None:
        key = self._key_of(send)
        self._pending.pop(key, None)
        self._in_flight.discard(key)

    def drop_waiting(self, keep: Callable[[Pending], bool]) -> list[Send]:
        dropped = [s for s in self._pending.values() if not all(keep(p) for p in s.items)]
        for s in dropped:
            self.discard(s)
        return dropped

    # -- persistence ----------------------------------------------------------------------------

    def prune(self, now: float) -> int:
        horizon = now - self.policy.forget_after_s
        old = [k for k, e in self.ledger.items() if (e.resolved or e.dead) and e.at < horizon]
        for k in old:
            del self.ledger[k]
        return len(old)

    @property
    def episodes(self) -> dict[tuple[str, str], Notified]:
        return self.ledger

    def take_changes(self) -> list[dict[str, Any]]:
        out = [e.to_json() for e in self._changed.values()]
        self._changed.clear()
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"version": SNAPSHOT_VERSION, "kind": "incidents",
                "episodes": [e.to_json() for e in self.ledger.values()]}

    @classmethod
    def from_snapshot(cls, policy: NotifyPolicy | None, data: Mapping[str, Any] | None, **kw: Any
                      ) -> IncidentNotifications:
        if not data:
            return cls(policy, **kw)
        if data.get("version") != SNAPSHOT_VERSION or data.get("kind", "incidents") != "incidents":
            raise ValueError(f"unsupported notifier state (version {data.get('version')!r}, kind {data.get('kind')!r})")
        entries = [Notified.from_json(e) for e in data.get("episodes", []) if "incident" in e]
        return cls(policy, entries, **kw)
