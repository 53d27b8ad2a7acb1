"""What the notifier would send, without Kafka: previews for `sloguard notifier --alerts` and the demo.

`preview_alerts` groups alerts as the notifier's alert mode would (`notifier.source: alerts`);
`preview_incidents` counts what incident mode sends (`notifier.source: incidents`): for webhook
targets the open and the resolve of each incident, for Slack Web API targets one post per incident
and an edit per later state. Both use each message's event time as the clock.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from sloguard.connectors.slack import SlackWebhookSender, render_batch_preview
from sloguard.connectors.slack_incident import SlackIncidentWebhookSender, render_incident_preview
from sloguard.connectors.webhooks import Secret, SendResult
from sloguard.core.notify.incident_notify import IncidentNotifications, Send
from sloguard.core.notify.notify_policy import Batch, Notifications, NotifyPolicy, alert_epoch

__all__ = ["IncidentPreview", "preview_alerts", "preview_incidents"]


def preview_alerts(alerts: Iterable[Mapping[str, Any]], policy: NotifyPolicy | None = None,
                   out: TextIO | None = None, *, webhook: Secret | str | None = None) -> list[Batch]:
    """Print the messages the notifier would post for `alerts`, grouped as it would group them,
    using each alert's event time as the clock (no Kafka). With `webhook` (a Slack incoming
    webhook, e.g. for the demo), every message is also posted there. Returns the batches."""
    core = Notifications(policy or NotifyPolicy())
    sender = None
    if webhook is not None:
        secret = webhook if isinstance(webhook, Secret) else Secret(webhook, "the demo webhook")
        sender = SlackWebhookSender("demo", secret)
    stream = out or sys.stdout
    batches: list[Batch] = []

    def emit(found: list[Batch], now: float) -> None:
        for b in found:
            print(render_batch_preview(b, now=now), file=stream)
            result = sender.send(b, now=now) if sender is not None else SendResult("ok")
            if sender is not None and not result.ok:
                print(f"    (not posted: {result.reason})", file=stream)
            core.delivered(b, now)
            batches.append(b)

    now = 0.0
    for i, alert in enumerate(alerts):
        now = alert_epoch(alert, "ts") or now
        emit(core.due(now), now)
        core.offer(str(alert.get("owner") or "default"), alert, i, now)
    emit(core.flush_all(now), now)
    return batches


@dataclass
class IncidentPreview:
    """What incident mode sends for a stream of incident messages."""

    incidents: int
    webhook_messages: int  # incoming webhooks: opens + resolves (+ escalations and reminders)
    api_posts: int  # Slack Web API: one message per incident...
    api_edits: int  # ...edited this many times in all...
    api_replies: int  # ...and escalations and reminders as replies in its thread
    sends: list[Send]  # the webhook notices, in order

    @property
    def reminders(self) -> int:
        return sum(1 for s in self.sends if s.kind == "remind")

    @property
    def escalations(self) -> int:
        return sum(1 for s in self.sends if s.kind == "escalate")


def preview_incidents(messages: Iterable[Mapping[str, Any]], policy: NotifyPolicy | None = None,
                      out: TextIO | None = None, *, webhook: Secret | str | None = None) -> IncidentPreview:
    """Print the webhook notices incident mode would post (each route its own receiver), count the
    Web API's posts and edits; with `webhook`, post the notices there too (the demo)."""
    policy = policy or NotifyPolicy()
    hooks = IncidentNotifications(policy)
    api = IncidentNotifications(policy, updates={"api": True})
    sender = None
    if webhook is not None:
        secret = webhook if isinstance(webhook, Secret) else Secret(webhook, "the demo webhook")
        sender = SlackIncidentWebhookSender("demo", secret)
    sent: list[Send] = []
    counts = {"post": 0, "update": 0, "remind": 0, "escalate": 0}
    seen: set[str] = set()

    def drain(now: float) -> None:
        for s in hooks.due(now):
            if out is not None:
                print(render_incident_preview(s.message, s.kind, s.target), file=out)
            result = sender.send(s, now=now) if sender is not None else SendResult("ok")
            if sender is not None and not result.ok and out is not None:
                print(f"    (not posted: {result.reason})", file=out)
            hooks.delivered(s, now)
            sent.append(s)
        for s in api.due(now):
            counts[s.kind] += 1
            api.delivered(s, now, ref={"channel": "C", "ts": s.incident})

    now = 0.0
    for m in messages:
        now = alert_epoch(m, "ts") or now
        drain(now)
        seen.add(str(m.get("id")))
        route = str(m.get("owner") or "default")
        hooks.offer(route, m, None, now)
        api.offer("api", m, None, now)
    for _ in range(100_000):  # what still waits goes out, paced
        if hooks.next_due_at() is None and api.next_due_at() is None:
            break
        now = min(t for t in (hooks.next_due_at(), api.next_due_at()) if t is not None)
        drain(now)
    return IncidentPreview(len(seen), len(sent), counts["post"], counts["update"],
                           counts["remind"] + counts["escalate"], sent)


def iter_jsonl(path: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (alerts or incidents), skipping what is not one."""
    import orjson

    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    msg = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    print(f"skipped a line of {path}: {e}", file=sys.stderr)
                    continue
                if isinstance(msg, dict):
                    yield msg
