"""The HTTP gate deployment tools call, answered from the controller's shared state.

Argo Rollouts' web metric (``GET /v1/gate/{model}/{version}``) and Flagger's webhooks; the
endpoints are listed in `sloguard.connectors.controller`.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from sloguard.connectors.audit import AuditLog
from sloguard.core.rollout.decision import Decision
from sloguard.core.rollout.policy import RolloutState
from sloguard.core.rollout.spec import HOLD, PROMOTE, ROLLBACK
from sloguard.core.spec.timeutil import to_rfc3339

log = logging.getLogger("sloguard.controller")

MAX_BODY_BYTES = 64 * 1024


class SharedState:
    """The rollout state behind a lock, shared by the Kafka loop and the HTTP threads."""

    def __init__(self, state: RolloutState, clock: str = "wall", wall: Callable[[], float] = time.time) -> None:
        self.state = state
        self.lock = threading.RLock()
        self.clock = clock
        self.wall = wall
        self.ready = threading.Event()
        self.watched: set[tuple[str, str]] = set()  # (model, version) asked for through the gate
        self.events = 0
        self.invalid = 0

    def now(self) -> float:
        if self.clock == "event":
            latest = self.state.latest_ts()
            if latest is not None:
                return latest
        return self.wall()

    def decide(self, model: str, version: str) -> Decision:
        with self.lock:
            self.watched.add((model, version))
            return self.state.decide(model, version, self.now())

    def canary_version(self, model: str) -> str | None:
        with self.lock:
            return self.state.canary_version(model)

    def knows(self, model: str) -> bool:
        return model in self.state.spec.slos


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


FLAGGER_HOOKS = {
    "gate": "confirm-rollout / confirm-traffic-increase / confirm-promotion: 200 only on promote",
    "check": "pre-rollout / rollout: 200 unless rollback",
    "rollback": "rollback: 200 means roll back now",
}


class Gate:
    """Routes a request to a decision and an HTTP status; `GateServer` puts it on a socket."""

    def __init__(self, shared: SharedState, tokens: Iterable[str], audit: AuditLog, auth: str = "bearer") -> None:
        self.shared = shared
        self._tokens = [t.encode() for t in tokens]
        self.audit = audit
        self.auth = auth
        if auth == "bearer" and not self._tokens:
            raise ValueError("the gate needs at least one token (or auth: none for local demos)")

    def authorized(self, header: str | None, body_token: Any = None) -> bool:
        """Constant-time comparison of the presented token with every configured token."""
        if self.auth == "none":
            return True
        presented = None
        if header:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                presented = value.strip()
        if presented is None and isinstance(body_token, str) and body_token:
            presented = body_token
        if presented is None:
            return False
        given = presented.encode()
        ok = False
        for t in self._tokens:
            ok |= hmac.compare_digest(given, t)
        return ok

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes, client: str = "") -> Response:
        started = time.perf_counter()
        url = urllib.parse.urlsplit(path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        entry: dict[str, Any] = {"ts": to_rfc3339(time.time()), "client": client, "method": method, "path": url.path}
        try:
            resp = self._route(method, parts, headers, body, entry)
        except Exception as e:  # the gate answers, always: a 500 is a deny for both tools
            log.exception("gate error on %s %s", method, path)
            resp = Response(500, {"error": f"internal error: {type(e).__name__}", "allow": False})
        if entry.get("endpoint"):
            entry["status"] = resp.status
            entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self.audit.write(entry)
        return resp

    def _route(
        self, method: str, parts: list[str], headers: Mapping[str, str], body: bytes, entry: dict[str, Any]
    ) -> Response:
        if parts == ["healthz"]:
            return Response(200, {"status": "ok"})
        if parts == ["readyz"]:
            ready = self.shared.ready.is_set()
            return Response(200 if ready else 503, {"ready": ready, "events": self.shared.events})
        if len(parts) >= 2 and parts[:2] == ["v1", "gate"]:
            entry["endpoint"] = "argo"
            if method not in ("GET", "HEAD"):
                return Response(405, {"error": "use GET"}, {"Allow": "GET"})
            if len(parts) != 4:
                return Response(404, {"error": "use /v1/gate/{model}/{version}"})
            if not self.authorized(headers.get("authorization")):
                return self._unauthorized(entry)
            return self._argo(parts[2], parts[3], entry)
        if len(parts) == 3 and parts[:2] == ["v1", "flagger"] and parts[2] in FLAGGER_HOOKS:
            entry["endpoint"] = f"flagger-{parts[2]}"
            if method != "POST":
                return Response(405, {"error": "use POST"}, {"Allow": "POST"})
            return self._flagger(parts[2], headers, body, entry)
        return Response(404, {"error": "not found", "endpoints": [
            "/healthz", "/readyz", "/v1/gate/{model}/{version}", "/v1/flagger/gate", "/v1/flagger/check",
            "/v1/flagger/rollback",
        ]})  # fmt: skip

    def _unauthorized(self, entry: dict[str, Any]) -> Response:
        entry["refused"] = "missing or invalid bearer token"
        return Response(
            401,
            {"error": "missing or invalid bearer token", "allow": False},
            {"WWW-Authenticate": 'Bearer realm="sloguard"'},
        )

    def _version(self, model: str, version: str | None) -> str | None:
        if version in (None, "", "canary"):
            return self.shared.canary_version(model)
        return version

    def _decision(self, model: str, version: str, entry: dict[str, Any]) -> dict[str, Any]:
        d = self.shared.decide(model, version)
        entry.update(
            model=model,
            version=version,
            decision=d.decision,
            reasons=[r.message for r in d.reasons],
            overrides=[{"index": o["index"], "effect": o["effect"], "reason": o["reason"]} for o in d.overrides],
            decided_at=to_rfc3339(d.ts),
        )
        return d.to_message()

    def _argo(self, model: str, version: str, entry: dict[str, Any]) -> Response:
        entry.update(model=model, version=version)
        if not self.shared.knows(model):
            return Response(404, {"error": f"unknown model {model!r}", "allow": False})
        resolved = self._version(model, version)
        if resolved is None:
            msg = f"no canary version of {model} seen yet: missing data is never a pass"
            entry.update(decision=HOLD, reasons=[msg])
            body = {"model": model, "version": version, "decision": HOLD, "result": 0, "allow": False}
            return Response(200, {**body, "reasons": [msg], "budgets": {}, "ts": to_rfc3339(self.shared.now())})
        return Response(200, self._decision(model, resolved, entry))

    def _flagger(self, hook: str, headers: Mapping[str, str], body: bytes, entry: dict[str, Any]) -> Response:
        try:
            payload = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as e:
            payload = None
            error = f"body is not JSON: {e}"
        if payload is not None and not isinstance(payload, dict):
            payload, error = None, "body must be a JSON object"
        meta = payload.get("metadata") if payload else None
        meta = meta if isinstance(meta, dict) else {}
        if not self.authorized(headers.get("authorization"), meta.get("token")):
            return self._unauthorized(entry)
        if payload is None:
            return Response(400, {"error": error, "allow": False})
        entry["caller"] = {k: payload.get(k) for k in ("name", "namespace", "phase", "checksum") if k in payload}
        model = meta.get("model") or payload.get("name")
        if not isinstance(model, str) or not model:
            return Response(400, {"error": "metadata.model (or name) is required", "allow": False})
        entry["model"] = model
        if not self.shared.knows(model):
            return Response(404, {"error": f"unknown model {model!r} (set metadata.model)", "allow": False})
        version = self._version(model, meta.get("version"))
        if version is None:
            msg = f"no canary version of {model} seen yet and metadata.version not given"
            entry.update(decision=HOLD, reasons=[msg])
            allow = hook == "check"
            return Response(200 if allow else 403, {"model": model, "decision": HOLD, "allow": allow, "reasons": [msg]})
        msg = self._decision(model, version, entry)
        decision = msg["decision"]
        if hook == "gate":
            allow = decision == PROMOTE
        elif hook == "check":
            allow = decision != ROLLBACK
        else:
            allow = decision == ROLLBACK
        msg.update(allow=allow, hook=hook)
        return Response(200 if allow else 403, msg)


class _Handler(BaseHTTPRequestHandler):
    gate: Gate
    protocol_version = "HTTP/1.1"  # keep-alive: Go's http.Client reuses connections
    timeout = 10  # a stalled client cannot hold a thread for longer
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall
    server_version = "sloguard-gate"

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(Response(400, {"error": "bad Content-Length", "allow": False}), close=True)
            return
        if length > MAX_BODY_BYTES:
            self._send(Response(413, {"error": f"body over {MAX_BODY_BYTES} bytes", "allow": False}), close=True)
            return
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(self.gate.handle(method, self.path, headers, body, self.client_address[0]), head=method == "HEAD")

    def _send(self, resp: Response, *, head: bool = False, close: bool = False) -> None:
        data = orjson.dumps(resp.body)
        self.send_response(resp.status, HTTPStatus(resp.status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class GateServer:
    """The gate on a ThreadingHTTPServer in a background thread; ``port=0`` picks a free port."""

    def __init__(self, gate: Gate, host: str = "127.0.0.1", port: int = 8080) -> None:
        handler = type("GateHandler", (_Handler,), {"gate": gate})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def start(self) -> GateServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sloguard-gate", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> GateServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
