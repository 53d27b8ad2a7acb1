"""JSONL files as a Bytewax source and sink: how `sloguard replay` backtests a config on history.

`JsonlReplaySource` reads the inference, labels and features files together, in chunks, always
emitting next the chunk whose last event is earliest, so the three streams interleave in event
time as they would on Kafka and the run is deterministic. Its resume state is the byte offset of
each file, so a replay can be recovered like a live run. `JsonlSink` writes one JSON object per line
(output Structs and dicts alike, `sloguard.core.messages.outputs.encode_lines`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sloguard.core.messages.events import KINDS, RawBatch
from sloguard.core.messages.outputs import encode_lines
from sloguard.core.spec.timeutil import MAX_EPOCH_S, MIN_EPOCH_S, parse_rfc3339

Progress = Callable[[int, int, int], None]  # (bytes read, bytes total, lines read)


def _line_ts(line: bytes, latest: float = MAX_EPOCH_S) -> float | None:
    """The `ts` of a JSONL line, if it has a plausible one (used only to order lines and chunks).

    Out-of-range timestamps, and those after `latest` (the replay's clock plus the allowed skew),
    count as unreadable: one absurd line must not reorder a whole merge or move its watermark.
    """
    try:
        ts = orjson.loads(line).get("ts")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        value: float | None = float(ts)
    else:
        value = parse_rfc3339(ts) if isinstance(ts, str) else None
    return value if value is not None and MIN_EPOCH_S <= value < MAX_EPOCH_S and value <= latest else None


@dataclass
class _Head:
    kind: str
    file: Any
    line_no: int
    chunk: list[bytes]
    offsets: list[int]
    ts: float  # event time of the chunk's last readable line: chunks are merged on it
    first_ts: float = float("-inf")  # event time of its first readable line
    done: bool = False


class _MergePartition(StatefulSourcePartition[RawBatch, dict[str, tuple[int, int]]]):
    def __init__(
        self,
        paths: dict[str, Path],
        topics: dict[str, str],
        chunk_lines: int,
        resume: dict[str, tuple[int, int]] | None,
        progress: Progress | None,
        not_after: float | None = None,
        max_future_skew_s: float = 3600.0,
    ) -> None:
        self._topics = topics
        self._not_after = not_after
        self._latest = MAX_EPOCH_S if not_after is None else not_after + max_future_skew_s
        self._chunk_lines = chunk_lines
        self._progress = progress
        self._total = sum(p.stat().st_size for p in paths.values())
        self._heads: list[_Head] = []
        self._emitted_ts = float("-inf")
        self._pos: dict[str, tuple[int, int]] = {}
        for kind, path in paths.items():
            f = path.open("rb")
            offset, line_no = (resume or {}).get(kind, (0, 0))
            f.seek(offset)
            head = _Head(kind, f, line_no, [], [], float("-inf"))
            self._pos[kind] = (offset, line_no)
            self._fill(head)
            self._heads.append(head)

    def _fill(self, head: _Head) -> None:
        # Lines keep their newline: decoders accept trailing white space, and not copying every
        # line is a measurable part of a replay.
        lines = list(islice(head.file, self._chunk_lines))
        head.offsets = list(range(head.line_no, head.line_no + len(lines)))
        head.line_no += len(lines)
        if any(map(bytes.isspace, lines)):  # blank lines are not messages
            kept = [(o, line) for o, line in zip(head.offsets, lines, strict=True) if not line.isspace()]
            head.offsets = [o for o, _ in kept]
            lines = [line for _, line in kept]
            if not lines:  # a chunk of only blank lines, not the end of the file: read on
                self._fill(head)
                return
        head.chunk = lines
        if not lines:
            head.done = True
            head.file.close()
            return
        for line in reversed(lines):
            ts = _line_ts(line, self._latest)
            if ts is not None:
                head.ts = ts
                break
        for line in lines:
            ts = _line_ts(line, self._latest)
            if ts is not None:
                head.first_ts = ts
                break

    def next_batch(self) -> list[RawBatch]:
        live = [h for h in self._heads if not h.done]
        if not live:
            raise StopIteration
        head = min(live, key=lambda h: (h.ts, KINDS.index(h.kind)))
        batch = RawBatch(head.kind, self._topics[head.kind], 0, head.offsets, head.chunk, source=head.kind,
                         not_after=self._not_after)
        self._pos[head.kind] = (head.file.tell(), head.line_no)
        self._emitted_ts = max(self._emitted_ts, head.ts)
        self._fill(head)
        # No event earlier than the first unread line of any file is still to come (files are
        # in event-time order), so event time may advance to there, and to the end once all is read.
        pending = [h.first_ts for h in self._heads if not h.done]
        batch.watermark = min(min(pending), self._emitted_ts) if pending else self._emitted_ts
        batch.caught_up = head.done
        if self._progress is not None:
            done = sum(p[0] for p in self._pos.values())
            self._progress(done, self._total, sum(p[1] for p in self._pos.values()))
        return [batch]

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return dict(self._pos)

    def close(self) -> None:
        for h in self._heads:
            if not h.done:
                h.file.close()


class JsonlReplaySource(FixedPartitionedSource[RawBatch, dict[str, tuple[int, int]]]):
    """Replays inference/labels/features JSONL files, merged in event-time order by chunk.

    `paths` maps a kind (`inference`, `labels`, `features`) to its file; `topics` names the topic
    each kind stands for in dead letters. `progress(bytes_read, bytes_total, lines)` is called
    after every chunk. `not_after` is the replay's clock (the wall clock when it started, read by
    the caller): events stamped more than `max_future_skew_s` after it are dead letters, and do
    not order the merge. It is one value for the whole replay, so the same files give the same
    output unless they hold events from the future of the machine replaying them.
    """

    def __init__(
        self,
        paths: dict[str, Path],
        topics: dict[str, str] | None = None,
        chunk_lines: int = 2000,
        progress: Progress | None = None,
        not_after: float | None = None,
        max_future_skew_s: float = 3600.0,
    ) -> None:
        unknown = set(paths) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown input kinds: {', '.join(sorted(unknown))}")
        self.paths = {k: Path(p) for k, p in paths.items()}
        self.topics = {k: (topics or {}).get(k, k) for k in KINDS}
        self.chunk_lines = chunk_lines
        self.progress = progress
        self.not_after = not_after
        self.max_future_skew_s = max_future_skew_s

    def list_parts(self) -> list[str]:
        return ["replay"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, tuple[int, int]] | None
    ) -> _MergePartition:
        return _MergePartition(self.paths, self.topics, self.chunk_lines, resume_state, self.progress,
                               self.not_after, self.max_future_skew_s)


class _JsonlPartition(StatefulSinkPartition[Any, int]):
    def __init__(self, path: Path, resume: int | None) -> None:
        self._file = path.open("r+b" if resume is not None and path.exists() else "wb")
        if resume is not None:
            self._file.seek(resume)
            self._file.truncate()

    def write_batch(self, values: list[Any]) -> None:
        self._file.write(encode_lines(values))

    def snapshot(self) -> int:
        self._file.flush()
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


class JsonlSink(FixedPartitionedSink[Any, int]):
    """Writes each value of a `(key, value)` stream as one JSON line to `path`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def list_parts(self) -> list[str]:
        return ["0"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _JsonlPartition:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return _JsonlPartition(self.path, resume_state)


class ProgressPrinter:
    """Prints `replay: 42% 1,234,567 lines 180,000 lines/s` to a stream, at most every `every_s`."""

    def __init__(
        self, stream: Any, every_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self.start = clock()
        self.last = 0.0
        self.lines = 0

    def __call__(self, done: int, total: int, lines: int) -> None:
        self.lines = lines
        now = self.clock()
        if now - self.last >= self.every_s or done >= total:
            self.last = now
            rate = lines / max(now - self.start, 1e-9)
            pct = 100.0 * done / total if total else 100.0
            self.stream.write(f"\rreplay: {pct:5.1f}%  {lines:,} lines  {rate:,.0f} lines/s ")
            self.stream.flush()


class _TeePartition(StatefulSinkPartition[Any, Any]):
    def __init__(self, inner: StatefulSinkPartition, callback: Callable[[Any], None]) -> None:
        self._inner = inner
        self._callback = callback

    def write_batch(self, values: list[Any]) -> None:
        for v in values:
            self._callback(v)
        self._inner.write_batch(values)

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class TeeSink(FixedPartitionedSink[Any, Any]):
    """A sink that also hands every value to `callback` (e.g. to print alerts as they fire)."""

    def __init__(self, inner: FixedPartitionedSink, callback: Callable[[Any], None]) -> None:
        self.inner = inner
        self.callback = callback

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def part_fn(self, item_key: str) -> int:
        return self.inner.part_fn(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _TeePartition:
        return _TeePartition(self.inner.build_part(step_id, for_part, resume_state), self.callback)
