"""A bounded memory of recently seen message ids, for dropping at-least-once duplicates.

Ids are remembered for `window_s` of event time and at most `max_ids` at once; the oldest are
forgotten first and counted in `evicted`, so memory does not grow with traffic.
"""

from __future__ import annotations

from collections import deque


class RecentIds:
    """Ids seen in the last `window_s` seconds of event time (at most `max_ids` of them)."""

    def __init__(self, window_s: float, max_ids: int = 2_000_000) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self.seen: dict[str, float] = {}
        self.order: deque[tuple[float, list[str]]] = deque()
        self.evicted = 0

    def first_seen(self, ids: list[str], ts: float) -> list[bool] | None:
        """For each id, whether it is new (then remembered at `ts`); repeats within the batch count.

        Returns None when every id is new (the common case, decided with set operations).
        """
        seen = self.seen
        unique = set(ids)
        if len(unique) == len(ids) and not (seen.keys() & unique):
            seen.update(dict.fromkeys(ids, ts))
            self.order.append((ts, ids))
            return None
        fresh = []
        added = []
        for i in ids:
            if i in seen:
                fresh.append(False)
            else:
                seen[i] = ts
                added.append(i)
                fresh.append(True)
        if added:
            self.order.append((ts, added))
        return fresh

    def expire(self, now: float) -> None:
        """Forget ids older than the window, and the oldest beyond `max_ids`."""
        order, seen = self.order, self.seen
        while order and (order[0][0] < now - self.window_s or len(seen) > self.max_ids):
            ts, ids = order.popleft()
            for i in ids:
                if seen.get(i) == ts:
                    del seen[i]
            if ts >= now - self.window_s:
                self.evicted += len(ids)

    def __len__(self) -> int:
        return len(self.seen)
