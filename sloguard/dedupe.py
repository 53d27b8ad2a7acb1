"""A bounded memory of recently seen message ids, for dropping at-least-once duplicates.

Ids are kept in one set per time bucket (a tenth of the window), so a batch is checked with a
few C-level `isdisjoint` calls and forgetting old ids drops whole sets. Ids are remembered for at
least `window_s` of event time and at most `max_ids` at once; when over, the oldest buckets are
forgotten first and counted in `evicted`, so memory does not grow with traffic.
"""

from __future__ import annotations

import math

BUCKETS_PER_WINDOW = 10


class RecentIds:
    """Ids seen in the last `window_s` seconds of event time (at most about `max_ids` of them)."""

    def __init__(self, window_s: float, max_ids: int = 2_000_000) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self.bucket_s = max(1.0, window_s / BUCKETS_PER_WINDOW)
        self.buckets: dict[int, set[str]] = {}  # bucket index -> ids, oldest first
        self.evicted = 0

    def first_seen(self, ids: list[str], ts: float) -> list[bool] | None:
        """For each id, whether it is new (then remembered at `ts`); repeats within the batch count.

        Returns None when every id is new: the common case, decided with set operations. Forgetting
        is the owner's call (`expire` at the watermark), never this batch's own time: a partition
        reading ahead must not forget ids another partition may still repeat.
        """
        unique = set(ids)
        if len(unique) == len(ids) and all(s.isdisjoint(unique) for s in self.buckets.values()):
            self._bucket(ts).update(unique)
            return None
        fresh = []
        added = self._bucket(ts)
        seen_before = [s for s in self.buckets.values() if s is not added]
        for i in ids:
            new = i not in added and not any(i in s for s in seen_before)
            if new:
                added.add(i)
            fresh.append(new)
        return fresh

    def _bucket(self, ts: float) -> set[str]:
        b = math.floor(ts / self.bucket_s)
        bucket = self.buckets.get(b)
        if bucket is None:
            bucket = self.buckets[b] = set()
            if len(self.buckets) > 1 and b < max(self.buckets):  # late batch: keep buckets in time order
                self.buckets = dict(sorted(self.buckets.items()))
        return bucket

    def expire(self, now: float) -> None:
        """Forget ids older than the window, and the oldest beyond `max_ids`."""
        if not math.isfinite(now):
            return
        oldest_kept = math.floor((now - self.window_s) / self.bucket_s)
        for b in [b for b in self.buckets if b < oldest_kept]:
            del self.buckets[b]
        while len(self.buckets) > 1 and len(self) > self.max_ids:
            self.evicted += len(self.buckets.pop(next(iter(self.buckets))))

    def __len__(self) -> int:
        return sum(map(len, self.buckets.values()))
