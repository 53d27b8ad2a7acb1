"""Topic administration: idempotent ``create_topics`` (``sloguard topics create``) and
``delete_topics`` (tests and cleanup), on any Kafka-protocol cluster or the embedded broker."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from sloguard.connectors.kafka_config import KafkaSettings, is_valid_topic_name

__all__ = ["AdminTarget", "TopicAdminError", "create_topics", "delete_topics", "list_topics", "wait_for_kafka"]

#: What the functions here accept: settings, a ready confluent-kafka config dict, or a client.
AdminTarget = KafkaSettings | Mapping[str, Any] | AdminClient

CreateResult = Literal["created", "exists"]
DeleteResult = Literal["deleted", "missing"]


class TopicAdminError(RuntimeError):
    """A topic operation failed; ``errors`` maps each failed topic to its reason."""

    def __init__(self, action: str, errors: Mapping[str, str], done: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        self.done = dict(done)
        detail = "; ".join(f"{name}: {why}" for name, why in self.errors.items())
        super().__init__(f"could not {action} {len(self.errors)} topic(s): {detail}")


def wait_for_kafka(settings: KafkaSettings, topics: list[str], out: Any, max_delay_s: float = 30.0,
                   sleep: Callable[[float], None] = time.sleep, who: str = "sloguard",
                   stop: Callable[[], bool] = lambda: False, answer_timeout_s: float = 5.0) -> Any:
    """The cluster's metadata once Kafka answers and has every topic of `topics`: until then say
    what is missing and retry, backing off to `max_delay_s` (a broker that is down when a command
    starts, or whose topics are still being created, is waited for: no traceback, no exit).
    Returns None when `stop()` turns true while waiting."""
    delay = 1.0
    while not stop():
        try:
            meta = AdminClient(settings.admin_config()).list_topics(timeout=answer_timeout_s)
        except KafkaException as e:
            reason = e.args[0].str() if e.args and hasattr(e.args[0], "str") else str(e)
            problem = f"Kafka at {settings.bootstrap_servers} does not answer ({reason})"
        else:
            missing = [t for t in topics if t not in meta.topics or meta.topics[t].error is not None]
            if not missing:
                return meta
            problem = (f"topic {', '.join(missing)} does not exist on {settings.bootstrap_servers} "
                       "(create the topics with `sloguard topics create --config <config>`)")
        print(f"{who}: {problem}; retrying in {delay:.0f} s (Ctrl-C stops)", file=out, flush=True)
        sleep(delay)
        delay = min(max_delay_s, delay * 2)
    return None


def _admin(target: AdminTarget) -> AdminClient:
    """An AdminClient for *target* (returned as-is when it already is one)."""
    if isinstance(target, AdminClient):
        return target
    if isinstance(target, KafkaSettings):
        return AdminClient(target.admin_config())
    if isinstance(target, Mapping):
        return AdminClient(dict(target))
    raise TypeError(f"expected KafkaSettings, a config mapping or an AdminClient, got {target!r}")


def _unique(names: Iterable[str]) -> list[str]:
    """Names in first-seen order without duplicates; rejects invalid names."""
    if isinstance(names, str):  # one name, not its characters
        names = [names]
    out: list[str] = []
    for name in names:
        if not is_valid_topic_name(name):
            raise ValueError(f"{name!r} is not a valid Kafka topic name "
                             "(1-249 characters of letters, digits, '.', '_', '-')")
        if name not in out:
            out.append(name)
    return out


def _outcome(future: concurrent.futures.Future[None], timeout: float) -> KafkaError | str | None:
    """None on success, else the KafkaError (or a message) of one admin future.

    Uses ``exception()`` rather than ``result()``: a raised exception's traceback would tie the
    AdminClient into a reference cycle and keep it (and its log noise) alive after return.
    """
    try:
        exc = future.exception(timeout=timeout + 5)
    except concurrent.futures.TimeoutError:
        return f"no answer from the cluster within {timeout:.0f} s"
    if exc is None:
        return None
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return f"{type(exc).__name__}: {exc}"


def list_topics(target: AdminTarget, timeout: float = 10.0) -> set[str]:
    """Names of the cluster's topics (internal ``__*`` topics included)."""
    return set(_admin(target).list_topics(timeout=timeout).topics)


def _await_metadata(admin: AdminClient, names: list[str], present: bool, timeout: float) -> None:
    """Wait (best effort, bounded) until metadata shows *names* present or absent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        except KafkaException:
            time.sleep(0.05)
            continue
        topics = md.topics
        if present:
            ok = all(n in topics and topics[n].error is None and topics[n].partitions
                     for n in names)
        else:
            ok = not any(n in topics for n in names)
        if ok:
            return
        time.sleep(0.05)


def create_topics(
    target: AdminTarget,
    names: Iterable[str],
    partitions: int = 1,
    replication: int = 1,
    *,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[str, CreateResult]:
    """Create topics and wait for completion; an existing topic is fine (idempotent).

    Returns ``{name: "created" | "exists"}`` in the order given. Existing topics are left as
    they are (their partition count is not changed). Raises :class:`TopicAdminError` naming each
    topic that failed for any other reason (its ``done`` attribute has the ones that worked).
    """
    topic_names = _unique(names)
    if partitions < 1 or replication < 1:
        raise ValueError("partitions and replication must be >= 1")
    if not topic_names:
        return {}
    admin = _admin(target)
    new = [NewTopic(n, num_partitions=partitions, replication_factor=replication,
                    config=dict(config or {})) for n in topic_names]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    done: dict[str, CreateResult] = {}
    errors: dict[str, str] = {}
    for name in topic_names:
        outcome = _outcome(futures[name], timeout)
        if outcome is None:
            done[name] = "created"
        elif isinstance(outcome, KafkaError) and outcome.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            done[name] = "exists"
        else:
            errors[name] = outcome.str() if isinstance(outcome, KafkaError) else outcome
    if errors:
        raise TopicAdminError("create", errors, done)
    created = [n for n, r in done.items() if r == "created"]
    if created:
        _await_metadata(admin, created, present=True, timeout=min(timeout, 10.0))
    return {n: done[n] for n in topic_names}


def delete_topics(
    target: AdminTarget,
    names: Iterable[str],
    *,
    timeout: float = 30.0,
) -> dict[str, DeleteResult]:
    """Delete topics and wait; a topic that does not exist is reported ``"missing"``.

    Raises :class:`TopicAdminError` for any other failure.
    """
    topic_names = _unique(names)
    if not topic_names:
        return {}
    admin = _admin(target)
    futures = admin.delete_topics(topic_names, operation_timeout=timeout,
                                  request_timeout=timeout)
    done: dict[str, DeleteResult] = {}
    errors: dict[str, str] = {}
    for name in topic_names:
        outcome = _outcome(futures[name], timeout)
        if outcome is None:
            done[name] = "deleted"
        elif isinstance(outcome, KafkaError) and outcome.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            done[name] = "missing"
        else:
            errors[name] = outcome.str() if isinstance(outcome, KafkaError) else outcome
    if errors:
        raise TopicAdminError("delete", errors, done)
    deleted = [n for n, r in done.items() if r == "deleted"]
    if deleted:
        _await_metadata(admin, deleted, present=False, timeout=min(timeout, 10.0))
    return {n: done[n] for n in topic_names}
