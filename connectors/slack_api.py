"""The Slack Web API sender: one message per incident, posted once and edited in place.

Incoming webhooks cannot edit what they posted (they return no message reference), so a route
that wants one Slack message per incident, updated as keys join and resolve, uses a bot token:
``chat.postMessage`` returns the message's ``channel`` and ``ts``, which the notifier keeps in its
ledger, and every later state of the incident is a ``chat.update`` of that message. The token is a
secret read from an environment variable or a file named in the config, never logged.

A 429 (Slack's Web API rate limits, per method and channel) is returned with its Retry-After for
the notifier to schedule (sloguard/core/notify/pacing.py holds the whole channel), not slept in-line; 5xx and
connection errors are retried in-line with backoff. A message that cannot be edited any more (it
was deleted: ``message_not_found``, ``cant_update_message``) is posted anew. Alerts (the notifier's
``source: alerts``) are posted with ``chat.postMessage``.

```yaml
notifier:
  routes:
    sre-oncall: {type: slack_api, token_env: SLACK_BOT_TOKEN, channel: C0123456789}
```
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sloguard.connectors.slack import render_message, retry_handlers
from sloguard.connectors.slack_incident import render_incident
from sloguard.connectors.webhooks import Redactor, Secret, SendResult, classify_http, quiet_logger, retry_after_seconds

__all__ = ["API_ERROR_HINTS", "SlackApiSender"]

#: Slack Web API errors that no retry will fix, and what to do about them.
API_ERROR_HINTS = {
    "invalid_auth": "the bot token is invalid: create a new one",
    "not_authed": "no bot token was sent",
    "token_revoked": "the bot token was revoked: create a new one",
    "account_inactive": "the bot's account was deactivated",
    "channel_not_found": "the channel does not exist or the bot cannot see it: check notifier.routes.*.channel",
    "not_in_channel": "the bot is not in the channel: invite it (/invite @your-bot)",
    "is_archived": "the channel is archived",
    "missing_scope": "the bot token lacks the chat:write scope",
    "invalid_blocks": "Slack rejected the message's blocks (a sloguard bug: please report it)",
}
_GONE = {"message_not_found", "cant_update_message", "edit_window_closed"}


class SlackApiSender:
    """Posts and edits incident messages in one channel; returns a `SendResult` (with `ref`), never raises."""

    kind = "slack_api"

    def __init__(self, name: str, token: Secret, channel: str, *, api_url: str = "https://slack.com/api/",
                 timeout_s: float = 10.0, max_retries: int = 4, backoff_factor: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.source = token.source
        self.channel = channel
        self._token = token
        self._clock = clock
        self._redactor = Redactor([token])
        quiet = quiet_logger(f"sloguard.notifier.http.slack_api.{id(self):x}", self._redactor)
        handlers = [h for h in retry_handlers(max_retries=max_retries, backoff_factor=backoff_factor, sleep=sleep)
                    if type(h).__name__ != "_RateLimitRetry"]  # 429s go back to the scheduler
        self._client = WebClient(token=token.reveal(), base_url=api_url, timeout=int(max(1, timeout_s)),
                                 logger=quiet, retry_handlers=handlers)

    @property
    def secrets(self) -> list[Secret]:
        return [self._token]

    @property
    def pace_key(self) -> str:
        return f"slack-api:{self.channel}"

    def _call(self, method: str, body: dict[str, Any]) -> tuple[SendResult, dict[str, Any] | None]:
        where = f"route {self.name} (Slack API {method})"
        try:
            resp = self._client.api_call(method, json=body)
        except SlackApiError as e:
            r = e.response
            error = str((r.data or {}).get("error") if isinstance(r.data, dict) else r.data)
            if r.status_code == 429 or error == "ratelimited":
                return SendResult("transient", f"{where}: HTTP 429 rate limited", 429,
                                  retry_after_seconds(r.headers) or 1.0), None
            if r.status_code >= 500:
                return classify_http(r.status_code, error, r.headers, where), None
            return SendResult("permanent", self._redactor.redact(
                f"{where}: {error}{' - ' + API_ERROR_HINTS[error] if error in API_ERROR_HINTS else ''}"),
                r.status_code), {"error": error}
        except Exception as exc:  # URLError, timeouts
            return SendResult("transient", self._redactor.redact(f"{where}: {type(exc).__name__}: {exc}")), None
        data = resp.data if isinstance(resp.data, dict) else {}
        return SendResult("ok", http_status=resp.status_code), {"channel": data.get("channel"), "ts": data.get("ts")}

    def send(self, batch: Any, *, now: float | None = None) -> SendResult:
        message = getattr(batch, "message", None)
        if message is None:  # alerts: a new message per batch
            result, _ = self._call("chat.postMessage", {"channel": self.channel, **render_message(batch, now=now)})
            return result
        payload = render_incident(message, batch.kind)
        ref = getattr(batch, "ref", None)
        if batch.kind in ("remind", "escalate") and ref:  # an edit pings nobody: a thread reply does
            result, _ = self._call("chat.postMessage", {"channel": ref["channel"], "thread_ts": ref["ts"], **payload})
            return result
        if ref:
            result, answer = self._call("chat.update", {"channel": ref["channel"], "ts": ref["ts"], **payload})
            if result.ok or (answer or {}).get("error") not in _GONE:
                return result if not result.ok else SendResult("ok", http_status=200, ref=dict(ref))
        result, answer = self._call("chat.postMessage", {"channel": self.channel, **payload})
        if result.ok and answer:
            return SendResult("ok", http_status=200, ref={"channel": answer["channel"], "ts": answer["ts"]})
        return result

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"SlackApiSender({self.name!r}, channel={self.channel!r}, token={self._token!r})"
