"""Which consumed Kafka offsets may be committed: only a finished prefix (pure, no I/O).

Used by the notifier (connectors/notifier.py): a message is finished when every notice it fanned
out to is delivered, dead-lettered or a duplicate.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping


class OffsetTracker:
    """Which consumed offsets are finished, so only a contiguous prefix is ever committed.

    A message is finished when every notice it fanned out to is delivered, dead-lettered or a
    duplicate. `committable()` gives, per partition, the offset after the longest finished
    prefix that has not been committed yet (Kafka's "next offset to read").

    >>> t = OffsetTracker()
    >>> t.add(("a", 0), 5, parts=1); t.add(("a", 0), 6, parts=2)
    >>> t.done(("a", 0), 6); t.done(("a", 0), 6)
    >>> t.committable()  # 5 is still open: nothing past it may be committed
    {}
    >>> t.done(("a", 0), 5); t.committable()
    {('a', 0): 7}
    """

    def __init__(self) -> None:
        self._open: dict[Hashable, dict[int, int]] = {}
        self._high: dict[Hashable, int] = {}
        self._committed: dict[Hashable, int] = {}

    def add(self, tp: Hashable, offset: int, parts: int) -> None:
        """Record a consumed message that still has `parts` notices to finish (0: finished)."""
        self._high[tp] = max(self._high.get(tp, -1), offset)
        self._committed.setdefault(tp, offset)  # where this consumer started: nothing to commit yet
        if parts > 0:
            self._open.setdefault(tp, {})[offset] = parts

    def done(self, tp: Hashable, offset: int) -> None:
        """One notice of the message at `offset` finished."""
        parts = self._open.get(tp)
        if parts is None or offset not in parts:
            return
        parts[offset] -= 1
        if parts[offset] <= 0:
            del parts[offset]

    @property
    def open_count(self) -> int:
        return sum(len(p) for p in self._open.values())

    def committable(self) -> dict[Hashable, int]:
        """{partition: next offset} for partitions whose finished prefix grew."""
        out = {}
        for tp, high in self._high.items():
            parts = self._open.get(tp)
            nxt = min(parts) if parts else high + 1
            if nxt > self._committed.get(tp, -1):
                out[tp] = nxt
        return out

    def committed(self, offsets: Mapping[Hashable, int]) -> None:
        """The broker accepted these commits."""
        for tp, off in offsets.items():
            self._committed[tp] = max(off, self._committed.get(tp, -1))

    def forget(self, tps: Iterable[Hashable]) -> None:
        """Partitions revoked from this consumer: drop what is known about them."""
        for tp in tps:
            self._open.pop(tp, None)
            self._high.pop(tp, None)
            self._committed.pop(tp, None)
