"""Webhook plumbing shared by the notifier's senders: secrets, redaction, outcomes, generic POSTs.

A webhook URL is a credential (anyone holding a Slack incoming-webhook URL can post to the
channel), so it lives in a :class:`Secret` whose ``repr`` names only where it came from, and a
:class:`Redactor` scrubs it from log records and exception text. HTTP libraries log request paths
(``urllib3`` at DEBUG and on retries, ``slack_sdk`` at DEBUG and INFO), which is where Slack keeps
the token: :meth:`Redactor.install` filters those loggers.

:class:`GenericWebhookSender` POSTs each alert, unchanged, as JSON (PagerDuty/Alertmanager-style
receivers that take sloguard's alert shape), with urllib3's retry policy: 429 honouring
Retry-After, 5xx with exponential backoff, connection errors.

Not for: Slack Block Kit (``connectors/slack.py``) or deciding where alerts go (``notifier.py``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

__all__ = [
    "HTTP_LOGGERS",
    "GenericWebhookSender",
    "Redactor",
    "Secret",
    "SendResult",
    "classify_http",
    "pace_key_of",
    "quiet_logger",
]

REDACTED = "<redacted>"
#: Loggers of the HTTP stacks the senders use; each logs request URLs or paths somewhere.
HTTP_LOGGERS = (
    "urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
    "urllib3.response", "urllib3.util.retry", "requests", "slack_sdk",
    "slack_sdk.webhook", "slack_sdk.webhook.client", "slack_sdk.http_retry",
    "slack_sdk.http_retry.builtin_handlers", "sloguard.notifier", "sloguard.notifier.http",
)
#: 4xx statuses that are worth retrying (timeout, too early, rate limited); others are permanent.
_TRANSIENT_4XX = frozenset({408, 425, 429})


class Secret:
    """A credential (a webhook URL, a header value) that never prints itself.

    >>> s = Secret("https://hooks.slack.com/services/T1/B2/abcdefgh", "env SLACK_WEBHOOK_SRE")
    >>> s
    <secret from env SLACK_WEBHOOK_SRE>
    >>> s.reveal().startswith("https://")
    True
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The secret itself: hand it to the HTTP client, nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return f"<secret from {self.source}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _variants(secret: str) -> set[str]:
    """Forms a URL secret can take in log lines and errors: whole, host+path, path, query, the
    last path segment (Slack's token) and any other long one; fragments under 8 characters
    are not worth hiding (and would turn common words into noise)."""
    out = {secret}
    try:
        parts = urlsplit(secret)
    except ValueError:
        return out
    if parts.scheme and parts.netloc:
        path_q = parts.path + (f"?{parts.query}" if parts.query else "")
        out |= {parts.netloc + path_q, path_q, parts.path, parts.query}
        segments = [seg for seg in parts.path.split("/") if seg]
        out |= {seg for seg in segments[-1:] if len(seg) >= 8}  # Slack's token
        out |= {seg for seg in segments if len(seg) >= 20}  # anything else token-like
    return {v for v in out if len(v) >= 8}


class Redactor(logging.Filter):
    """Replaces known secrets with ``<redacted>`` in text, log records and their tracebacks.

    Attach it with :meth:`install` to the loggers that may see a secret; :meth:`uninstall` when
    done. As a filter it never drops a record, it only rewrites it.
    """

    def __init__(self, secrets: Iterable[Secret | str] = ()) -> None:
        super().__init__()
        self._needles: list[str] = []
        self._installed: list[logging.Logger] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: Secret | str) -> None:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            self._needles = sorted(set(self._needles) | _variants(value), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every known secret (and its URL parts) replaced."""
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw template only
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = self.redact(text), None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    def install(self, names: Iterable[str] = HTTP_LOGGERS) -> Redactor:
        """Add this filter to the named loggers (a logger's filters see only its own records,
        so each HTTP module's logger is listed)."""
        for name in names:
            lg = logging.getLogger(name)
            if self not in lg.filters:
                lg.addFilter(self)
                self._installed.append(lg)
        return self

    def uninstall(self) -> None:
        for lg in self._installed:
            lg.removeFilter(self)
        self._installed.clear()


@dataclass(frozen=True)
class SendResult:
    """How a delivery attempt ended: ``ok``, ``transient`` (try again later) or ``permanent``."""

    status: str
    reason: str = ""
    http_status: int | None = None
    retry_after_s: float | None = None
    ref: dict[str, Any] | None = None  # what the receiver called the message (Slack API: channel, ts)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def permanent(self) -> bool:
        return self.status == "permanent"


def quiet_logger(name: str, redactor: Redactor) -> logging.Logger:
    """A private logger above DEBUG for an HTTP client: slack_sdk's clients log the URL (and so a
    webhook's token) whenever their logger's own level is <= DEBUG (a fresh logger's level, NOTSET,
    is 0) and on every retry at INFO."""
    quiet = logging.getLogger(name)
    quiet.setLevel(logging.CRITICAL)
    quiet.propagate = False
    quiet.addFilter(redactor)
    return quiet


def pace_key_of(url: Secret) -> str:
    """A receiver's name for pacing (sloguard/core/notify/pacing.py): a fingerprint of its URL, not the URL."""
    return "hook:" + hashlib.sha256(url.reveal().encode()).hexdigest()[:16]


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form); None when absent or unreadable."""
    if not headers:
        return None
    for k, v in headers.items():
        if str(k).lower() == "retry-after":
            value = v[0] if isinstance(v, list | tuple) and v else v
            try:
                return max(0.0, float(str(value).strip()))
            except ValueError:
                return None
    return None


def classify_http(status: int, body: str, headers: Mapping[str, Any] | None, where: str,
                  hint: str = "") -> SendResult:
    """Turn a final HTTP answer into a :class:`SendResult` with a reason a person can act on."""
    body = (body or "").strip()[:200]
    if 200 <= status < 300:
        return SendResult("ok", http_status=status)
    detail = f"{where}: HTTP {status}{' ' + body if body else ''}"
    if status in _TRANSIENT_4XX or status >= 500:
        return SendResult("transient", detail, status, retry_after_seconds(headers))
    return SendResult("permanent", f"{detail}{' - ' + hint if hint else ''}", status)


class _CappedRetry(Retry):
    """urllib3 Retry whose Retry-After sleeps are capped (the notifier re-schedules instead)."""

    max_retry_after_s: float = 60.0

    def new(self, **kw: Any) -> _CappedRetry:
        new = super().new(**kw)
        new.max_retry_after_s = self.max_retry_after_s
        return new

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after_s)


class GenericWebhookSender:
    """POSTs every alert of a batch as its own JSON body to one URL (the same JSON as on
    ``slo.alerts``), with retries; the first failure ends the batch with that failure."""

    kind = "webhook"

    def __init__(self, name: str, url: Secret, *, headers: Mapping[str, Secret] | None = None,
                 timeout_s: float = 10.0, max_retries: int = 4, backoff_factor: float = 0.5,
                 max_retry_after_s: float = 60.0) -> None:
        self.name = name
        self.source = url.source
        self._url = url
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._redactor = Redactor(self.secrets)
        retry = _CappedRetry(
            total=max_retries, connect=max_retries, read=max_retries, status=max_retries,
            backoff_factor=backoff_factor, status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None, raise_on_status=False, respect_retry_after_header=True)
        retry.max_retry_after_s = max_retry_after_s
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    @property
    def secrets(self) -> list[Secret]:
        return [self._url, *self._headers.values()]

    @property
    def pace_key(self) -> str:
        return pace_key_of(self._url)

    def send(self, alerts: list[Mapping[str, Any]]) -> SendResult:
        headers = {"Content-Type": "application/json", "User-Agent": "sloguard-notifier"}
        headers.update({k: v.reveal() for k, v in self._headers.items()})
        where = f"route {self.name} (webhook)"
        for alert in alerts:
            try:
                resp = self._session.post(self._url.reveal(), data=orjson.dumps(alert),
                                          headers=headers, timeout=self._timeout_s)
            except Exception as exc:  # requests' errors quote the URL: redacted below
                reason = self._redactor.redact(f"{where}: {type(exc).__name__}: {exc}")
                return SendResult("transient", reason)
            result = classify_http(resp.status_code, self._redactor.redact(resp.text), resp.headers,
                                   where, f"check the receiver and {self.source}")
            if not result.ok:
                return result
        return SendResult("ok", http_status=200)

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"GenericWebhookSender({self.name!r}, url={self._url!r})"
