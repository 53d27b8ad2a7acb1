"""The notifier: ``slo.alerts`` -> Slack incoming webhooks (and generic JSON webhooks).

``sloguard notifier --config C`` consumes the alerts topic in a consumer group and posts each
alert to its owner's route, the ``default`` route when the owner has none. It never loses an
alert and tries hard not to spam:

- offsets are committed (manually) only after the receiver accepted the post, the ledger of
  delivered notices was saved, or the alert went to the dead-letter topic: at-least-once;
- notices are deduplicated by (route, alert id, started_at, state) across restarts, through a
  local ledger: a journal appended after every accepted post (fsynced before each commit) and a
  snapshot replaced atomically when the journal grows;
- alerts for one model arriving within ``group_window`` go out as one message; long-firing pages
  get a reminder every ``reminder_interval``;
- 429 waits for Retry-After, 5xx and connection errors are retried with backoff, then the batch
  is rescheduled (its offsets stay uncommitted); 400/403/404/410 are permanent: the alert goes to
  the dead-letter topic with a reason a person can act on, and the notifier moves on.

Webhook URLs are secrets: the config names an environment variable or a file, never the URL,
and every logger that could print one is filtered (see ``connectors/webhooks.py``).

```yaml
notifier:
  group_window: 30s            # alerts for one model within this go out together (0: never group)
  reminder_interval: 4h        # re-post pages still firing this often (0: never)
  state_file: /var/lib/sloguard/notifier-state.json
  routes:
    sre-oncall: {webhook_env: SLACK_WEBHOOK_SRE}
    data-eng: {webhook_file: /run/secrets/slack-data-eng}
    pager:                     # a route may have several targets
      - {webhook_env: SLACK_WEBHOOK_PAGER}
      - {type: webhook, webhook_env: PAGERDUTY_BRIDGE_URL, headers_env: {Authorization: PD_TOKEN}}
    default: {webhook_env: SLACK_WEBHOOK_DEFAULT}
```

The pure decisions (dedupe, grouping, reminders, retry timing, committable offsets) live in
``sloguard/core/notify/notify_policy.py``; Block Kit rendering and the Slack client in ``connectors/slack.py``;
the ``notifier:`` section, routes and senders in ``connectors/notifier_config.py``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import msgspec
import orjson

from sloguard.connectors.notifier_config import (
    NotifierConfigError,
    NotifierSettings,
    PreviewSender,
    Sender,
    TargetSpec,
    build_senders,
    load_notifier_config,
)
from sloguard.connectors.notifier_ledger import StateFile
from sloguard.connectors.notifier_messages import parse_alert, parse_incident
from sloguard.connectors.webhooks import Redactor
from sloguard.core.messages.outputs import dead_letter
from sloguard.core.notify.incident_notify import IncidentNotifications
from sloguard.core.notify.notify_policy import (
    REMINDER,
    Batch,
    Notifications,
    OffsetTracker,
)

__all__ = ["Notifier", "NotifierStats", "run_notifier"]

log = logging.getLogger("sloguard.notifier")


# -- state ----------------------------------------------------------------------------------------


# -- parsing --------------------------------------------------------------------------------------


# -- the loop -------------------------------------------------------------------------------------


@dataclass
class NotifierStats:
    """Counters of one notifier run."""

    consumed: int = 0
    messages_sent: int = 0
    alerts_delivered: int = 0
    reminders_sent: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    invalid: int = 0
    retries_scheduled: int = 0
    commits: int = 0
    send_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Notifier:
    """Consume -> route -> decide (pure core) -> send -> save ledger -> commit, in one thread.

    Built by :func:`run_notifier`; tests may build it directly with their own consumer, producer,
    senders and clock.
    """

    def __init__(self, settings: NotifierSettings, senders: Mapping[str, Sender], *, consumer: Any,
                 producer: Any, alerts_topic: str, dead_letter_topic: str,
                 owner_routes: Mapping[str, str] | None = None, state: StateFile | None = None,
                 clock: Callable[[], float] = time.time, commit: bool = True,
                 on_commit: Callable[[dict[Hashable, int]], None] | None = None,
                 redactor: Redactor | None = None) -> None:
        self.settings = settings
        self.senders = dict(senders)
        self.consumer = consumer
        self.producer = producer
        self.alerts_topic = alerts_topic
        self.dead_letter_topic = dead_letter_topic
        self.owner_routes = dict(owner_routes or {})
        self.state = state
        self.clock = clock
        self.commit_enabled = commit
        self.on_commit = on_commit
        self.redactor = redactor or Redactor()
        self.stats = NotifierStats()
        saved = state.load() if state else None
        pace = {name: getattr(sender, "pace_key", name) for name, sender in self.senders.items()}
        self.incidents = settings.source == "incidents"
        self.core: Any = (
            IncidentNotifications.from_snapshot(settings.policy, saved, pace_keys=pace,
                                                updates={t.name: t.kind == "slack_api" for t in settings.targets()})
            if self.incidents else Notifications.from_snapshot(settings.policy, saved, pace_keys=pace))
        self.tracker = OffsetTracker()
        self._abrupt = False
        self._paused = False
        self._dl_errors: list[str] = []

    # -- routing ---------------------------------------------------------------------------------

    def targets_for(self, alert: Mapping[str, Any]) -> tuple[TargetSpec, ...]:
        owner = alert.get("owner") or self.owner_routes.get(str(alert.get("dimension")))
        routes = self.settings.routes
        return (routes.get(str(owner)) if owner else None) or routes.get("default") or ()

    # -- intake ----------------------------------------------------------------------------------

    def handle(self, msg: Any, now: float) -> None:
        """One consumed message: parse, route, offer to the core (or dead-letter it)."""
        tp, offset = (msg.topic(), msg.partition()), msg.offset()
        self.stats.consumed += 1
        alert, error = (parse_incident if self.incidents else parse_alert)(msg.value())
        if alert is None:
            self.stats.invalid += 1
            self._dead_letter(msg.value(), tp, offset, f"notifier: {error}", None)
            self.tracker.add(tp, offset, 0)
            return
        targets = self.targets_for(alert)
        if not targets:
            owner = alert.get("owner")
            self._dead_letter(msg.value(), tp, offset, f"notifier: no route for owner {owner!r} and no "
                              "'default' route: add one under notifier.routes", alert)
            self.tracker.add(tp, offset, 0)
            return
        self.tracker.add(tp, offset, len(targets))
        for t in targets:
            if self.core.offer(t.name, alert, (tp, offset), now, group=t.group, remind=t.remind) == "duplicate":
                self.stats.duplicates += 1
                self.tracker.done(tp, offset)

    # -- output ----------------------------------------------------------------------------------

    def pump(self, now: float, *, flush: bool = False) -> int:
        """Send every due batch (every batch when `flush`); returns how many were sent. After a
        receiver fails, nothing more goes to it in this round: its batches wait their turn."""
        batches = self.core.flush_all(now) if flush else self.core.due(now)
        sent = 0
        failed: dict[Any, float] = {}
        for batch in batches:
            key = self.core.pace_key(batch.target)
            if key in failed:
                self.core.retry_later(batch, now, max(0.0, failed[key] - self.clock()))
                continue
            ok = self._send(batch)
            if ok < 0:
                failed[key] = self.core.pacer.next_at(key)
            sent += max(ok, 0)
        return sent

    def _send(self, batch: Batch) -> int:
        sender = self.senders.get(batch.target)
        now = self.clock()
        if sender is None:  # a reminder for a route removed from the config
            log.warning("no sender for route %s any more; dropping %d %s notice(s)", batch.target,
                        len(batch.items), batch.kind)
            self.core.dead_lettered(batch, now)
            self._finish(batch)
            return 0
        t0 = time.perf_counter()
        result = sender.send(batch, now=now)
        self.stats.send_seconds += time.perf_counter() - t0
        now = self.clock()
        reason = self.redactor.redact(result.reason)
        if result.ok:
            self.core.delivered(batch, now, ref=result.ref)
            self._save()
            self.stats.messages_sent += 1
            if batch.kind == REMINDER:
                self.stats.reminders_sent += len(batch.items)
            else:
                self.stats.alerts_delivered += len(batch.items)
            if reason:
                log.warning("%s", reason)
            self._finish(batch)
            return 1
        if result.permanent:
            log.error("dead-lettering %d alert(s) for route %s: %s", len(batch.items), batch.target, reason)
            for p in batch.items:
                token = p.token if isinstance(p.token, tuple) else None
                tp, offset = token if token else ((self.alerts_topic, -1), -1)
                self._dead_letter(orjson.dumps(p.alert), tp, offset, f"notifier: {reason}", p.alert,
                                  route=batch.target, kind=batch.kind)
            self.core.dead_lettered(batch, now)
            self._save()
            self._finish(batch)
            return 0
        due = self.core.retry_later(batch, now, result.retry_after_s)
        self.stats.retries_scheduled += 1
        log.warning("route %s: %s; %d alert(s) retried in %.1f s (attempt %d)", batch.target, reason,
                    len(batch.items), due - now, batch.attempts)
        return -1

    def _finish(self, batch: Batch) -> None:
        for token in batch.tokens:
            tp, offset = token
            self.tracker.done(tp, offset)

    def _save(self) -> None:
        """Journal what the last outcome settled; compact when the journal outgrows the ledger."""
        if self.state is None:
            return
        self.state.append(self.core.take_changes())
        if self.state.journal_lines > max(1000, 2 * len(self.core.episodes)):
            self.core.prune(self.clock())
            self.state.compact(self.core.snapshot())

    def _dead_letter(self, raw: bytes | None, tp: tuple[str, int], offset: int, error: str,
                     alert: Mapping[str, Any] | None, **extra: str) -> None:
        """Publish one dead letter and wait for the broker's ack (dead letters are rare; an
        unacknowledged one must not let its offset be committed)."""
        model, ts, alert_id = ((alert or {}).get(name) for name in ("model", "ts", "id"))
        letter = dead_letter(tp[0], tp[1], offset, "notifier", self.redactor.redact(error), raw,
                             model=model if isinstance(model, str) else None, ts=ts if isinstance(ts, str) else None,
                             alert_id=alert_id if isinstance(alert_id, str) else None, **extra)
        self.stats.dead_lettered += 1

        def ack(err: Any, _msg: Any) -> None:
            if err is not None:
                self._dl_errors.append(str(err))

        key = (letter.alert_id or "").encode() or None
        self.producer.produce(self.dead_letter_topic, key=key, value=msgspec.json.encode(letter), on_delivery=ack)
        left = self.producer.flush(30)
        if left or self._dl_errors:
            raise RuntimeError(f"could not publish a dead letter to {self.dead_letter_topic}: "
                               f"{self._dl_errors or 'no ack within 30 s'}")

    # -- commits and rebalances ------------------------------------------------------------------

    def commit(self) -> None:
        if not self.commit_enabled:
            return
        offsets = self.tracker.committable()
        if not offsets:
            return
        from confluent_kafka import KafkaException, TopicPartition

        if self.state is not None:
            self.state.sync()  # what the commit vouches for is on disk
        if self.on_commit is not None:
            self.on_commit(dict(offsets))
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                 asynchronous=False)
        except KafkaException as e:  # e.g. mid-rebalance: try again on the next loop
            log.warning("offset commit failed (%s); will retry", e)
            return
        self.tracker.committed(offsets)
        self.stats.commits += 1

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._paused = False  # a new assignment starts unpaused
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing")

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Before losing partitions: send what is pending now and commit, so the next owner
        starts after it (unless the notifier is dying, when nothing more may be sent)."""
        revoked = {(p.topic, p.partition) for p in partitions}
        if not self._abrupt:
            self.pump(self.clock(), flush=True)
            self.commit()
        self.core.drop_waiting(lambda p: not (isinstance(p.token, tuple) and p.token[0] in revoked))
        self.tracker.forget(revoked)

    def on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        self.core.drop_waiting(lambda p: not (isinstance(p.token, tuple) and p.token[0] in revoked))
        self.tracker.forget(revoked)

    # -- the loop --------------------------------------------------------------------------------

    def _flow_control(self) -> None:
        """Stop fetching while too many alerts wait (e.g. Slack is down), resume after."""
        busy = self.tracker.open_count >= self.settings.max_pending
        if busy != self._paused:
            assignment = self.consumer.assignment()
            if assignment:
                (self.consumer.pause if busy else self.consumer.resume)(assignment)
                self._paused = busy
                log.warning("%s consuming: %d alerts waiting", "paused" if busy else "resumed",
                            self.tracker.open_count)

    def run(self, stop: threading.Event | None = None, stop_after_s: float | None = None,
            poll_s: float = 0.5) -> NotifierStats:
        """Loop until `stop` is set or `stop_after_s` of wall time pass; then send what waits,
        commit and close. An exception ends the run without sending or committing more."""
        from confluent_kafka import KafkaError

        stop = stop or threading.Event()
        started = time.monotonic()
        self.consumer.subscribe([self.alerts_topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_lost)
        last_report = time.monotonic()
        try:
            while not stop.is_set():
                if stop_after_s is not None and time.monotonic() - started >= stop_after_s:
                    break
                now = self.clock()
                nxt = self.core.next_due_at()
                wait = poll_s if nxt is None else min(poll_s, max(0.0, nxt - now))
                self._flow_control()
                for msg in self.consumer.consume(500, timeout=wait):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer error: %s", err)
                        continue
                    self.handle(msg, self.clock())
                self.pump(self.clock())
                self.commit()
                if time.monotonic() - last_report >= 60:
                    last_report = time.monotonic()
                    log.info("notifier: %s", self.stats.as_dict())
            self.pump(self.clock(), flush=True)
            self.commit()
        except BaseException:
            self._abrupt = True
            raise
        return self.stats

    def close(self) -> None:
        try:
            self.consumer.close()
        finally:
            for s in self.senders.values():
                s.close()
            if self.state is not None:
                self.state.close()


# -- entry points ---------------------------------------------------------------------------------


def run_notifier(config_path: str | os.PathLike[str] | None = None, *,
                 notifier_config: str | os.PathLike[str] | None = None,
                 bootstrap: str | None = None, stop_after: float | None = None,
                 stop: threading.Event | None = None, group_id: str | None = None,
                 state_file: str | os.PathLike[str] | None = None, dry_run: bool = False,
                 env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, session_timeout_ms: int | None = None,
                 on_commit: Callable[[dict[Hashable, int]], None] | None = None,
                 out: TextIO | None = None, poll_s: float = 0.5, registry: Any = None) -> NotifierStats:
    """Run the notifier until `stop` is set, `stop_after` seconds pass, or SIGTERM (via `cmd`).

    `bootstrap` overrides the configured Kafka servers. `dry_run` prints what would be posted
    instead of posting, commits nothing and keeps no state. `on_commit` is called with
    {(topic, partition): next offset} just before each commit (metrics; tests use it to simulate
    a crash). Returns the run's counters.
    """
    from confluent_kafka import Consumer, Producer

    cfg = load_notifier_config(config_path, notifier_path=notifier_config, env=env)
    settings = cfg.settings
    kafka = cfg.kafka.with_bootstrap(bootstrap) if bootstrap else cfg.kafka
    if kafka.is_embedded:
        raise NotifierConfigError(["no Kafka bootstrap servers: pass --bootstrap, set "
                                   "kafka.bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS"], "notifier")
    if not settings.routes and not dry_run:
        raise NotifierConfigError(["notifier.routes: no routes configured (add at least a default "
                                   "route, or use --dry-run to print what would be sent)"], "notifier")
    senders, redactor = build_senders(settings, env=env, sleep=sleep, clock=clock, dry_run=dry_run, out=out)
    if dry_run and not senders:
        settings = NotifierSettings(routes={"default": (TargetSpec("default", "default", "slack"),)},
                                    policy=settings.policy, group_id=settings.group_id)
        senders = {"default": PreviewSender("default", out)}
    redactor.install()
    group = group_id or settings.group_id
    if dry_run:
        group = f"{group}-dry-run-{uuid.uuid4().hex[:8]}"
    state = None
    if not dry_run:
        default = f"notifier-state-{group}{'-alerts' if settings.source == 'alerts' else ''}.json"
        path = Path(state_file or settings.state_file or Path(".sloguard") / default)
        state = StateFile(path)
        log.info("notifier state: %s", path)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    waiting = stop or threading.Event()

    def stopped() -> bool:
        return waiting.is_set() or (deadline is not None and time.monotonic() >= deadline)

    def pause(seconds: float) -> None:
        waiting.wait(seconds if deadline is None else max(0.0, min(seconds, deadline - time.monotonic())))

    from sloguard.connectors.admin import wait_for_kafka

    # the broker only: a topic not created yet is waited for by the consumer group itself
    if wait_for_kafka(kafka, [], sys.stderr, who="sloguard notifier", stop=stopped,
                      sleep=pause) is None:
        return NotifierStats()  # stopped before Kafka answered
    consumer = Consumer(kafka.consumer_config(
        group, session_timeout_ms=session_timeout_ms or settings.session_timeout_ms))
    producer = Producer(kafka.producer_config({"enable.idempotence": True, "linger.ms": 5}))
    notifier = Notifier(settings, senders, consumer=consumer, producer=producer,
                        alerts_topic=cfg.input_topic, dead_letter_topic=cfg.dead_letter_topic,
                        owner_routes=cfg.owner_routes, state=state, clock=clock, commit=not dry_run,
                        on_commit=on_commit, redactor=redactor)
    if registry is not None:  # a prometheus_client CollectorRegistry: posts, retries, failures
        from sloguard.connectors.service_metrics import register_notifier

        register_notifier(registry, notifier.stats)
    log.info("notifier: group %s, %s -> %s", group, cfg.input_topic,
             ", ".join(f"{t.name} ({t.kind}, {t.source})" for t in settings.targets()) or "preview")
    try:
        return notifier.run(stop, stop_after, poll_s=poll_s)
    finally:
        try:
            notifier.close()
        finally:
            producer.flush(10)
            redactor.uninstall()
