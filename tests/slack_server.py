"""A local HTTP server that answers like Slack's incoming-webhook endpoint, for tests.

It also plays the Web API's ``chat.postMessage`` and ``chat.update`` (``/api/...``, a bearer token
made by ``bot_token()``): a post returns ``{"ok": true, "channel", "ts"}``, an update of a known
``ts`` replaces that message (``messages`` holds each channel's messages as they now read); 429s and
errors are scripted per method like webhook answers (``script(slack.api("chat.update"), ...)``).

Each webhook is a secret-looking path (``/services/T…/B…/<24 chars>``). By default a post gets
``200 ok`` when its JSON is a valid webhook payload, like Slack: ``400 invalid_payload`` for bad
JSON, ``400 no_text`` without text or blocks, ``400 invalid_blocks`` for more than 50 blocks or a
header over 150 characters; an unknown path gets ``404 no_service``. Tests script other answers
per webhook: ``429`` with ``Retry-After``, ``500``, slow answers, ``404``/``410`` for a removed
webhook. Every request is recorded with the answer it got.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "examples" / "alert.valid.jsonl"
#: How a rendered message names each alert it carries (its context line).
NOTICE_REF = re.compile(r"^(firing|resolved|still firing) · alert `([0-9a-f]+)`")


def example_alerts() -> list[dict[str, Any]]:
    """The schema's example alerts (firing, resolved, ticket, no-data, budget-exhausted)."""
    return [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]


def notices_in(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(state, alert id) for every alert a Slack payload carries: detailed ones from their
    context lines, overflow ones (state "listed") from the one-line list."""
    out = []
    for b in payload.get("blocks", []):
        if b["type"] == "context":
            for e in b["elements"]:
                m = NOTICE_REF.match(e["text"])
                if m:
                    out.append((m.group(1), m.group(2)))
        if b["type"] == "section":
            out += [("listed", i) for i in re.findall(r"^• `([0-9a-f]+)`", b["text"]["text"], re.M)]
    return out


@dataclass(frozen=True)
class Answer:
    """One scripted answer: status, body, headers, and a delay before answering."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


OK = Answer()
#: In a script: answer this request as the server would unscripted (a real 200 from the Web API).
PASS = Answer(status=0)


def rate_limited(retry_after: float = 1) -> Answer:
    return Answer(429, "rate_limited", {"Retry-After": f"{retry_after:g}"})


def server_error(status: int = 500) -> Answer:
    return Answer(status, "internal_error" if status == 500 else "service_unavailable")


def slow(delay_s: float) -> Answer:
    return Answer(delay_s=delay_s)


@dataclass
class Received:
    """A request as the server saw it, and what it answered."""

    path: str
    body: bytes
    headers: dict[str, str]
    status: int
    at: float
    answer_headers: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakeSlack:
    """Start with ``with FakeSlack() as slack:``; ``slack.webhook()`` makes a new webhook URL."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._scripts: dict[str, deque[Answer]] = {}
        self._sticky: dict[str, Answer] = {}
        self._known: set[str] = set()
        self._tokens: set[str] = set()
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> payload as it reads now
        self.posts: list[tuple[str, str]] = []  # (channel, ts) in order of chat.postMessage
        self._ts = 1_767_225_600_000_000
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = (owner._api(self.path, body, self.headers.get("Authorization") or "")
                          if self.path.startswith("/api/") else owner._answer(self.path, body))
                with owner._lock:  # recorded on arrival: a slow answer's post has arrived already
                    owner.requests.append(Received(self.path, body, dict(self.headers), answer.status,
                                                   time.monotonic(), dict(answer.headers)))
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                payload = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json; charset=utf-8"
                                     if self.path.startswith("/api/") else "text/html")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- webhooks and scripts -----------------------------------------------------------------------

    def webhook(self) -> str:
        """A new webhook URL whose last path segment is a random secret token."""
        path = f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/{secrets.token_urlsafe(18)}"
        self._known.add(path)
        return self.base + path

    @staticmethod
    def _path(url: str) -> str:
        for marker in ("/services/", "/api/"):
            if marker in url:
                return url[url.index(marker):]
        return url

    def bot_token(self) -> str:
        """A new bot token the Web API endpoints accept."""
        token = f"xoxb-{secrets.token_hex(6)}-{secrets.token_urlsafe(18)}"
        self._tokens.add(token)
        return token

    def api(self, method: str) -> str:
        """The URL of a Web API method (for `script` and `received`); its base is `base + "/api/"`."""
        return f"{self.base}/api/{method}"

    def _api(self, path: str, body: bytes, auth: str) -> Answer:
        with self._lock:
            queue = self._scripts.get(path)
            scripted = queue.popleft() if queue else PASS
        if scripted is not PASS:
            return scripted
        if auth.removeprefix("Bearer ") not in self._tokens:
            return Answer(200, json.dumps({"ok": False, "error": "invalid_auth"}))
        try:
            payload = json.loads(body)
        except ValueError:
            return Answer(200, json.dumps({"ok": False, "error": "invalid_json"}))
        invalid = self._validate(json.dumps({k: v for k, v in payload.items() if k in ("text", "blocks")}).encode())
        if invalid.status != 200:
            return Answer(200, json.dumps({"ok": False, "error": invalid.body}))
        channel = payload.get("channel")
        with self._lock:
            if path == "/api/chat.postMessage":
                self._ts += 100
                ts = f"{self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"
                self.messages[(channel, ts)] = payload
                self.posts.append((channel, ts))
                return Answer(200, json.dumps({"ok": True, "channel": channel, "ts": ts}))
            if path == "/api/chat.update":
                if (channel, payload.get("ts")) not in self.messages:
                    return Answer(200, json.dumps({"ok": False, "error": "message_not_found"}))
                self.messages[(channel, payload["ts"])] = payload
                return Answer(200, json.dumps({"ok": True, "channel": channel, "ts": payload["ts"]}))
        return Answer(404, json.dumps({"ok": False, "error": "unknown_method"}))

    def script(self, url: str, *answers: Answer) -> None:
        """Answer the next posts to `url` with `answers`, in order; then default behaviour."""
        with self._lock:
            self._scripts.setdefault(self._path(url), deque()).extend(answers)

    def always(self, url: str, answer: Answer) -> None:
        """Answer every post to `url` with `answer` (e.g. 404 no_service: the webhook is gone)."""
        self._sticky[self._path(url)] = answer

    def _answer(self, path: str, body: bytes) -> Answer:
        with self._lock:
            queue = self._scripts.get(path)
            scripted = queue.popleft() if queue else PASS
        if scripted is not PASS:
            return scripted
        if path in self._sticky:
            return self._sticky[path]
        if path not in self._known:
            return Answer(404, "no_service")
        return self._validate(body)

    @staticmethod
    def _validate(body: bytes) -> Answer:
        try:
            payload = json.loads(body)
        except ValueError:
            return Answer(400, "invalid_payload")
        if not isinstance(payload, dict):
            return Answer(400, "invalid_payload")
        if "type" in payload and "id" in payload:  # a generic webhook receiver takes raw alerts
            return OK
        if not payload.get("text") and not payload.get("blocks"):
            return Answer(400, "no_text")
        blocks = payload.get("blocks") or []
        if len(blocks) > 50:
            return Answer(400, "invalid_blocks")
        for b in blocks:
            if b.get("type") == "header" and len(b["text"]["text"]) > 150:
                return Answer(400, "invalid_blocks")
            if b.get("type") == "section" and len(b.get("text", {}).get("text", "")) > 3000:
                return Answer(400, "invalid_blocks")
        return OK

    # -- what arrived -------------------------------------------------------------------------------

    def received(self, url: str, status: int | None = 200) -> list[Received]:
        """Requests to `url` (those answered with `status`; None for all)."""
        path = self._path(url)
        with self._lock:
            return [r for r in self.requests if r.path == path and (status is None or r.status == status)]
