"""How far event time has got: the progress of every input source, as one model's state sees it.

A source is a Kafka topic partition or a replayed file. Each batch reports its source, the newest
event time it carried and whether the source has nothing more to read right now (`caught_up`).
Event time may advance to the oldest newest-time among sources that still have unread messages,
or, when all are caught up, to the newest time seen. Because this lives in the model's keyed state
and is fed by the batches themselves, a tick is never evaluated before every source's data up to it
has reached the state: not with several workers, not while a backlog drains after downtime.
The expected sources are known when the flow is built, so a source that has not spoken yet holds
event time back instead of being overlooked.

A batch whose messages carry no readable time (every one malformed) still moves its source to the
batch's broker arrival time, when that is within `arrival_within_s` of the source's event time:
live traffic whose timestamps broke must not stop event time, while the arrival time of a backlog
or of history produced today (days away from its event time) is never taken for event time.
"""

from __future__ import annotations

from collections.abc import Iterable

_NEVER = float("-inf")


class SourceFrontier:
    """Newest event time and caught-up flag per source; `watermark()` is the safe event time."""

    def __init__(self, expected: Iterable[str] = ()) -> None:
        self.sources: dict[str, tuple[float, bool]] = {s: (_NEVER, False) for s in expected}

    def update(self, source: str, newest: float, caught_up: bool, arrival: float | None = None,
               arrival_within_s: float = 3600.0) -> None:
        seen, _ = self.sources.get(source, (_NEVER, False))
        if newest == _NEVER and arrival is not None and seen < arrival <= seen + arrival_within_s:
            newest = arrival  # nothing in the batch could be dated: its arrival stands in (see above)
        self.sources[source] = (max(seen, newest), caught_up)

    def watermark(self) -> float:
        """Oldest newest-time among sources with unread messages, else the newest time seen."""
        lagging = [t for t, caught_up in self.sources.values() if not caught_up]
        if lagging:
            return min(lagging)
        return max((t for t, _ in self.sources.values()), default=_NEVER)

    def newest(self) -> float:
        """The newest event time any source has reported."""
        return max((t for t, _ in self.sources.values()), default=_NEVER)

    def all_caught_up(self) -> bool:
        return bool(self.sources) and all(c for _, c in self.sources.values())
