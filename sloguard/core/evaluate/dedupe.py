"""A bounded memory of recently seen message ids, for dropping at-least-once duplicates.

Ids are kept as 64-bit hashes (`idhash.py`) with the event time they were seen at, in a
`HashIndex`: a batch is checked with two `searchsorted` calls and no per-event Python. An id is
remembered for at least `window_s` of event time after it was seen and forgotten once the owner's
watermark has passed that (`expire`), never at a batch's own time: a partition reading ahead must
not forget ids another partition may still repeat. At most about `max_ids` are kept; beyond that
the oldest are forgotten first, down to 7/8 of `max_ids`, and counted in `evicted`, so memory does
not grow with traffic and eviction costs O(1) per id, amortised.
"""

from __future__ import annotations

import math

import numpy as np

from sloguard.core.evaluate.idhash import HashIndex

#: Past `max_ids`, the oldest ids are forgotten down to 7/8 of it: the pass over the whole memory
#: (two merges and a partition) then comes once per max_ids/8 new ids, not at every batch.
EVICT_TO_EIGHTHS = 7


class RecentIds:
    """Hashes of the ids seen in the last `window_s` seconds of event time (at most ~`max_ids`)."""

    __slots__ = ("cutoff_s", "evicted", "index", "max_ids", "window_s")

    def __init__(self, window_s: float, max_ids: int = 2_000_000) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self.index = HashIndex()  # id hash -> whole seconds of the event time it was first seen at
        self.cutoff_s = -(2**62)  # entries seen before this are forgotten (dropped at the next merge)
        self.evicted = 0

    def first_seen(self, hashes: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
        """For each id, whether it is new (then remembered at its `ts`); repeats within the batch count.

        Returns None when every id is new, the common case.
        """
        if not len(hashes):
            return None
        seen_s = self.index.lookup(hashes)
        seen = (seen_s >= 0) & (seen_s >= self.cutoff_s)  # -1: never seen
        _, first = np.unique(hashes, return_index=True)
        fresh = np.zeros(len(hashes), bool)
        fresh[first] = True
        fresh &= ~seen
        stamps = np.floor(ts).astype(np.int64)
        if fresh.all():
            self.index.insert(hashes, stamps, self._keep)
            return None
        self.index.insert(hashes[fresh], stamps[fresh], self._keep)
        return fresh

    def _keep(self, _hashes: np.ndarray, seen_s: np.ndarray) -> np.ndarray:
        return seen_s >= self.cutoff_s

    def expire(self, now: float) -> None:
        """Forget ids seen more than the window before `now`, and the oldest beyond `max_ids`."""
        if not math.isfinite(now):
            return
        self.cutoff_s = max(self.cutoff_s, math.floor(now - self.window_s))
        if len(self.index) > self.max_ids:
            self.index.merge(self._keep)  # what the window has passed goes first
            extra = len(self.index) - self.max_ids * EVICT_TO_EIGHTHS // 8
            if extra > 0:
                newest_dropped = int(np.partition(self.index.vals, extra - 1)[extra - 1])
                before = len(self.index)
                self.cutoff_s = newest_dropped + 1
                self.index.merge(self._keep)
                self.evicted += before - len(self.index)

    def __len__(self) -> int:
        """Ids remembered (entries past the cutoff are dropped at the next merge, not counted)."""
        return int((self.index.vals >= self.cutoff_s).sum() + (self.index.dvals >= self.cutoff_s).sum())
