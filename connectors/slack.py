"""Slack: Block Kit messages for alert batches, terminal previews, and the incoming-webhook sender.

:func:`render_message` turns a :class:`~sloguard.core.notify.notify_policy.Batch` (alerts of one kind for one
route and model) into an incoming-webhook payload an on-call engineer can act on: what burns, how
fast over which windows, how much budget is left, since when, the dimension's playbook and its
runbook. Resolved messages cannot thread under the firing one (incoming webhooks return no
``ts``), so they quote the alert id, when it fired, when its notice was posted and how long it
lasted. Every payload stays inside Slack's limits (50 blocks, 150-character headers, 3000 per
section text, 10 fields of 2000) however many alerts a batch holds: alerts beyond what fits are
listed one line each. Text from alerts is escaped (``&``, ``<``, ``>``) so a segment value cannot
ping ``<!channel>`` or forge a link.

:class:`SlackWebhookSender` posts with ``slack_sdk``'s ``WebhookClient``, adding its rate-limit
(429 + Retry-After) and server-error (5xx, backoff) retry handlers to the connection-error one it
has by default. Its logger is private and quiet: ``slack_sdk`` logs the webhook URL at DEBUG and
on retries at INFO.

Not for: deciding what to send or when (``sloguard/core/notify/notify_policy.py``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import URLError

from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from sloguard.connectors.webhooks import (
    Redactor,
    Secret,
    SendResult,
    classify_http,
    pace_key_of,
    quiet_logger,
    retry_after_seconds,
)
from sloguard.core.notify.notify_policy import REMINDER, RESOLVED, Batch, alert_epoch
from sloguard.core.spec.timeutil import parse_duration
from sloguard.core.stats.budget import budget_text

__all__ = [
    "MAX_BLOCKS",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_SECTION_TEXT",
    "SLACK_ERROR_HINTS",
    "SlackWebhookSender",
    "render_batch_preview",
    "render_message",
    "render_preview",
    "render_text",
    "retry_handlers",
]

MAX_BLOCKS = 50
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 3000  # the notification text; Slack truncates at 40,000

_SEVERITY = {"page": ("🔴", "PAGE"), "ticket": ("🟠", "TICKET")}
_URL_RE = re.compile(r"^https?://[^\s<>|`]+$")

#: What Slack's permanent webhook errors mean, and what to do about them.
SLACK_ERROR_HINTS = {
    "invalid_payload": "Slack could not read the message (a sloguard bug: please report it)",
    "invalid_blocks": "Slack rejected the message's blocks (a sloguard bug: please report it)",
    "invalid_token": "the webhook's token is invalid: create a new incoming webhook",
    "action_prohibited": "a workspace admin restricted posting to this channel",
    "no_service": "the webhook was disabled or removed: create a new incoming webhook",
    "no_team": "the Slack workspace no longer exists or the webhook is wrong",
    "team_disabled": "the Slack workspace is disabled",
    "channel_not_found": "the webhook's channel was deleted: create a new incoming webhook",
    "channel_is_archived": "the channel is archived: unarchive it or create a new webhook",
    "posting_to_general_channel_denied": "only admins may post to this channel",
}


# -- small formatters -----------------------------------------------------------------------------


def _esc(value: Any) -> str:
    """Text safe inside Slack mrkdwn: &, < and > escaped (no mentions, no forged links)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(value: Any) -> str:
    return "`" + _esc(value).replace("`", "'") + "`"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_duration(seconds: float | None) -> str:
    """45s, 27m, 4h 10m, 2d 3h."""
    if seconds is None or seconds < 0:
        return "unknown"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86_400:
        h, m = divmod(s // 60, 60)
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def _utc(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _when(epoch: float | None) -> str:
    """A Slack date token: shown in each reader's time zone, UTC text as fallback."""
    if epoch is None:
        return "unknown"
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{_utc(epoch)}>"


def _burn(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "?"
    return f"{v:.0f}x" if abs(v) >= 100 else f"{v:.1f}x"


def _budget(x: Any) -> str:
    if not isinstance(x, int | float) or isinstance(x, bool):
        return "n/a"
    return f"{x:.1%}" if x > 0 else budget_text(x)  # "exhausted, 15.3x over", not "-1433%"


def _window_s(w: str) -> int:
    try:
        return parse_duration(w)
    except ValueError:
        return 1 << 62


def _segment(alert: Mapping[str, Any]) -> str:
    seg = alert.get("segment") or {}
    if not isinstance(seg, Mapping) or not seg:
        return "whole model"
    return ", ".join(f"{k}={v}" for k, v in seg.items())


def _burning(alert: Mapping[str, Any]) -> str:
    """The rule's windows and their burn rates, e.g. `1h 105.4x · 5m 620.5x (≥ 14.4x)`."""
    rates = alert.get("burn_rates") if isinstance(alert.get("burn_rates"), Mapping) else {}
    windows = alert.get("windows") if isinstance(alert.get("windows"), Mapping) else {}
    chosen = [w for w in (windows.get("long"), windows.get("short")) if w in rates]
    if not chosen:
        chosen = sorted(rates, key=_window_s)
    if not chosen:
        return "no burn rate (no data)" if alert.get("rule") == "no-data" else "n/a"
    text = " · ".join(f"{_esc(w)} {_burn(rates[w])}" for w in chosen)
    threshold = alert.get("threshold")
    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        text += f" (≥ {threshold:g}x)"
    return text


def _all_burns(alert: Mapping[str, Any]) -> str:
    rates = alert.get("burn_rates") if isinstance(alert.get("burn_rates"), Mapping) else {}
    return " · ".join(f"{_esc(w)} {_burn(rates[w])}" for w in sorted(rates, key=_window_s))


def _title(alert: Mapping[str, Any]) -> str:
    """`fast-burn on fraud-availability` or `no-data on model recsys` (plain text)."""
    rule = alert.get("rule") or "alert"
    slo = alert.get("slo")
    return f"{rule} on {slo}" if slo else f"{rule} on model {alert.get('model')}"


def _model(alert: Mapping[str, Any]) -> str:
    version = alert.get("version")
    return f"{alert.get('model')} {version}" if version else str(alert.get("model"))


def _field(label: str, value: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _clip(f"*{label}*\n{value}", MAX_FIELD_TEXT)}


def _section(text: str, fields: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION_TEXT)}}
    if fields:
        block["fields"] = list(fields)[:MAX_FIELDS]
    return block


def _context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [
        {"type": "mrkdwn", "text": _clip(t, MAX_SECTION_TEXT)} for t in texts[:MAX_CONTEXT_ELEMENTS]]}


def _runbook(alert: Mapping[str, Any]) -> str | None:
    url = alert.get("runbook")
    return url if isinstance(url, str) and _URL_RE.match(url) else None


# -- one alert ------------------------------------------------------------------------------------


def _alert_blocks(kind: str, alert: Mapping[str, Any], ref: Mapping[str, Any], now: float
                  ) -> list[dict[str, Any]]:
    """Section (text + fields) and context for one alert of a batch of `kind`."""
    started = alert_epoch(alert, "started_at")
    ts = alert_epoch(alert, "ts")
    aid = _code(alert.get("id"))
    summary = _esc(alert.get("summary") or "")
    sev_emoji, sev = _SEVERITY.get(str(alert.get("severity")), ("⚪", str(alert.get("severity")).upper()))
    segment, model = _esc(_segment(alert)), _esc(_model(alert))
    title = f"*{_esc(_title(alert))}*"
    if kind == RESOLVED:
        lasted = None if started is None or ts is None else ts - started
        posted = ref.get("posted_at")
        text = f"{title} resolved after *{human_duration(lasted)}*\n{summary}"
        fields = [_field("Model", model), _field("Segment", segment),
                  _field("Fired", _when(started)), _field("Resolved", _when(ts)),
                  _field("Lasted", human_duration(lasted)),
                  _field("Budget left", _budget(alert.get("budget_remaining")))]
        notice = (f"its firing notice was posted {_when(posted)}" if posted is not None
                  else "no firing notice was posted by this notifier")
        context = _context(f"resolved · alert {aid} · fired {_utc(started)}, {notice}")
    else:
        firing_for = None if started is None else now - started
        lead = f"{title} · {_esc(alert.get('dimension') or '')}"
        if kind == REMINDER:
            lead = f"{title} is still firing, for *{human_duration(firing_for)}*"
        text = f"{lead}\n{summary}"
        all_burns = _all_burns(alert)
        if all_burns:
            text += f"\n_All windows:_ {all_burns}"
        fields = [_field("Severity", f"{sev_emoji} {sev}"), _field("Model", model),
                  _field("Segment", segment), _field("Dimension", _esc(alert.get("dimension") or "")),
                  _field("Burning", _burning(alert)),
                  _field("Budget left", _budget(alert.get("budget_remaining"))),
                  _field("Since", _when(started)), _field("Owner", _esc(alert.get("owner") or "default"))]
        if kind == REMINDER:
            n = int(ref.get("reminders") or 0) + 1
            context = _context(f"still firing · alert {aid} · reminder {n} · "
                               f"first posted {_when(ref.get('posted_at'))} · figures as of {_utc(ts)}")
        else:
            context = _context(f"firing · alert {aid} · evaluated {_utc(ts)}")
    return [_section(text, fields), context]


def _one_line(alert: Mapping[str, Any]) -> str:
    return (f"• {_code(alert.get('id'))} {_esc(_title(alert))} · {_esc(_segment(alert))} · "
            f"{_burning(alert)} · budget {_budget(alert.get('budget_remaining'))}")


def _playbooks(alerts: Sequence[Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    """One section per distinct (dimension, actions, runbook) among the alerts."""
    seen: dict[tuple, None] = {}
    for a in alerts:
        actions = tuple(str(x) for x in (a.get("actions") or []) if x)
        key = (str(a.get("dimension") or ""), actions, _runbook(a))
        if actions or key[2]:
            seen.setdefault(key)
    blocks = []
    for dimension, actions, runbook in list(seen)[:limit]:
        lines = [f"*Playbook · {_esc(dimension)}*"] + [f"{i}. {_esc(x)}" for i, x in enumerate(actions, 1)]
        if runbook:
            lines.append(f"<{runbook}|Open the runbook →>")
        blocks.append(_section("\n".join(lines)))
    return blocks


# -- whole messages -------------------------------------------------------------------------------


def _header(batch: Batch, now: float) -> str:
    alerts = [p.alert for p in batch.items]
    n = len(alerts)
    first = alerts[0]
    where = f"{first.get('model')}, {_segment(first)}"
    slos = list(dict.fromkeys(str(a.get("slo") or a.get("rule")) for a in alerts))
    what = f" · {', '.join(slos)}" if len(slos) <= 3 else f" · {len(slos)} SLOs"
    if batch.kind == RESOLVED:
        head = f"✅ RESOLVED: {_title(first)} ({where})" if n == 1 else f"✅ RESOLVED: {n} {batch.model} alerts{what}"
    elif batch.kind == REMINDER:
        started = alert_epoch(first, "started_at")
        age = human_duration(None if started is None else now - started)
        head = (f"⏰ STILL FIRING for {age}: {_title(first)} ({where})" if n == 1
                else f"⏰ STILL FIRING: {n} {batch.model} alerts{what}")
    else:
        emoji, sev = _SEVERITY.get(batch.severity, ("⚪", batch.severity.upper()))
        head = (f"{emoji} {sev}: {_title(first)} ({where})" if n == 1
                else f"{emoji} {sev}: {n} {batch.model} alerts firing{what}")
    return _clip(head, MAX_HEADER_TEXT)


def render_message(batch: Batch, *, now: float | None = None) -> dict[str, Any]:
    """Incoming-webhook payload (`text` + `blocks`) for `batch`, within Slack's limits.

    `now` (epoch seconds) dates reminders ("still firing for 4h"); it defaults to the newest
    alert's `ts`, so rendering stays deterministic.
    """
    alerts = [p.alert for p in batch.items]
    if now is None:
        now = max((alert_epoch(a, "ts") or 0.0) for a in alerts)
    head = _header(batch, now)
    playbooks = [] if batch.kind == RESOLVED else _playbooks(alerts, limit=5)
    footer = _context(f"sloguard · {len(alerts)} alert{'s' if len(alerts) != 1 else ''} · "
                      f"route {_esc(batch.target)}")
    fixed = 1 + len(playbooks) + 1  # header, playbooks, footer
    per_alert = 3  # section, context, divider
    detailed = len(alerts)
    if fixed + per_alert * detailed > MAX_BLOCKS:
        detailed = (MAX_BLOCKS - fixed - 1) // per_alert  # one block for the overflow list
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": head, "emoji": True}}]
    for a in alerts[:detailed]:
        blocks += _alert_blocks(batch.kind, a, batch.refs.get(str(a.get("id")), {}), now)
        blocks.append({"type": "divider"})
    rest = alerts[detailed:]
    if rest:
        lines, used = [f"*…and {len(rest)} more:*"], 0
        for i, a in enumerate(rest):
            line = _one_line(a)
            tail = f"\n…{len(rest) - i} not shown"
            if used + len(line) + len(tail) + 40 > MAX_SECTION_TEXT:
                lines.append(tail.strip())
                break
            lines.append(line)
            used += len(line) + 1
        blocks.append(_section("\n".join(lines)))
    blocks += playbooks
    blocks.append(footer)
    text = head if len(alerts) > 1 else f"{head}: {alerts[0].get('summary') or ''}"
    return {"text": _clip(_esc(text), MAX_FALLBACK_TEXT), "blocks": blocks}


def render_text(batch: Batch, *, now: float | None = None) -> str:
    """Plain mrkdwn version of `render_message` (no blocks), for receivers that reject blocks."""
    msg = render_message(batch, now=now)
    lines = [f"*{_esc(msg['blocks'][0]['text']['text'])}*"]
    for b in msg["blocks"][1:]:
        if b["type"] == "section":
            lines.append(b["text"]["text"])
            lines += [f["text"].replace("\n", ": ", 1) for f in b.get("fields", [])]
        elif b["type"] == "context":
            lines += [e["text"] for e in b["elements"]]
    return _clip("\n".join(lines), 39_000)


def render_preview(alert: Mapping[str, Any]) -> str:
    """One terminal line saying what the notifier would post for `alert`.

    >>> print(render_preview({"state": "firing", "severity": "page", "rule": "fast-burn",
    ...     "slo": "avail", "model": "fraud", "segment": {"region": "eu"}, "owner": "sre",
    ...     "burn_rates": {"5m": 18.2, "1h": 14.9}, "budget_remaining": 0.71,
    ...     "started_at": "2024-06-03T14:21:00Z", "ts": "2024-06-03T14:23:00Z", "id": "3f9c"}))
    🔴 PAGE → #sre  fraud region=eu  fast-burn on avail  5m 18.2x · 1h 14.9x  budget 71.0%  since 2024-06-03 14:21 UTC
    """
    owner = alert.get("owner") or "default"
    where = f"{_model(alert)} {_segment(alert).replace(', ', ',')}"
    if alert.get("state") == RESOLVED:
        started, ts = alert_epoch(alert, "started_at"), alert_epoch(alert, "ts")
        lasted = human_duration(None if started is None or ts is None else ts - started)
        return (f"✅ RESOLVED → #{owner}  {where}  {_title(alert)}  lasted {lasted} "
                f"(since {_utc(started)}, alert {alert.get('id')})")
    emoji, sev = _SEVERITY.get(str(alert.get("severity")), ("⚪", str(alert.get("severity")).upper()))
    burning = _burning(alert).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    return (f"{emoji} {sev} → #{owner}  {where}  {_title(alert)}  {burning}  "
            f"budget {_budget(alert.get('budget_remaining'))}  since {_utc(alert_epoch(alert, 'started_at'))}")


def render_batch_preview(batch: Batch, *, now: float | None = None) -> str:
    """A short terminal block for one batch: its header, then one line per alert."""
    alerts = [p.alert for p in batch.items]
    if now is None:
        now = max((alert_epoch(a, "ts") or 0.0) for a in alerts)
    lines = [f"[{batch.target}] {_header(batch, now)}"]
    lines += [f"    {render_preview(a)}" for a in alerts]
    actions = [x for a in alerts[:1] for x in (a.get("actions") or [])] if batch.kind != RESOLVED else []
    if actions:
        lines.append("    playbook: " + "; ".join(str(x) for x in actions))
    return "\n".join(lines)


# -- sending --------------------------------------------------------------------------------------


class _InjectedSleep:
    """Mixin: retry handlers sleep through an injectable function (tests pass a recorder)."""

    _sleep: Callable[[float], None] = staticmethod(time.sleep)

    def prepare_for_next_attempt(self, *, state: Any, request: Any, response: Any = None,
                                 error: Any = None) -> None:
        state.next_attempt_requested = True
        self._sleep(self._delay(state, response))
        state.increment_current_attempt()

    def _delay(self, state: Any, response: Any) -> float:
        return self.interval_calculator.calculate_sleep_duration(state.current_attempt)


class _ConnectionRetry(_InjectedSleep, ConnectionErrorRetryHandler):
    """Connection errors and timeouts (a timed-out post may have arrived: at-least-once)."""


class _ServerErrorRetry(_InjectedSleep, ServerErrorRetryHandler):
    """Every 5xx, not only 500/503."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        return response is not None and response.status_code >= 500


class _RateLimitRetry(_InjectedSleep, RateLimitErrorRetryHandler):
    """429: wait what Retry-After says, when it is at most `max_retry_after_s`; a longer wait is
    left to the notifier, which reschedules the batch instead of blocking."""

    max_retry_after_s: float = 60.0

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        after = retry_after_seconds(response.headers)
        return after is None or after <= self.max_retry_after_s

    def _delay(self, state: Any, response: Any) -> float:
        after = retry_after_seconds(response.headers if response is not None else None)
        return 1.0 if after is None else after


def retry_handlers(*, max_retries: int = 4, backoff_factor: float = 0.5, max_retry_after_s: float = 60.0,
                   sleep: Callable[[float], None] = time.sleep) -> list[RetryHandler]:
    """Connection, rate-limit and server-error handlers sharing one retry budget per post."""
    calc = BackoffRetryIntervalCalculator(backoff_factor=backoff_factor)
    conn = _ConnectionRetry(max_retry_count=max_retries, interval_calculator=calc,
                            error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError])
    rate = _RateLimitRetry(max_retry_count=max_retries)
    rate.max_retry_after_s = max_retry_after_s
    server = _ServerErrorRetry(max_retry_count=max_retries, interval_calculator=calc)
    for h in (conn, rate, server):
        h._sleep = sleep
    return [conn, rate, server]


class SlackWebhookSender:
    """Posts batches to one Slack incoming webhook; returns a :class:`SendResult`, never raises.

    A 400 (Slack could not take the blocks) is retried once as plain text before it counts as
    permanent, so a rendering bug does not cost an alert.
    """

    kind = "slack"

    def __init__(self, name: str, url: Secret, *, timeout_s: float = 10.0, max_retries: int = 4,
                 backoff_factor: float = 0.5, max_retry_after_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.source = url.source
        self._url = url
        self._clock = clock
        self._redactor = Redactor([url])
        quiet = quiet_logger(f"sloguard.notifier.http.slack.{id(self):x}", self._redactor)
        self._client = WebhookClient(
            url.reveal(), timeout=timeout_s, logger=quiet,
            retry_handlers=retry_handlers(max_retries=max_retries, backoff_factor=backoff_factor,
                                          max_retry_after_s=max_retry_after_s, sleep=sleep))

    @property
    def secrets(self) -> list[Secret]:
        return [self._url]

    @property
    def pace_key(self) -> str:
        return pace_key_of(self._url)

    def _post(self, body: dict[str, Any]) -> SendResult:
        where = f"route {self.name} (Slack)"
        try:
            resp = self._client.send_dict(body)
        except Exception as exc:  # URLError, timeouts, SlackRequestError (which quotes the URL)
            return SendResult("transient", self._redactor.redact(f"{where}: {type(exc).__name__}: {exc}"))
        answer = self._redactor.redact(str(resp.body or "").strip())
        hint = SLACK_ERROR_HINTS.get(answer, "")
        hint = f"{hint}; then update {self.source}" if hint and "webhook" in hint else hint
        return classify_http(resp.status_code, answer, resp.headers, where, hint)

    def send(self, batch: Batch, *, now: float | None = None) -> SendResult:
        now = self._clock() if now is None else now
        result = self._post(render_message(batch, now=now))
        if result.permanent and result.http_status in (400, 413):
            fallback = self._post({"text": render_text(batch, now=now)})
            if fallback.ok:
                return SendResult("ok", f"sent as plain text after: {result.reason}", 200)
        return result

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"SlackWebhookSender({self.name!r}, url={self._url!r})"

