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

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson

from sloguard.connectors.controller_settings import ControllerSettings, load_controller_config
from sloguard.connectors.gate import SharedState
from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.core.messages.outputs import AlertRead, BudgetRead, IncidentRead, dead_letter, read_message
from sloguard.core.rollout.decision import Decision
from sloguard.core.rollout.policy import RolloutState
from sloguard.core.rollout.spec import InvalidEvent, RolloutSpec
from sloguard.core.spec.model import Config, ConfigError

__all__ = ["Controller"]

log = logging.getLogger("sloguard.controller")

BATCH = 5000  # messages per consume() call
COMMIT_EVERY_S = 1.0  # snapshot + commit at most this often


# -- settings --------------------------------------------------------------------------------


# -- shared state ----------------------------------------------------------------------------


# -- the gate (HTTP logic without sockets) ---------------------------------------------------


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
            if pending:  # a commit refused mid-rebalance is retried: a restart should not re-read it
                for attempt in range(3):
                    if self._commit(consumer, producer) or attempt == 2:
                        break
                    time.sleep(0.5)
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
                    touched.add(self.shared.state.apply(_typed(orjson.loads(m.value()))))
                except (orjson.JSONDecodeError, InvalidEvent) as e:
                    self.counters["invalid"] += 1
                    self._dead_letter(producer, m, str(e))
            self.shared.events = self.counters["events"]
        return touched

    def _commit(self, consumer: Any, producer: Any) -> bool:
        """Decisions delivered, then the snapshot written, then the offsets committed; False when
        the broker refused the commit."""
        producer.flush(10)
        self._snapshot()
        try:
            consumer.commit(asynchronous=False)
            self.counters["commits"] += 1
            return True
        except Exception as e:  # e.g. a rebalance in progress: the next commit covers it
            log.warning("commit failed: %s", e)
            return False

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


_READ_AS = {"budget": BudgetRead, "alert": AlertRead, "incident": IncidentRead}


def _typed(message: Any) -> Any:
    """`message` once it reads as the type its `type` names (the flow's Budget, Alert or Incident);
    else `InvalidEvent` with the field's path. Other shapes go on to the policy, which names why."""
    kind = _READ_AS.get(message.get("type")) if isinstance(message, dict) else None
    if kind is not None and (problem := read_message(message, kind)) is not None:
        raise InvalidEvent(problem)
    return message


def _tuplify(x: Any) -> Any:
    return tuple(_tuplify(i) for i in x) if isinstance(x, list) else x


# -- CLI -------------------------------------------------------------------------------------

