"""Kafka as the dataflow's source and sinks, with an event-time watermark and checked deliveries.

`KafkaRawSource` reads the input topics one partition per Bytewax partition, hands whole batches of
raw messages to the flow (`RawBatch`), and resumes from its offsets under Bytewax recovery. Each
batch carries a watermark: the oldest event time among the partitions of this process that still
have unread messages. So after downtime the backlog is replayed in event time, as `sloguard replay`
would, and no tick is evaluated ahead of data that is still waiting. When every partition is caught
up and idle, a heartbeat moves event time on with the wall clock: a model that goes silent raises
`no-data` while the flow runs, not only when its next event comes.

`KafkaJsonSink` writes `(key, message)` items as JSON with the key as the Kafka key (one SLO key's
events stay in order on one partition). Unlike Bytewax 0.21's own `KafkaSink` (bytewax issue #522),
it checks every delivery report, retries failed messages, waits when the producer queue is full,
and raises rather than drop anything. Dead letters carry Kafka Connect's `__connect.errors.*`
headers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.files import _line_ts
from connectors.kafka_config import KafkaSettings
from sloguard.events import RawBatch


class Frontier:
    """Event-time progress of the input partitions of one process, shared by their readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, tuple[float, bool, float]] = {}  # part -> (newest ts, caught up, last read)

    def register(self, part: str) -> None:
        with self._lock:
            self._parts.setdefault(part, (float("-inf"), False, 0.0))

    def update(self, part: str, newest_ts: float | None, caught_up: bool, now: float, read: bool) -> None:
        with self._lock:
            ts, _, last_read = self._parts.get(part, (float("-inf"), False, 0.0))
            if newest_ts is not None:
                ts = max(ts, newest_ts)
            self._parts[part] = (ts, caught_up, now if read else last_read)

    def watermark(self) -> float:
        """The oldest newest-event time among partitions with unread messages (or the newest overall)."""
        with self._lock:
            lagging = [ts for ts, caught_up, _ in self._parts.values() if not caught_up]
            seen = [ts for ts, _, _ in self._parts.values()]
        if lagging:
            return min(lagging)
        return max(seen, default=float("-inf"))

    def idle_since(self) -> float | None:
        """When the last message was read, if every partition is caught up; else None."""
        with self._lock:
            if not self._parts or not all(c for _, c, _ in self._parts.values()):
                return None
            return max(r for _, _, r in self._parts.values())


_FRONTIERS: dict[str, Frontier] = {}


class _KafkaRawPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, source: KafkaRawSource, kind: str, topic: str, partition: int, resume: int | None,
                 frontier: Frontier) -> None:
        self._source = source
        self._kind = kind
        self._topic = topic
        self._partition = partition
        self._name = f"{topic}#{partition}"
        self._offset = OFFSET_BEGINNING if resume is None else resume
        conf = source.settings.consumer_config(
            f"sloguard-reader-{topic}", extra={"enable.partition.eof": True, **source.consumer_extra}
        )
        self._consumer = Consumer(conf)
        self._consumer.assign([TopicPartition(topic, partition, self._offset)])
        self._frontier = frontier
        frontier.register(self._name)
        self._eof = False
        self._last_heartbeat = 0.0

    def next_batch(self) -> list[RawBatch]:
        if self._eof:
            raise StopIteration
        msgs = self._consumer.consume(self._source.batch_size, self._source.poll_timeout_s)
        offsets: list[int] = []
        values: list[bytes] = []
        at_end = False
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end = True
                    continue
                raise RuntimeError(f"error reading {self._name}: {err}")
            offsets.append(msg.offset())
            values.append(msg.value() or b"")
        now = self._source.clock()
        if values:
            self._offset = offsets[-1] + 1
            at_end = at_end or self._caught_up()
        elif not msgs:
            at_end = self._caught_up()
        newest = _line_ts(values[-1]) if values else None
        self._frontier.update(self._name, newest, at_end, now, read=bool(values))
        if at_end and not self._source.tail and not values:
            self._eof = True
        if values:
            return [RawBatch(self._kind, self._topic, self._partition, offsets, values, self._frontier.watermark())]
        return self._heartbeat(now)

    def _caught_up(self) -> bool:
        try:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
        except Exception:  # no fetch response yet
            return False
        return high >= 0 and (self._offset if self._offset >= 0 else 0) >= high

    def _heartbeat(self, now: float) -> list[RawBatch]:
        """An empty batch that moves event time to the wall clock, when all input is read and idle."""
        every = self._source.heartbeat_s
        idle_since = self._frontier.idle_since()
        if every is None or idle_since is None or now - idle_since < every or now - self._last_heartbeat < every:
            return []
        self._last_heartbeat = now
        return [RawBatch(self._kind, self._topic, self._partition, [], [], now)]

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaRawSource(FixedPartitionedSource[RawBatch, int]):
    """Batches of raw messages from the input topics (`kind -> topic`), one partition at a time.

    `tail=False` stops at the end of every partition (a finite run over what is there, as in tests
    and backfills); `heartbeat_s` enables the wall-clock heartbeat of a live run (None: event time
    moves only with the data). The resume state of a partition is its next offset.
    """

    def __init__(self, settings: KafkaSettings, topics: dict[str, str], *, tail: bool = True,
                 batch_size: int = 5000, poll_timeout_s: float = 0.05, heartbeat_s: float | None = None,
                 clock: Callable[[], float] = time.time, consumer_extra: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.topics = topics
        self.tail = tail
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.consumer_extra = consumer_extra or {}
        self._frontier_key = f"{id(self)}"

    def list_parts(self) -> list[str]:
        admin = AdminClient(self.settings.admin_config())
        meta = admin.list_topics(timeout=10)
        parts = []
        for topic in self.topics.values():
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                raise RuntimeError(f"input topic {topic!r} does not exist (run `sloguard topics create`)")
            parts += [f"{topic}#{p}" for p in sorted(info.partitions)]
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaRawPartition:
        topic, _, partition = for_part.rpartition("#")
        kind = next(k for k, t in self.topics.items() if t == topic)
        frontier = _FRONTIERS.setdefault(f"{step_id}:{self._frontier_key}", Frontier())
        return _KafkaRawPartition(self, kind, topic, int(partition), resume_state, frontier)


# Kafka Connect's dead-letter header names, so existing tooling can read our dead letters.
_CONNECT_HEADERS = {
    "topic": "__connect.errors.topic",
    "partition": "__connect.errors.partition",
    "offset": "__connect.errors.offset",
    "error": "__connect.errors.exception.message",
}


def dead_letter_headers(message: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Kafka Connect-style `__connect.errors.*` headers for a dead-letter message."""
    return [(h, str(message[f]).encode()) for f, h in _CONNECT_HEADERS.items() if message.get(f) is not None]


class _JsonSinkPartition(StatelessSinkPartition[tuple[str, dict[str, Any]]]):
    def __init__(self, sink: KafkaJsonSink) -> None:
        self._sink = sink
        self._producer = Producer(sink.settings.producer_config(
            {"enable.idempotence": True, "acks": "all", "linger.ms": 20}))

    def write_batch(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        pending = [(k.encode(), orjson.dumps(v), self._sink.headers(v) if self._sink.headers else None)
                   for k, v in items]
        for attempt in range(self._sink.retries + 1):
            failed: list[tuple[bytes, bytes, Any]] = []
            errors: list[str] = []
            for key, value, headers in pending:
                self._produce(key, value, headers, failed, errors)
            left = self._producer.flush(self._sink.flush_timeout_s)
            if left:
                errors.append(f"{left} messages still queued after {self._sink.flush_timeout_s} s")
            if not failed and not left:
                return
            pending = failed if not left else pending  # unknown fate: resend all (idempotent producer)
            time.sleep(min(2.0, 0.1 * 2**attempt))
        raise RuntimeError(f"could not deliver {len(pending)} messages to {self._sink.topic!r}: {errors[:3]}")

    def _produce(self, key: bytes, value: bytes, headers: Any, failed: list, errors: list) -> None:
        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append((key, value, headers))
                errors.append(str(err))

        while True:
            try:
                self._producer.produce(self._sink.topic, value, key, headers=headers, on_delivery=report)
                return
            except BufferError:  # the local queue is full: let deliveries drain, then retry
                self._producer.poll(0.5)

    def close(self) -> None:
        self._producer.flush(self._sink.flush_timeout_s)


class KafkaJsonSink(DynamicSink[tuple[str, dict[str, Any]]]):
    """Writes `(key, message)` items to `topic` as JSON, checking every delivery (at-least-once)."""

    def __init__(self, settings: KafkaSettings, topic: str, *,
                 headers: Callable[[dict[str, Any]], list[tuple[str, bytes]]] | None = None,
                 retries: int = 5, flush_timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.topic = topic
        self.headers = headers
        self.retries = retries
        self.flush_timeout_s = flush_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonSinkPartition:
        return _JsonSinkPartition(self)
