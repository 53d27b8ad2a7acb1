"""The rollout controller: budgets and alerts in, promote / hold / rollback out, and an HTTP gate.

``sloguard controller --config C`` consumes ``slo.budget`` and ``slo.alerts`` in a consumer group
(manual commits), folds them into `sloguard.core.rollout.policy.RolloutState`, publishes a decision to
``rollout.decisions`` (key = model) whenever the decision for a model version changes, and serves
the gate that deployment tools call. The policy and its maths live in `sloguard.core.rollout.policy` and
`sloguard.core.stats.canary`; this module is the I/O around them.

At most once a second it flushes the decisions, writes the snapshot (``state_path``) and commits
the offsets, in that order. While it is more than a batch behind (a backlog after a restart) it
folds without publishing, so only decisions judged on caught-up state reach
``rollout.decisions``; the gate keeps answering from the state so far. Unusable messages go to
``slo.dead-letter``. Edits of the config file (e.g. a new override) are picked up without a
restart. On the embedded broker set ``kafka.client: {session.timeout.ms: 6000}``: a group join
takes about half of it.

Endpoints (JSON in and out; every decision served is appended to the audit log):

``GET /healthz``
    Liveness, no auth: ``{"status": "ok"}``.
``GET /readyz``
    200 once the consumer has partitions assigned, else 503. No auth.
``GET /v1/gate/{model}/{version}``
    For Argo Rollouts' web metric provider. Always 200 for a configured model (Argo counts any
    non-2xx as a measurement *Error*, not a failure) with ``{"decision": "promote"|"hold"|
    "rollback", "result": 1|0|-1, "allow": bool, "reasons": [...], "budgets": {...}, ...}``;
    404 for a model that is not in the config. ``{version}`` may be ``canary``: the version most
    recently seen serving ``variant=canary``.
``POST /v1/flagger/gate``
    Flagger ``confirm-rollout`` / ``confirm-traffic-increase`` / ``confirm-promotion`` hooks:
    200 only when the decision is ``promote``; 403 (with the reasons) for hold and rollback, so
    Flagger waits. Flagger counts only 200-202 as success and times out after 10 s by default.
``POST /v1/flagger/check``
    Flagger ``pre-rollout`` / ``rollout`` hooks: 200 unless the decision is ``rollback`` (403).
    A canary without enough traffic is not failing; it is still never promoted by the gate above.
``POST /v1/flagger/rollback``
    Flagger ``rollback`` hooks, whose 2xx means "roll back now": 200 when the decision is
    ``rollback``, 403 otherwise.

Flagger posts ``{"name", "namespace", "phase", "checksum", "metadata": {...}}``; sloguard reads
``metadata.model`` (default: ``name``) and ``metadata.version`` (default: the current canary
version). Flagger webhooks cannot send headers, so the token may travel as ``metadata.token``.

Auth: ``Authorization: Bearer <token>`` (or Flagger's ``metadata.token``), compared in constant
time against every configured token (``SLOGUARD_GATE_TOKEN`` or ``controller.token_env``, and/or
``controller.token_file`` with one token per line, for rotation). Requests without a valid token
get 401. ``/healthz`` and ``/readyz`` are open.

Argo Rollouts ``AnalysisTemplate`` (hold = *Inconclusive* pauses the rollout; rollback = *Failed*
aborts it)::

    apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: sloguard-gate}
    spec:
      args:
        - name: model
        - name: version
        - name: token
          valueFrom: {secretKeyRef: {name: sloguard-gate, key: token}}
      metrics:
        - name: error-budget-gate
          interval: 1m
          count: 10
          inconclusiveLimit: 10
          successCondition: result == "promote"
          failureCondition: result == "rollback"
          provider:
            web:
              url: "http://sloguard-controller.sloguard:8080/v1/gate/{{args.model}}/{{args.version}}"
              timeoutSeconds: 5
              headers:
                - {key: Authorization, value: "Bearer {{args.token}}"}
              jsonPath: "{$.decision}"

(or ``jsonPath: "{$.result}"`` with ``successCondition: result == 1`` and ``failureCondition:
result == -1``). Flagger ``Canary``::

    analysis:
      webhooks:
        - name: sloguard-check
          type: rollout
          url: http://sloguard-controller.sloguard:8080/v1/flagger/check
          timeout: 5s
          metadata: {model: fraud, version: "2026.01.4", token: "..."}
        - name: sloguard-gate
          type: confirm-promotion
          url: http://sloguard-controller.sloguard:8080/v1/flagger/gate
          metadata: {model: fraud, version: "2026.01.4", token: "..."}
        - name: sloguard-rollback
          type: rollback
          url: http://sloguard-controller.sloguard:8080/v1/flagger/rollback
          metadata: {model: fraud, version: "2026.01.4", token: "..."}

The ``controller:`` part of the ``rollout:`` config section (all optional)::

    rollout:
      controller:
        listen: 0.0.0.0:8080
        group_id: sloguard-controller
        token_env: SLOGUARD_GATE_TOKEN
        token_file: /etc/sloguard/gate-token
        auth: bearer              # or none (local demos only)
        audit_log: audit/gate.jsonl  # rotates at 64 MiB, 3 kept; refusals: 60 lines a minute (connectors/audit.py)
        state_path: state/controller.json   # snapshot; without it alerts are re-read from the start
        clock: wall               # or event: judge at the newest event time seen (replays)
        forget_after: 7d          # drop versions with no events for this long
        evaluate_every: 5s
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import orjson
import yaml

from sloguard.connectors.audit import AuditLog
from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.core.messages.outputs import dead_letter
from sloguard.core.rollout.decision import Decision
from sloguard.core.rollout.policy import RolloutState
from sloguard.core.rollout.spec import HOLD, PROMOTE, ROLLBACK, InvalidEvent, RolloutSpec, parse_rollout
from sloguard.core.spec.config import parse_config
from sloguard.core.spec.model import Config, ConfigError
from sloguard.core.spec.timeutil import parse_duration, to_rfc3339

__all__ = [
    "AuditLog",
    "Controller",
    "ControllerSettings",
    "Gate",
    "GateServer",
    "SharedState",
    "add_parser",
    "cmd_controller",
    "load_controller_config",
    "main",
]

log = logging.getLogger("sloguard.controller")

MAX_BODY_BYTES = 64 * 1024
BATCH = 5000  # messages per consume() call
COMMIT_EVERY_S = 1.0  # snapshot + commit at most this often
DEFAULT_TOKEN_ENV = "SLOGUARD_GATE_TOKEN"
_CONTROLLER_KEYS = {
    "listen", "group_id", "token_env", "token_file", "auth", "audit_log", "state_path", "clock",
    "forget_after", "evaluate_every",
}  # fmt: skip


# -- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControllerSettings:
    """Where the gate listens, who may call it, where it writes, and which clock it uses."""

    host: str = "127.0.0.1"
    port: int = 8080
    group_id: str = "sloguard-controller"
    tokens: tuple[str, ...] = ()
    auth: str = "bearer"  # bearer | none
    audit_log: Path | None = None
    state_path: Path | None = None
    clock: str = "wall"  # wall | event
    forget_after_s: int = 7 * 86_400
    evaluate_every_s: float = 5.0
    token_source: str = ""

    def redacted(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["tokens"] = f"{len(self.tokens)} token(s)"
        return d


def _listen(value: str) -> tuple[str, int]:
    host, _, port = str(value).rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"must be HOST:PORT (e.g. 0.0.0.0:8080), got {value!r}")
    return host or "0.0.0.0", int(port)


def read_tokens(token_env: str, token_file: str | Path | None, env: Mapping[str, str] | None = None) -> list[str]:
    """Tokens from the environment variable and/or the file (one per line, ``#`` comments)."""
    env = os.environ if env is None else env
    tokens = []
    if env.get(token_env, "").strip():
        tokens.append(env[token_env].strip())
    if token_file:
        for line in Path(token_file).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(line)
    return tokens


def controller_settings(
    raw: Any, base_dir: Path, env: Mapping[str, str] | None = None, source: str = "config"
) -> ControllerSettings:
    """Read ``rollout.controller``; raises `ConfigError` naming bad fields."""
    problems: list[str] = []
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(["rollout.controller: must be a mapping"], source)
    for k in raw:
        if k not in _CONTROLLER_KEYS:
            problems.append(
                f"rollout.controller.{k}: unknown key (expected one of: {', '.join(sorted(_CONTROLLER_KEYS))})"
            )
    host, port = "127.0.0.1", 8080
    if "listen" in raw:
        try:
            host, port = _listen(raw["listen"])
        except ValueError as e:
            problems.append(f"rollout.controller.listen: {e}")
    auth = raw.get("auth", "bearer")
    if auth not in ("bearer", "none"):
        problems.append(f"rollout.controller.auth: must be bearer or none, got {auth!r}")
    clock = raw.get("clock", "wall")
    if clock not in ("wall", "event"):
        problems.append(f"rollout.controller.clock: must be wall or event, got {clock!r}")
    durations = {}
    for key, default in (("forget_after", 7 * 86_400), ("evaluate_every", 5)):
        try:
            durations[key] = parse_duration(raw[key]) if key in raw else default
        except ValueError as e:
            problems.append(f"rollout.controller.{key}: {e}")
            durations[key] = default
    token_env = str(raw.get("token_env", DEFAULT_TOKEN_ENV))
    token_file = raw.get("token_file")
    tokens: list[str] = []
    try:
        tokens = read_tokens(token_env, base_dir / token_file if token_file else None, env)
    except OSError as e:
        problems.append(f"rollout.controller.token_file: cannot read {token_file}: {e.strerror or e}")
    if problems:
        raise ConfigError(problems, source)

    def path(key: str) -> Path | None:
        return base_dir / str(raw[key]) if raw.get(key) else None

    return ControllerSettings(
        host=host,
        port=port,
        group_id=str(raw.get("group_id", "sloguard-controller")),
        tokens=tuple(tokens),
        auth=auth,
        audit_log=path("audit_log"),
        state_path=path("state_path"),
        clock=clock,
        forget_after_s=durations["forget_after"],
        evaluate_every_s=float(durations["evaluate_every"]),
        token_source=f"${token_env}" + (f" + {token_file}" if token_file else ""),
    )


def load_controller_config(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Config, RolloutSpec, ControllerSettings, KafkaSettings]:
    """Read the sloguard YAML: the core config, its ``rollout:`` section and the Kafka settings.

    The ``rollout:`` key is taken out before the core config is validated, so this works whether
    or not `sloguard.core.spec.config` knows about it.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"], str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {e}"], str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping"], str(path))
    data = dict(data)
    rollout = data.pop("rollout", None) or {}
    config = parse_config(data, base_dir=path.parent, source=str(path))
    spec = parse_rollout(rollout, config, str(path))
    raw_controller = rollout.get("controller") if isinstance(rollout, dict) else None
    settings = controller_settings(raw_controller, path.parent, env, str(path))
    kafka = KafkaSettings.from_config(data, env)
    return config, spec, settings, kafka


# -- shared state ----------------------------------------------------------------------------


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


# -- the gate (HTTP logic without sockets) ---------------------------------------------------


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


# -- the Kafka loop --------------------------------------------------------------------------


class Controller:
    """Consume budgets and alerts, keep state, publish decision changes, commit after each step.

    Order per step: fold the batch, publish changed decisions, flush the producer, write the
    snapshot (when ``state_path`` is set), then commit offsets: a crash replays at most one step.
    Without a snapshot, the alerts topic is re-read from the beginning at every assignment so no
    firing page is forgotten; budgets rebuild within one evaluation tick.
    """

    def __init__(
        self,
        config: Config,
        spec: RolloutSpec,
        settings: ControllerSettings,
        kafka: KafkaSettings,
        *,
        shared: SharedState | None = None,
        session_timeout_ms: int | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.kafka = kafka
        self.topics = {k: config.topics[k] for k in ("budget", "alerts", "decisions", "dead_letter", "incidents")}
        self.inputs = [self.topics["budget"], self.topics["alerts"]] + (
            [self.topics["incidents"]] if config.incidents.enabled else [])  # incidents: what burned first
        self.restored = False
        self._restored_published: dict[tuple[str, str], tuple] = {}
        self.shared = shared if shared is not None else SharedState(self._load_state(spec), settings.clock)
        self.session_timeout_ms = session_timeout_ms
        self.config_path = config_path
        self._config_mtime = config_path.stat().st_mtime if config_path else None
        self.published: dict[tuple[str, str], tuple] = {}
        self.counters = {"events": 0, "invalid": 0, "decisions": 0, "commits": 0}
        self.decision_kinds: dict[str, int] = {}  # published decisions by kind (metrics)
        self.stop_event = threading.Event()
        self.assigned = 0
        self.catching_up = False

    def _load_state(self, spec: RolloutSpec) -> RolloutState:
        path = self.settings.state_path
        if path is not None and path.exists():
            try:
                snap = orjson.loads(path.read_bytes())
                state = RolloutState.from_snapshot(spec, snap.get("state", {}))
                self._restored_published = {(m, v): _tuplify(f) for m, v, f in snap.get("published", [])}
                self.restored = True
                log.info("restored state from %s", path)
                return state
            except (OSError, orjson.JSONDecodeError, TypeError, KeyError, ValueError) as e:
                log.warning("ignoring unreadable snapshot %s: %s", path, e)
        return RolloutState(spec)

    def _snapshot(self) -> None:
        path = self.settings.state_path
        if path is None:
            return
        with self.shared.lock:
            snap = {
                "state": self.shared.state.snapshot(),
                "published": [[m, v, list(f)] for (m, v), f in self.published.items()],
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(orjson.dumps(snap))
        os.replace(tmp, path)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        if not self.restored:
            for p in partitions:
                if p.topic in (self.topics["alerts"], self.topics["incidents"]):
                    p.offset = OFFSET_BEGINNING
        consumer.assign(partitions)
        self.assigned = len(partitions)
        self.shared.ready.set()
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned = 0

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        """Consume until `stop` is called (or SIGTERM via `cmd_controller`)."""
        from confluent_kafka import Consumer, Producer

        self.published.update(self._restored_published)
        consumer = Consumer(
            self.kafka.consumer_config(
                self.settings.group_id,
                session_timeout_ms=self.session_timeout_ms,
                extra={"enable.partition.eof": False},
            )
        )
        producer = Producer(self.kafka.producer_config({"linger.ms": 5}))
        consumer.subscribe(self.inputs, on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_eval = last_commit = 0.0
        pending = 0  # messages folded since the last commit
        try:
            while not self.stop_event.is_set():
                msgs = consumer.consume(num_messages=BATCH, timeout=0.2)
                touched = self._fold(msgs, producer)
                pending += len(msgs)
                self._maybe_reload()
                tick = time.monotonic() - last_eval >= self.settings.evaluate_every_s
                # decisions judged halfway through a backlog would be noise: publish once caught up
                if msgs or self.catching_up:
                    self.catching_up = len(msgs) >= BATCH or self._lagging(consumer)
                if (touched or tick) and not self.catching_up:
                    self.evaluate(producer, None if tick else touched)
                    if tick:
                        last_eval = time.monotonic()
                        with self.shared.lock:
                            self.shared.state.prune(self.shared.now(), self.settings.forget_after_s)
                if pending and time.monotonic() - last_commit >= COMMIT_EVERY_S:
                    self._commit(consumer, producer)
                    pending, last_commit = 0, time.monotonic()
                producer.poll(0)
        finally:
            if pending:
                self._commit(consumer, producer)
            else:
                producer.flush(10)
            consumer.close()  # leaves the group

    def _lagging(self, consumer: Any) -> bool:
        """True while the assigned partitions hold more than a batch of unread messages (one
        ListOffsets each): a backlog. A live stream, which the flow keeps writing while the
        controller reads, is always a few messages behind; it is judged as it comes."""
        behind = 0
        try:
            for tp in consumer.position(consumer.assignment()):
                low, high = consumer.get_watermark_offsets(tp, timeout=2, cached=False)
                # no position yet: nothing fetched from this partition, all of it is unread
                behind += high - low if tp.offset < 0 else max(0, high - tp.offset)
        except Exception as e:  # unknown lag: judge anyway rather than never
            log.debug("lag check failed: %s", e)
            return False
        return behind > BATCH

    def _fold(self, msgs: list[Any], producer: Any) -> set[str]:
        """Fold a batch into the state; what cannot be used goes to the dead-letter topic."""
        from confluent_kafka import KafkaError

        touched: set[str] = set()
        with self.shared.lock:
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consume error: %s", err)
                    continue
                self.counters["events"] += 1
                try:
                    touched.add(self.shared.state.apply(orjson.loads(m.value())))
                except (orjson.JSONDecodeError, InvalidEvent) as e:
                    self.counters["invalid"] += 1
                    self._dead_letter(producer, m, str(e))
            self.shared.events = self.counters["events"]
        return touched

    def _commit(self, consumer: Any, producer: Any) -> None:
        """Decisions delivered, then the snapshot written, then the offsets committed."""
        producer.flush(10)
        self._snapshot()
        try:
            consumer.commit(asynchronous=False)
            self.counters["commits"] += 1
        except Exception as e:  # e.g. a rebalance in progress: the next commit covers it
            log.warning("commit failed: %s", e)

    def candidates(self) -> list[tuple[str, str]]:
        """Canary versions (all versions when canary analysis is off) and those asked about."""
        return self.shared.state.candidates(self.shared.watched)

    def evaluate(self, producer: Any, models: set[str] | None = None) -> list[Decision]:
        """Decide every candidate (of ``models``) and publish those whose decision changed."""
        changed = []
        with self.shared.lock:
            now = self.shared.now()
            for model, version in self.candidates():
                if models is not None and model not in models:
                    continue
                d = self.shared.state.decide(model, version, now)
                if self.published.get((model, version)) != d.fingerprint:
                    self.published[(model, version)] = d.fingerprint
                    changed.append(d)
        for d in changed:
            producer.produce(self.topics["decisions"], key=d.model.encode(), value=msgspec.json.encode(d.message()))
            self.counters["decisions"] += 1
            self.decision_kinds[d.decision] = self.decision_kinds.get(d.decision, 0) + 1
            log.info(
                "%s %s: %s%s",
                d.model,
                d.version,
                d.decision.upper(),
                "".join(f"\n    - {r.message}" for r in d.reasons),
            )
        return changed

    def _dead_letter(self, producer: Any, m: Any, error: str) -> None:
        letter = dead_letter(m.topic() or "", m.partition(), m.offset(), "controller", error, m.value())
        producer.produce(self.topics["dead_letter"], key=(m.topic() or "").encode(), value=msgspec.json.encode(letter))
        log.warning("dead-lettered %s[%s]@%s: %s", m.topic(), m.partition(), m.offset(), error)

    def _maybe_reload(self) -> None:
        """Pick up edits of the config (e.g. a new override) without a restart."""
        if self.config_path is None:
            return
        try:
            mtime = self.config_path.stat().st_mtime
        except OSError:
            return
        if mtime == self._config_mtime:
            return
        self._config_mtime = mtime
        try:
            _config, spec, _settings, _kafka = load_controller_config(self.config_path)
        except ConfigError as e:
            log.error("config change ignored, it is invalid: %s", e)
            return
        with self.shared.lock:
            self.shared.state.spec = spec
        log.info("reloaded the rollout policy from %s (%d overrides)", self.config_path, len(spec.overrides))


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(i) for i in x) if isinstance(x, list) else x


# -- CLI -------------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sloguard controller`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "controller",
        help="rollout controller: budgets and alerts -> promote/hold/rollback, plus the HTTP gate",
        description="Consume slo.budget and slo.alerts, publish promote / hold / rollback decisions "
        "to rollout.decisions whenever they change, and serve the deployment gate for Argo Rollouts "
        "(GET /v1/gate/{model}/{version}) and Flagger (POST /v1/flagger/{gate,check,rollback}). "
        f"The gate token comes from ${DEFAULT_TOKEN_ENV} or rollout.controller.token_file.",
    )
    p.add_argument("--config", type=Path, required=True, help="the sloguard YAML (with a rollout: section)")
    p.add_argument("--listen", help="HOST:PORT for the gate (default rollout.controller.listen or 127.0.0.1:8080)")
    p.add_argument("--group-id", help="consumer group (default sloguard-controller)")
    p.add_argument("--audit-log", type=Path, help="JSONL audit log of every decision served")
    p.add_argument("--state", type=Path, help="snapshot file for restarts")
    p.add_argument("--clock", choices=("wall", "event"), help="judge at wall-clock time or newest event time")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level (every message consumed)")
    from sloguard.connectors.service_metrics import add_metrics_args

    add_metrics_args(p)
    p.set_defaults(func=cmd_controller)
    return p


def cmd_controller(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config, spec, settings, kafka = load_controller_config(args.config)
    over: dict[str, Any] = {}
    if args.listen:
        try:
            over["host"], over["port"] = _listen(args.listen)
        except ValueError as e:
            print(f"error: --listen {e}", file=sys.stderr)
            return 2
    for attr, key in (
        ("group_id", "group_id"),
        ("audit_log", "audit_log"),
        ("state", "state_path"),
        ("clock", "clock"),
    ):
        if getattr(args, attr, None):
            over[key] = getattr(args, attr)
    if over:
        settings = ControllerSettings(**{**settings.__dict__, **over})
    if kafka.is_embedded:
        print(
            "error: no Kafka configured: set kafka.bootstrap_servers in the config or KAFKA_BOOTSTRAP_SERVERS "
            "(`sloguard broker` starts a local one)",
            file=sys.stderr,
        )
        return 2
    if settings.auth == "bearer" and not settings.tokens:
        print(
            f"error: the gate needs a token: set {settings.token_source.split(' ')[0]} or "
            "rollout.controller.token_file (or rollout.controller.auth: none for a local demo)",
            file=sys.stderr,
        )
        return 2
    _ensure_topics(kafka, [config.topics[k] for k in ("decisions", "dead_letter", "incidents")])
    controller = Controller(config, spec, settings, kafka, config_path=args.config)
    from sloguard.connectors.service_metrics import register_controller, serve_from_args

    if (registry := serve_from_args(args)) is not None:
        register_controller(registry, controller)
    audit = AuditLog(settings.audit_log)
    gate = Gate(controller.shared, settings.tokens, audit, settings.auth)
    server = GateServer(gate, settings.host, settings.port).start()
    log.info(
        "gate on %s (auth %s), consuming %s and %s as %s, publishing to %s",
        server.url, settings.auth, controller.topics["budget"], controller.topics["alerts"],
        settings.group_id, controller.topics["decisions"],
    )  # fmt: skip

    def _stop(signum: int, _frame: Any) -> None:
        controller.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        controller.run()
    finally:
        server.stop()
        audit.close()
    log.info("stopped: %s", json.dumps(controller.counters))
    return 0


def _ensure_topics(kafka: KafkaSettings, names: list[str]) -> None:
    from sloguard.connectors.admin import TopicAdminError, create_topics

    try:
        create_topics(kafka, names)
    except (TopicAdminError, Exception) as e:  # no create rights: the topics may exist already
        log.warning("could not create %s: %s", ", ".join(names), e)


def main(argv: list[str] | None = None) -> int:
    """``python -m sloguard.connectors.controller --config C`` (the same as ``sloguard controller``)."""
    parser = argparse.ArgumentParser(prog="sloguard")
    sub = parser.add_subparsers()
    add_parser(sub)
    args = parser.parse_args(["controller", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_controller(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
