"""Reading ``slo.alerts`` and ``slo.incidents`` messages.

Each is the notice the notifier can deliver, or the reason (naming the field) it goes to the
dead-letter topic. The checks a person reads first (JSON, type, state, timestamps) come first; then
the message is checked against its type (`sloguard.core.messages.outputs.AlertRead`, `IncidentRead`),
so what the flow writes and what the notifier reads cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

import orjson

from sloguard.core.messages.outputs import AlertRead, IncidentRead, read_message
from sloguard.core.notify.notify_policy import alert_epoch


def _decode(raw: bytes | str | None, kind: str, *, type_required: bool
            ) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object of `type` `kind` with non-empty `id` and `model`, or (None, the reason)."""
    if raw is None:
        return None, "empty message (tombstone)"
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return None, f"malformed JSON: {e}"
    if not isinstance(msg, dict):
        return None, "message must be a JSON object"
    if msg.get("type", None if type_required else kind) != kind:
        return None, f"type: must be {kind!r}, got {msg.get('type')!r}"
    for name in ("id", "model"):
        if not isinstance(msg.get(name), str) or not msg[name]:
            return None, f"{name}: must be a non-empty string"
    return msg, None


def parse_incident(raw: bytes | str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(incident, None) or (None, reason naming the field) for one ``slo.incidents`` message."""
    msg, error = _decode(raw, "incident", type_required=True)
    if msg is None:
        return None, error
    if msg.get("state") not in ("firing", "resolved"):
        return None, f"state: must be firing or resolved, got {msg.get('state')!r}"
    if not isinstance(msg.get("seq"), int) or isinstance(msg.get("seq"), bool) or msg["seq"] < 1:
        return None, "seq: must be an integer >= 1"
    for name in ("opened_at", "ts"):
        if alert_epoch(msg, name) is None:
            return None, f"{name}: must be an RFC 3339 timestamp or epoch seconds"
    if not isinstance(msg.get("members"), list) or not msg["members"]:
        return None, "members: must be a non-empty list"
    if (problem := read_message(msg, IncidentRead)) is not None:
        return None, problem
    return msg, None


def parse_alert(raw: bytes | str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(alert, None) or (None, reason naming the field) for one ``slo.alerts`` message."""
    alert, error = _decode(raw, "alert", type_required=False)
    if alert is None:
        return None, error
    if alert.get("state") not in ("firing", "resolved"):
        return None, f"state: must be firing or resolved, got {alert.get('state')!r}"
    if alert.get("severity") not in ("page", "ticket"):
        return None, f"severity: must be page or ticket, got {alert.get('severity')!r}"
    for name in ("started_at", "ts"):
        if alert_epoch(alert, name) is None:
            return None, f"{name}: must be an RFC 3339 timestamp or epoch seconds"
    if (problem := read_message(alert, AlertRead)) is not None:
        return None, problem
    return alert, None
