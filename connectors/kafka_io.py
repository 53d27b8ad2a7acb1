"""Kafka as the dataflow's source and sinks, with an event-time watermark and checked deliveries.

`KafkaRawSource` reads the input topics one partition per Bytewax partition, hands whole batches of
raw messages to the flow (`RawBatch`), and resumes from its offsets under Bytewax recovery. Every
batch reports its partition's progress (newest event time, caught up or not) to the models' state,
which advances event time only as far as every partition has delivered (sloguard/core/evaluate/frontier.py): after
downtime the backlog is replayed in event time, as `sloguard replay` would, with any number of
workers. A caught-up, idle partition sends a wall-clock heartbeat, so a model that goes silent
raises `no-data` while the flow runs, not only when its next event comes.

`KafkaJsonSink` writes `(key, message)` items as JSON (output Structs and dicts alike,
`sloguard.core.messages.outputs.encode`) with the key as the Kafka key (one SLO key's events stay in
order on one partition). Unlike Bytewax 0.21's own `KafkaSink` (bytewax issue #522), it checks every
delivery report, retries failed messages, waits when the producer queue is full, and raises rather
than drop anything. Dead letters carry Kafka Connect's `__connect.errors.*` headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.core.messages.events import RawBatch
from sloguard.core.messages.outputs import DeadLetter, encode


class _KafkaRawPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, source: KafkaRawSource, kind: str, topic: str, partition: int, resume: int | None) -> None:
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
        self._eof = False
        self._reported_caught_up: bool | None = None
        self._last_read = 0.0
        self._last_heartbeat = 0.0

    def _batch(self, offsets: list[int], values: list[bytes], caught_up: bool, clock: float | None = None,
               read_at: float | None = None, arrival: float | None = None) -> RawBatch:
        self._reported_caught_up = caught_up
        return RawBatch(self._kind, self._topic, self._partition, offsets, values, source=self._name,
                        caught_up=caught_up, clock=clock, not_after=read_at, arrival=arrival)

    def next_batch(self) -> list[RawBatch]:
        if self._eof:
            raise StopIteration
        if self._source.stop is not None and self._source.stop():
            self._source.cut_short = True
            raise StopIteration  # its offset is in the last snapshot: a resume reads on from there
        msgs = self._consumer.consume(self._source.batch_size, self._source.poll_timeout_s)
        offsets: list[int] = []
        values: list[bytes] = []
        arrival_ms = 0
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
            arrival_ms = max(arrival_ms, msg.timestamp()[1])  # the log's time (create or append), ms
        arrival = arrival_ms / 1000.0 if arrival_ms > 0 else None
        now = self._source.clock()
        if values:
            self._offset = offsets[-1] + 1
            self._last_read = now
        # A source leaves the event-time frontier only when it has read everything AND has been idle
        # for a while (or, draining, reached the end): a partition that is merely caught up for a
        # moment may still be behind the others in event time (see sloguard/core/evaluate/frontier.py).
        at_end = at_end or self._caught_up()
        caught_up = at_end and (not self._source.tail or now - self._last_read >= self._source.idle_after_s)
        if values:  # the wall clock at reading bounds how far ahead an event may be stamped
            return [self._batch(offsets, values, caught_up, read_at=now, arrival=arrival)]
        if at_end and not self._source.tail:  # drained: say so once, then stop
            self._eof = True
            return [self._batch([], [], True)]
        if caught_up != self._reported_caught_up:  # progress changed without data: tell the flow
            return [self._batch([], [], caught_up)]
        every = self._source.heartbeat_s
        if every is not None and caught_up and now - self._last_read >= every and now - self._last_heartbeat >= every:
            self._last_heartbeat = now  # idle and caught up: event time may follow the wall clock
            return [self._batch([], [], True, clock=now)]
        return []

    def _caught_up(self) -> bool:
        try:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
        except Exception:  # no fetch response yet
            return False
        if high < 0:
            return False
        lag = max(0, high - max(self._offset, 0))
        if self._source.on_lag is not None:
            self._source.on_lag(self._topic, self._partition, lag)
        return lag == 0

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaRawSource(FixedPartitionedSource[RawBatch, int]):
    """Batches of raw messages from the input topics (`kind -> topic`), one partition at a time.

    `tail=False` stops at the end of every partition (a finite run over what is there, as in tests
    and backfills); `heartbeat_s` enables the wall-clock heartbeat of a live run (None: event time
    moves only with the data); a partition with nothing to read for `idle_after_s` stops holding
    event time back. The resume state of a partition is its next offset. Once `stop()` is true every
    partition ends after its current batch, so the flow finishes as at the end of its input (the
    graceful stop of `sloguard run` on SIGINT or SIGTERM).

    A batch is at most `batch_size` messages (fewer when less is waiting): the shards and the judge
    pay a fixed cost per batch, so over a backlog 10,000 ran the one-worker flow ~8 % faster than
    5,000 (`python benchmarks/kafka_throughput.py`, alternated twice).
    """

    def __init__(self, settings: KafkaSettings, topics: dict[str, str], *, tail: bool = True,
                 batch_size: int = 10_000, poll_timeout_s: float = 0.001, heartbeat_s: float | None = None,
                 clock: Callable[[], float] = time.time, consumer_extra: dict[str, Any] | None = None,
                 on_lag: Callable[[str, int, int], None] | None = None, idle_after_s: float = 5.0,
                 stop: Callable[[], bool] | None = None) -> None:
        self.settings = settings
        self.topics = topics
        self.tail = tail
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.consumer_extra = consumer_extra or {}
        self.on_lag = on_lag  # (topic, partition, messages not yet read), e.g. for a metrics gauge
        self.idle_after_s = idle_after_s  # caught up and quiet this long: no longer holds event time back
        self.stop = stop  # once true, every partition ends after its current batch (a graceful stop)
        self.cut_short = False  # a stop ended a partition before its end: the input did not end

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
        return _KafkaRawPartition(self, kind, topic, int(partition), resume_state)


# Kafka Connect's dead-letter header names, so existing tooling can read our dead letters.
_CONNECT_HEADERS = {
    "topic": "__connect.errors.topic",
    "partition": "__connect.errors.partition",
    "offset": "__connect.errors.offset",
    "error": "__connect.errors.exception.message",
}


def dead_letter_headers(message: DeadLetter) -> list[tuple[str, bytes]]:
    """Kafka Connect-style `__connect.errors.*` headers for a dead-letter message."""
    return [(h, str(getattr(message, f)).encode()) for f, h in _CONNECT_HEADERS.items()]


class _JsonSinkPartition(StatelessSinkPartition[tuple[str, Any]]):
    def __init__(self, sink: KafkaJsonSink) -> None:
        self._sink = sink
        self._producer = Producer(sink.settings.producer_config(
            {"enable.idempotence": True, "acks": "all", "linger.ms": 20}))

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        pending = [(k.encode(), encode(v), self._sink.headers(v) if self._sink.headers else None)
                   for k, v in items]
        for attempt in range(self._sink.retries + 1):
            failed: list[tuple[bytes, bytes, Any]] = []
            errors: list[str] = []

            def report(err: Any, msg: Any, failed: list = failed, errors: list = errors) -> None:
                # one callback for the batch: a closure per message costs more than its produce call
                if err is not None:
                    failed.append((msg.key(), msg.value(), msg.headers()))
                    errors.append(str(err))

            produce, topic = self._producer.produce, self._sink.topic
            for key, value, headers in pending:
                while True:
                    try:
                        produce(topic, value, key, headers=headers, on_delivery=report)
                        break
                    except BufferError:  # the local queue is full: let deliveries drain, then retry
                        self._producer.poll(0.5)
            left = self._producer.flush(self._sink.flush_timeout_s)
            if left:
                errors.append(f"{left} messages still queued after {self._sink.flush_timeout_s} s")
            if not failed and not left:
                return
            pending = failed if not left else pending  # unknown fate: resend all (idempotent producer)
            time.sleep(min(2.0, 0.1 * 2**attempt))
        raise RuntimeError(f"could not deliver {len(pending)} messages to {self._sink.topic!r}: {errors[:3]}")

    def close(self) -> None:
        self._producer.flush(self._sink.flush_timeout_s)


class KafkaJsonSink(DynamicSink[tuple[str, Any]]):
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
