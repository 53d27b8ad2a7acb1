"""Sliding windows from 5 minutes to 30 days as rings of mergeable per-interval counter vectors.

A 30-day window cannot keep raw events, so each key keeps, per *tier*, a ring of buckets; a
bucket is a vector of counters (one column per SLO good/total, per timeslice verdict, ...) and
merging two buckets is adding them. Each window reads the tier whose bucket is the largest
"ladder" size giving it at least `MIN_BUCKETS_PER_WINDOW` buckets: 5 m, 30 m and 1 h windows read
1-minute buckets and are exact; 6 h reads 5-minute buckets, 3 d 1-hour and 30 d 6-hour buckets, so
a long window's edges move in steps of at most 1/60 of its length. Memory per key is fixed by the
layout (about 330 buckets for the default SLO windows), whatever the event rate.

A window of length w read from a tier of bucket b, evaluated at time T (exclusive, a multiple of
the base interval), covers exactly the events in [ceil((T - w) / b) * b, T): whole buckets of its
tier up to the start of the bucket holding T, then the rest from ever finer tiers, so the recent
edge is exact and only the old edge moves in steps of b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Bucket sizes tried for long windows, in evaluation intervals (1 m -> 5 m, 15 m, 1 h, 6 h, 1 d).
LADDER = (1, 5, 15, 60, 360, 1440)
MIN_BUCKETS_PER_WINDOW = 60
#: A ring grows to hold buckets that run ahead of the ticks up to this many times its capacity;
#: beyond, a bucket gets a row of its own (`Windows._spill`): no allocation follows a time gap.
MAX_GROWTH = 8


@dataclass(frozen=True)
class Tier:
    """Buckets of `bucket_s` seconds, `capacity` of them kept in a ring, needed `span_s` back."""

    bucket_s: int
    capacity: int
    span_s: int


@dataclass(frozen=True)
class WindowLayout:
    """Which tiers a set of windows needs and which tier each window reads; pure config."""

    base_s: int
    tiers: tuple[Tier, ...]
    tier_of: dict[int, int]  # window length in s -> index into tiers

    @classmethod
    def for_windows(cls, base_s: int, windows: set[int], min_base_span_s: int = 0,
                    buckets: dict[int, int] | None = None) -> WindowLayout:
        """Layout for `windows` (seconds, multiples of base_s); the base tier spans >= min_base_span_s.

        `buckets` fixes the bucket size of some windows (a calendar period reads from a bucket its
        boundaries fall on, `Windows.since`); it must nest with the ladder's sizes.
        """
        choice: dict[int, int] = {}
        for w, b in (buckets or {}).items():
            choice[w] = b
        for w in windows:
            if w % base_s:
                raise ValueError(f"window {w}s is not a multiple of the interval {base_s}s")
            if w in choice:
                continue
            fits = [
                k * base_s
                for k in LADDER
                if w % (k * base_s) == 0 and w // (k * base_s) >= MIN_BUCKETS_PER_WINDOW
            ]
            choice[w] = max(fits) if fits else base_s
        spans: dict[int, int] = {base_s: min_base_span_s}
        for w, b in choice.items():
            spans[b] = max(spans.get(b, 0), w)
        sizes = sorted(spans)
        # A finer tier must also span one bucket of the next coarser tier (it fills the coarse
        # tier's partial newest bucket); +2: the partial newest bucket and a bucket of slack.
        coarser = dict(zip(sizes, [*sizes[1:], sizes[-1]], strict=True))
        need = {b: max(spans[b], coarser[b]) for b in sizes}
        tiers = tuple(Tier(b, math.ceil(need[b] / b) + 2, need[b]) for b in sizes)
        return cls(base_s, tiers, {w: sizes.index(b) for w, b in choice.items()})

    def window_bucket_s(self, window_s: int) -> int:
        return self.tiers[self.tier_of[window_s]].bucket_s

    def sum_plan(self, ends: list[float]) -> SumPlan:
        """Which bucket ranges of which tier make up every window ending at each of `ends`.

        A window of tier t starts at ceil((end - w) / b_t) * b_t and takes whole buckets of ever
        finer tiers up to `end` (see `Windows.window_sum`).
        """
        ranges: list[list[tuple[int, int, int]]] = [[] for _ in self.tiers]
        slots: list[tuple[float, int]] = []
        for end in ends:
            for w, t in self.tier_of.items():
                slot = len(slots)
                slots.append((end, w))
                b = self.tiers[t].bucket_s
                lo = math.ceil((end - w) / b) * b
                for k in range(t, -1, -1):
                    b = self.tiers[k].bucket_s
                    cut = math.floor(end / b) * b
                    if cut > lo:
                        ranges[k].append((slot, lo // b, cut // b))
                        lo = cut
                    if lo >= end:
                        break
        arrays = []
        for rs in ranges:
            r = np.array(rs, np.int64).reshape(-1, 3)
            arrays.append((r[:, 0], r[:, 1], r[:, 2]))
        return SumPlan(slots, arrays)


@dataclass(frozen=True)
class SumPlan:
    """`WindowLayout.sum_plan`: per tier (window slots, first bucket, end bucket); the slots' (end, w)."""

    slots: list[tuple[float, int]]
    ranges: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


class Windows:
    """The counters of one key: per tier a ring of bucket vectors with `ncols` columns.

    `add` merges a vector into the bucket holding a time; `sums` returns, for every window of the
    layout, the column totals over that window. The owner calls `release(t)` once every window
    ending at `t` or later has no use for older buckets; until then a bucket is never overwritten:
    if events run ahead of the evaluated ticks (a batch or a replay chunk reaching past the
    watermark), the ring grows instead. Data for released buckets is dropped and counted in
    `dropped`, since no window read from then on can contain it.

    A ring grows only as far as `MAX_GROWTH` times its tier's capacity: a bucket that would need
    more (an event years away from the others) gets a row of its own after the ring's slots
    (`spill`), so memory follows the number of buckets held, never the time between them. Every
    reader scans the whole `index`/`counts` arrays, ring slots and spilled rows alike.
    """

    __slots__ = ("counts", "dropped", "index", "keep_from", "layout", "slots")

    def __init__(self, layout: WindowLayout, ncols: int) -> None:
        self.layout = layout
        self.counts = [np.zeros((t.capacity, ncols), np.float64) for t in layout.tiers]
        self.index = [np.full(t.capacity, -1, np.int64) for t in layout.tiers]
        self.slots = [t.capacity for t in layout.tiers]  # per tier: rows addressed as index % slots
        self.keep_from = [-(2**62)] * len(layout.tiers)  # per tier: oldest bucket index still needed
        self.dropped = 0.0

    def release(self, t: float) -> None:
        """Windows are evaluated at `t` or later from now on: older buckets may be reused."""
        for k, tier in enumerate(self.layout.tiers):
            self.keep_from[k] = max(self.keep_from[k], math.floor((t - tier.span_s) / tier.bucket_s))

    def add(self, ts_s: float, vector: np.ndarray) -> None:
        """Merge `vector` into every tier's bucket that contains time `ts_s`."""
        for k, tier in enumerate(self.layout.tiers):
            if not self.add_bucket(k, int(ts_s // tier.bucket_s), vector) and k == 0:
                self.dropped += float(vector[0])

    def _grow(self, k: int, incoming: int) -> bool:
        """Enlarge tier k's ring so its needed buckets and `incoming` have their own slots; False
        (nothing changed) when that would take more than `MAX_GROWTH` times the tier's capacity.
        Spilled rows stay as they are, after the new ring."""
        index, counts, slots = self.index[k], self.counts[k], self.slots[k]
        live = np.flatnonzero(index[:slots] >= max(self.keep_from[k], 0))
        held = index[live]
        lo, hi = min(int(held.min()), incoming), max(int(held.max()), incoming)
        if hi - lo + 1 > MAX_GROWTH * self.layout.tiers[k].capacity:
            return False
        size = slots
        while size < hi - lo + 1:  # buckets within a range no longer than the ring never share a slot
            size *= 2
        new_index = np.full(size, -1, np.int64)
        new_counts = np.zeros((size, counts.shape[1]))
        new_index[held % size] = held
        new_counts[held % size] = counts[live]
        self.index[k] = np.r_[new_index, index[slots:]]
        self.counts[k] = np.vstack([new_counts, counts[slots:]])
        self.slots[k] = size
        return True

    def _spill(self, k: int, i: int) -> int:
        """A row of its own, after the ring's slots, for bucket i of tier k (reusing a released one)."""
        index = self.index[k]
        free = np.flatnonzero(index[self.slots[k]:] < max(self.keep_from[k], 0))
        if len(free):
            row = self.slots[k] + int(free[0])
            self.counts[k][row] = 0.0
        else:
            row = len(index)
            self.index[k] = np.r_[index, -1]
            self.counts[k] = np.vstack([self.counts[k], np.zeros((1, self.counts[k].shape[1]))])
        self.index[k][row] = i
        return row

    def _row(self, k: int, i: int) -> int:
        """The row holding bucket i of tier k, or -1."""
        index, slots = self.index[k], self.slots[k]
        slot = i % slots
        if index[slot] == i:
            return slot
        if len(index) > slots:
            found = np.flatnonzero(index[slots:] == i)
            if len(found):
                return slots + int(found[0])
        return -1

    def get(self, ts_s: float) -> np.ndarray | None:
        """The base-tier bucket vector holding `ts_s`, or None if it is not kept (a view)."""
        row = self._row(0, int(ts_s // self.layout.tiers[0].bucket_s))
        return self.counts[0][row] if row >= 0 else None

    def span(self, start_s: float, end_s: float) -> np.ndarray:
        """Column totals of the base-tier buckets starting in [start_s, end_s)."""
        b = self.layout.base_s
        lo, hi = math.ceil(start_s / b), math.ceil(end_s / b)
        index, counts = self.index[0], self.counts[0]
        if hi - lo <= 64 and len(index) == self.slots[0]:  # a few buckets: look their slots up, no scan
            if hi - lo == 1:
                slot = lo % len(index)
                return counts[slot].copy() if index[slot] == lo else np.zeros(counts.shape[1])
            wanted = np.arange(lo, hi)
            slots = wanted % len(index)
            return counts[slots[index[slots] == wanted]].sum(axis=0)
        mask = (index >= lo) & (index < hi)
        return counts[mask].sum(axis=0)

    def sums(self, end_s: float, prefix: list[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[int, np.ndarray]:
        """Column totals over every window of the layout, ending (exclusive) at `end_s`.

        `prefix` (from `prefixes()`) may be passed to share the work between several ends while
        the windows do not change.
        """
        prefix = prefix or self.prefixes()
        return {w: self._window_sum(w, end_s, prefix) for w in self.layout.tier_of}

    def sums_at(self, ends: list[float], plan: SumPlan | None = None) -> dict[float, dict[int, np.ndarray]]:
        """`sums(end)` for several ends at once: every window's bucket ranges, per tier, become one
        0/1 matrix times the tier's counts (a matrix product instead of a Python loop per window).

        `plan` (`self.layout.sum_plan(ends)`) may be passed to share the ranges between keys.
        """
        plan = plan or self.layout.sum_plan(ends)
        total = self.sums_matrix(plan)
        out: dict[float, dict[int, np.ndarray]] = {}
        for (end, w), row in zip(plan.slots, total, strict=True):
            out.setdefault(end, {})[w] = row
        return out

    def sums_matrix(self, plan: SumPlan) -> np.ndarray:
        """The window sums of `plan`, one row per (end, window) slot."""
        total = np.zeros((len(plan.slots), self.counts[0].shape[1]))
        for k, (slots, lo, hi) in enumerate(plan.ranges):
            if len(slots):
                index = self.index[k]
                member = (index[None, :] >= lo[:, None]) & (index[None, :] < hi[:, None])
                total[slots] += member.astype(np.float64) @ self.counts[k]  # a tier has one range per window
        return total

    def prefixes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per tier: bucket indices in ascending order and prefix sums of their vectors."""
        return [self._prefix(k) for k in range(len(self.layout.tiers))]

    def window_sum(self, window_s: int, end_s: float) -> np.ndarray:
        """Totals over [ceil((end - window) / b) * b, end) where b is the window's bucket.

        Whole buckets of the window's tier come first; the partial newest one is filled from the
        next finer tiers (each bucket size divides the coarser ones), down to the base tier.
        """
        prefix = [self._prefix(k) for k in range(self.layout.tier_of[window_s] + 1)]
        return self._window_sum(window_s, end_s, prefix)

    def since(self, window_s: int, start_s: float, end_s: float,
              prefix: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
        """Totals over [start_s, end_s), read like `window_sum` from the tier of `window_s` down:
        exact when `start_s` is a multiple of that tier's bucket (a calendar period's start, whose
        window was laid out with such a bucket) and the span is within the window. `prefix` (from
        `prefixes()`) may be passed to share the work between several reads."""
        t = self.layout.tier_of[window_s]
        return self._sum_from(t, start_s, end_s, prefix or [self._prefix(k) for k in range(t + 1)])

    def _prefix(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Tier k's bucket indices in ascending order, and prefix sums of their vectors."""
        order = np.argsort(self.index[k], kind="stable")
        counts = self.counts[k][order]
        prefix = np.empty((len(order) + 1, counts.shape[1]))
        prefix[0] = 0.0
        np.cumsum(counts, axis=0, out=prefix[1:])
        return self.index[k][order], prefix

    def _window_sum(self, window_s: int, end_s: float, prefix: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        t = self.layout.tier_of[window_s]
        b = self.layout.tiers[t].bucket_s
        return self._sum_from(t, math.ceil((end_s - window_s) / b) * b, end_s, prefix)

    def _sum_from(self, t: int, lo: float, end_s: float, prefix: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Whole buckets of tier t from `lo`, then the partial newest one from ever finer tiers."""
        total = np.zeros(self.counts[0].shape[1])
        for k in range(t, -1, -1):
            b = self.layout.tiers[k].bucket_s
            cut = math.floor(end_s / b) * b
            if cut > lo:
                held, sums = prefix[k]
                i, j = np.searchsorted(held, (math.ceil(lo / b), cut // b))
                total += sums[j] - sums[i]
                lo = cut
            if lo >= end_s:
                break
        return total

    def merge(self, other: Windows) -> None:
        """Add `other`'s buckets into this one (same layout): windows are mergeable summaries."""
        for k in range(len(self.layout.tiers)):
            for slot in np.flatnonzero(other.index[k] >= 0):
                self.add_bucket(k, int(other.index[k][slot]), other.counts[k][slot])
        self.dropped += other.dropped

    def add_bucket(self, k: int, i: int, vector: np.ndarray) -> bool:
        """Merge `vector` into bucket index `i` of tier `k`; False if that bucket was released."""
        if i < self.keep_from[k]:
            return False
        row = self._row(k, i)
        if row < 0:
            slot = i % self.slots[k]
            held = self.index[k][slot]
            if held >= 0 and held >= self.keep_from[k]:  # still needed: make room, never overwrite
                row = i % self.slots[k] if self._grow(k, i) else self._spill(k, i)
            else:
                row = slot
            self.counts[k][row] = 0.0
            self.index[k][row] = i
        self.counts[k][row] += vector
        return True

    def __getstate__(self) -> dict:
        return {
            "layout": self.layout,
            "counts": self.counts,
            "index": self.index,
            "slots": self.slots,
            "dropped": self.dropped,
            "keep_from": self.keep_from,
        }

    def __setstate__(self, state: dict) -> None:
        self.layout = state["layout"]
        self.counts = state["counts"]
        self.index = state["index"]
        self.slots = state.get("slots") or [len(i) for i in self.index]
        self.dropped = state["dropped"]
        self.keep_from = state["keep_from"]
