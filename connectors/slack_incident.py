"""Slack Block Kit for incidents (slo.incidents): one message per incident, rendered from its newest
state, so the same function serves the first post, every `chat.update` edit and a webhook's open
and resolve notices.

What an on-call engineer reads first: severity, SLO and where it burns (the segment that explains
the whole model), then what burned first (the likely cause), then every affected key with its
rules, how fast it burns over the rule's windows and the budget left, the alerts it mutes, the
playbook and runbook. The context line names the incident id and its state (tests and the reader
use it to tell notices apart). Limits and escaping as in connectors/slack.py.

Not for: deciding what to send (sloguard/core/notify/incident_notify.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sloguard.connectors.slack import (
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    SlackWebhookSender,
    _budget,
    _burn,
    _clip,
    _code,
    _context,
    _esc,
    _field,
    _runbook,
    _section,
    _when,
    human_duration,
)
from sloguard.connectors.webhooks import SendResult
from sloguard.core.notify.notify_policy import alert_epoch

__all__ = ["INCIDENT_REF", "SlackIncidentWebhookSender", "render_incident", "render_incident_preview"]

#: How a rendered incident names itself (its context line): state and id.
INCIDENT_REF = re.compile(r"^(firing|resolved) · incident `([0-9a-f]+)`")
_SEVERITY = {"page": ("🔴", "PAGE"), "ticket": ("🟠", "TICKET")}
_MEMBER_LINES = 25


def _seg(segment: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (segment or {}).items()) or "whole model"


def _member_line(m: Mapping[str, Any]) -> str:
    rates = m.get("burn_rates") or {}
    windows = m.get("windows") or {}
    shown = [w for w in (windows.get("long"), windows.get("short")) if w in rates] or sorted(rates)[:2]
    burn = " · ".join(f"{_esc(w)} {_burn(rates[w])}" for w in shown) or "n/a"
    state = "" if m.get("state") == "firing" else " · ✅ resolved"
    muted = " · muted" if m.get("inhibited_by") else ""
    return (f"• *{_esc(_seg(m.get('segment')))}* · {_esc(m.get('rule'))} · {burn} · "
            f"budget {_budget(m.get('budget_remaining'))}{state}{muted}")


def _header(msg: Mapping[str, Any], notice: str = "") -> str:
    what = msg.get("slo") or (f"{msg['dimension']} SLOs" if msg.get("dimension") else f"model {msg.get('model')}")
    explained = msg.get("explained_by") or {}
    where = _seg(explained.get("segment")) if explained else None
    if not where:
        firing = [m for m in msg.get("members", []) if m.get("state") == "firing"] or msg.get("members", [])
        keys = list(dict.fromkeys(_seg(m.get("segment")) for m in firing))
        where = keys[0] if len(keys) == 1 else f"{len(keys)} keys"
    if msg.get("state") == "resolved":
        opened, ts = alert_epoch(msg, "opened_at"), alert_epoch(msg, "ts")
        lasted = human_duration(None if opened is None or ts is None else ts - opened)
        return _clip(f"✅ RESOLVED after {lasted}: {what} ({msg.get('model')}, {where})", MAX_HEADER_TEXT)
    emoji, sev = _SEVERITY.get(str(msg.get("severity")), ("⚪", str(msg.get("severity")).upper()))
    if notice == "remind":
        opened, ts = alert_epoch(msg, "opened_at"), alert_epoch(msg, "ts")
        age = human_duration(None if opened is None or ts is None else ts - opened)
        return _clip(f"⏰ STILL FIRING ({sev}, open {age}): {what} ({msg.get('model')}, {where})", MAX_HEADER_TEXT)
    if notice == "escalate":
        return _clip(f"{emoji} {sev}, and more burns: {what} ({msg.get('model')}, {where})", MAX_HEADER_TEXT)
    return _clip(f"{emoji} {sev}: {what} burning ({msg.get('model')}, {where})", MAX_HEADER_TEXT)


def render_incident(msg: Mapping[str, Any], notice: str = "") -> dict[str, Any]:
    """`text` + `blocks` for one incident message, within Slack's limits. `notice` is what this
    post is for when not the incident itself: `remind` (still firing) or `escalate` (now a page)."""
    head = _header(msg, notice)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": head, "emoji": True}}]
    blocks.append(_section(_esc(msg.get("summary") or "")))
    cause = msg.get("cause") or {}
    if cause.get("lead_s"):
        blocks.append(_section(f"🔎 *Burned first:* {_esc(cause.get('summary'))} "
                               f"(since {_when(alert_epoch(cause, 'burning_since'))})"))
    explained = msg.get("explained_by") or {}
    fields = [_field("Severity", " ".join(_SEVERITY.get(str(msg.get("severity")), ("", "?")))),
              _field("Model", _esc(msg.get("model"))), _field("Owner", _esc(msg.get("owner") or "default")),
              _field("Opened", _when(alert_epoch(msg, "opened_at"))),
              _field("Keys burning", str(msg.get("keys"))),
              _field("Explained by", _esc(_seg(explained.get("segment"))) + (
                  f" ({explained['share']:.0%} of the bad events over {_esc(explained['window'])})"
                  if explained.get("share") is not None else "") if explained else "no single segment")]
    if msg.get("state") == "resolved":
        fields.append(_field("Resolved", _when(alert_epoch(msg, "resolved_at"))))
    blocks.append(_section(f"*{len(msg.get('members', []))} alerts*", fields))
    members = list(msg.get("members", []))
    lines = [_member_line(m) for m in members[:_MEMBER_LINES]]
    if len(members) > _MEMBER_LINES:
        lines.append(f"…and {len(members) - _MEMBER_LINES} more")
    text, chunk = [], ""
    for line in lines:  # sections of at most 3000 characters
        if len(chunk) + len(line) + 1 > MAX_SECTION_TEXT - 10:
            text.append(chunk)
            chunk = ""
        chunk += ("\n" if chunk else "") + line
    if chunk:
        text.append(chunk)
    blocks += [_section(t) for t in text[:10]]
    muted = msg.get("inhibited") or []
    if muted:
        blocks.append(_context(f"muted by this incident ({len(muted)}): " + "; ".join(
            f"{_esc(i.get('rule'))} on {_esc(i.get('slo') or 'the model')} ({_esc(_seg(i.get('segment')))})"
            for i in muted[:8])))
    if msg.get("state") != "resolved" and (msg.get("actions") or _runbook(msg)):
        lines = ["*Playbook*"] + [f"{i}. {_esc(x)}" for i, x in enumerate(msg.get("actions") or [], 1)]
        if _runbook(msg):
            lines.append(f"<{_runbook(msg)}|Open the runbook →>")
        blocks.append(_section("\n".join(lines)))
    state = "resolved" if msg.get("state") == "resolved" else "firing"
    state = {"remind": "still firing", "escalate": "escalated"}.get(notice, state)
    blocks.append(_context(f"{state} · incident "
                           f"{_code(msg.get('id'))} · update {msg.get('seq')} · {_esc(msg.get('change'))} · "
                           f"as of {_esc(msg.get('ts'))}"))
    blocks = blocks[: MAX_BLOCKS - 1] + blocks[-1:] if len(blocks) > MAX_BLOCKS else blocks
    return {"text": _clip(_esc(f"{head}: {msg.get('summary') or ''}"), MAX_FALLBACK_TEXT), "blocks": blocks}


def render_incident_preview(msg: Mapping[str, Any], kind: str, route: str) -> str:
    """A short terminal block for one incident notice: header, summary, cause."""
    lines = [f"[{route}] {kind}: {_header(msg, kind)}", f"    {msg.get('summary')}"]
    cause = msg.get("cause") or {}
    if cause.get("lead_s"):
        lines.append(f"    burned first: {cause.get('summary')}")
    return "\n".join(lines)


class SlackIncidentWebhookSender(SlackWebhookSender):
    """An incoming-webhook sender that also takes incident notices (`incident_notify.Send`): the
    open and the resolve of an incident, each a new message (webhooks cannot edit)."""

    def send(self, batch: Any, *, now: float | None = None) -> SendResult:
        message = getattr(batch, "message", None)
        if message is None:
            return super().send(batch, now=now)
        return self._post(render_incident(message, batch.kind))
