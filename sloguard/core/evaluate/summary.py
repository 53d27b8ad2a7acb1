"""What the per-event stages hand the judge: mergeable per-interval, per-key summaries.

A `Summary` holds no per-event data. Its keys are named by segment (`("region", "eu")`, or
`("", "")` for the whole model), so summaries from any shard, worker or process merge by
addition: counter rows per (key, interval) for the windows, per (key, slice bucket) for the live
and labelled slice rings (labelled rows carry the tick from which they count), sparse quantile
sketch buckets per (key, SLO, slice), and per key the newest event time and version per interval.

`fold_rows` and `fold_cells` turn a batch's per-event rows or cells into those summaries with one
sort or one `bincount` per segmentation: the only per-event work, all in numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sloguard.core.evaluate.aggregate import group_sum

WHOLE = ("", "")  # the whole model's key


@dataclass(frozen=True)
class Progress:
    """What one input batch says about event time (sloguard/core/evaluate/frontier.py)."""

    source: str
    newest: float = -math.inf
    caught_up: bool = False
    watermark: float = -math.inf  # event time all inputs have passed, when the source knows it
    clock: float | None = None  # a live source's wall clock, sent when it is caught up and idle
    arrival: float | None = None  # the batch's newest broker timestamp: progress when no message was datable


@dataclass
class Rows:
    """Counter rows per (key, bucket start[, tick]): `rows[i]` adds to key `key[i]` at `start[i]`."""

    key: np.ndarray  # int64, index into the summary's keys
    start: np.ndarray  # float64, bucket start in epoch seconds
    rows: np.ndarray  # float64, (len, ncols)
    tick: np.ndarray | None = None  # labelled rows: the tick from which the row counts

    def __len__(self) -> int:
        return len(self.key)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows | None:
        parts = [p for p in parts if p is not None and len(p)]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        ticks = None if parts[0].tick is None else np.concatenate([p.tick for p in parts])  # type: ignore[misc]
        return Rows(np.concatenate([p.key for p in parts]), np.concatenate([p.start for p in parts]),
                    np.concatenate([p.rows for p in parts]), ticks)


@dataclass(frozen=True)
class SketchPart:
    """Sparse quantile-sketch buckets (`sketch.LogHistogram`) of one key, SLO and slice."""

    key: int
    slo: int
    start: float
    index: np.ndarray
    counts: np.ndarray


@dataclass
class Summary:
    """A batch's contribution to one model's state, from one shard (see the module docstring)."""

    model: str
    shard: int
    progress: Progress | None = None
    keys: list[tuple[str, str]] = field(default_factory=lambda: [WHOLE])
    windows: list[Rows] = field(default_factory=list)
    live: list[Rows] = field(default_factory=list)
    labelled: list[Rows] = field(default_factory=list)
    sketches: list[SketchPart] = field(default_factory=list)
    newest: list[tuple[int, float, float, str | None]] = field(default_factory=list)  # key, bucket, ts, version
    first_ts: float = math.inf
    undated_rejections: int = 0
    counters: dict[str, int] = field(default_factory=dict)  # deltas: duplicates, ...
    labels: dict[str, Any] | None = None  # the shard's label store report (absolute values)

    def key_offsets(self, tables: list[list[str | None]], attrs: tuple[str, ...]) -> list[int]:
        """Add every value of `tables[a]` as key (attrs[a], value); returns each table's first index."""
        offsets = []
        for attr, values in zip(attrs, tables, strict=True):
            offsets.append(len(self.keys))
            self.keys += [(attr, v) for v in values]  # type: ignore[misc]
        return offsets


Segmentation = tuple[np.ndarray, int]  # (per-event key code within the table, -1 none; table offset)


def segmentations(codes: list[np.ndarray], offsets: list[int], n: int) -> list[Segmentation]:
    """The whole model, then each attribute: per-event code and the offset of its key table."""
    return [(np.zeros(n, np.int64), 0), *zip(codes, offsets, strict=True)]


def fold_rows(segs: list[Segmentation], start: np.ndarray, matrix: np.ndarray, width_s: int) -> Rows | None:
    """Sum per-event counter rows per (key, bucket of `width_s`) for every segmentation.

    Rows are first summed per distinct combination of the bucket and every segmentation's code (a
    few dozen per batch), then per key: one sort of the batch instead of one per segmentation.
    """
    n = len(start)
    if not n:
        return None
    bucket = np.floor(start / width_s).astype(np.int64)
    b0 = int(bucket.min())
    parts = [bucket - b0] + [c + 1 for c, _ in segs[1:]]
    dims = tuple(int(p.max()) + 1 for p in parts)
    if math.prod(dims) >= 2**62:  # too many combinations to number densely: group per segmentation
        return Rows.concat([_fold_one(codes, offset, parts[0], b0, matrix, width_s) for codes, offset in segs])
    ids, sums = group_sum(np.ravel_multi_index(parts, dims), matrix)
    coords = np.unravel_index(ids, dims)
    combos = [np.zeros(len(ids), np.int64)] + [c - 1 for c in coords[1:]]
    return Rows.concat([_fold_one(codes, offset, coords[0], b0, sums, width_s)
                        for codes, (_, offset) in zip(combos, segs, strict=True)])


def _fold_one(codes: np.ndarray, offset: int, off: np.ndarray, b0: int, rows: np.ndarray, width_s: int
              ) -> Rows | None:
    ok = codes >= 0
    if not ok.any():
        return None
    nb = int(off.max()) + 1
    gids, sums = group_sum(codes[ok] * nb + off[ok], rows[ok])
    key, slot = np.divmod(gids, nb)
    return Rows(key + offset, (slot + b0).astype(np.float64) * width_s, sums)


Cells = tuple[np.ndarray, np.ndarray | None]  # per event: a column (-1: none) and an optional weight


def fold_cells(segs: list[Segmentation], start: np.ndarray, cells: list[Cells], ncols: int, width_s: int,
               tick: np.ndarray | None = None, tick_s: int = 1) -> Rows | None:
    """Count per-event `cells` into rows per (key, bucket[, tick]): one bincount per segmentation.

    `tick` (labelled pairs) is the tick, a multiple of `tick_s`, from which each pair counts.
    """
    n = len(start)
    if not n or not cells:
        return None
    bucket = np.floor(start / width_s).astype(np.int64)
    b0 = int(bucket.min())
    off = bucket - b0
    nb = int(off.max()) + 1
    nt, t0 = 1, 0
    if tick is not None:
        steps = np.round(tick / tick_s).astype(np.int64)
        t0 = int(steps.min())
        nt = int(steps.max()) - t0 + 1
        off = off * nt + (steps - t0)
    cols = np.concatenate([c for c, _ in cells])
    weights = np.concatenate([np.ones(len(c)) if w is None else w for c, w in cells])
    reps = len(cells)
    keep = (cols >= 0) & ~np.isnan(weights)
    if not keep.any():
        return None
    # Count once per distinct (slot, every segmentation's code, column): a few hundred cells per batch,
    # then fold those cells per segmentation (one sort of the batch instead of one per segmentation).
    parts = [off] + [c + 1 for c, _ in segs[1:]]
    dims = (*(int(p.max()) + 1 for p in parts), ncols)
    if math.prod(dims) >= 2**62:  # too many combinations to number densely: count per segmentation
        return _cells_each(segs, off, cols, weights, keep, reps, ncols, (nb, nt, b0, t0), width_s, tick_s,
                           tick is not None)
    combo = np.ravel_multi_index([np.tile(p, reps)[keep] for p in parts] + [cols[keep]], dims)
    cells_at, inverse = np.unique(combo, return_inverse=True)
    weight = np.bincount(inverse, weights[keep], minlength=len(cells_at))
    coords = np.unravel_index(cells_at, dims)
    codes_at = [np.zeros(len(cells_at), np.int64)] + [c - 1 for c in coords[1:-1]]
    return _cells_each(list(zip(codes_at, [o for _, o in segs], strict=True)), coords[0], coords[-1], weight,
                       np.ones(len(cells_at), bool), 1, ncols, (nb, nt, b0, t0), width_s, tick_s, tick is not None)


def _cells_each(segs: list[Segmentation], off: np.ndarray, cols: np.ndarray, weights: np.ndarray, keep: np.ndarray,
                reps: int, ncols: int, frame: tuple[int, int, int, int], width_s: int, tick_s: int, ticked: bool
                ) -> Rows | None:
    """Per segmentation, weighted column counts per (key, slot); `off` numbers (bucket, tick) slots."""
    nb, nt, b0, t0 = frame
    offs = np.tile(off, reps)
    keys, starts, rows, ticks = [], [], [], []
    for codes, offset in segs:
        k = np.tile(codes, reps)
        ok = keep & (k >= 0)
        if not ok.any():
            continue
        group = k[ok] * (nb * nt) + offs[ok]
        groups, inverse = np.unique(group, return_inverse=True)  # only the (key, bucket) pairs present
        counts = np.bincount(inverse * ncols + cols[ok], weights[ok], minlength=len(groups) * ncols)
        counts = counts.reshape(len(groups), ncols)
        hit = np.flatnonzero(counts.any(axis=1))
        key, slot = np.divmod(groups[hit], nb * nt)
        slot, step = np.divmod(slot, nt)
        keys.append(key + offset)
        starts.append((b0 + slot).astype(np.float64) * width_s)
        ticks.append((t0 + step).astype(np.float64) * tick_s)
        rows.append(counts[hit])
    if not keys:
        return None
    return Rows(np.concatenate(keys), np.concatenate(starts), np.concatenate(rows),
                np.concatenate(ticks) if ticked else None)


def newest_per_key(segs: list[Segmentation], ts: np.ndarray, bucket_s: int, version_codes: np.ndarray | None,
                   versions: list[str] | None) -> list[tuple[int, float, float, str | None]]:
    """Per (key, interval): the newest event time and the version of that event (ties: the largest)."""
    out: list[tuple[int, float, float, str | None]] = []
    bucket = np.floor(ts / bucket_s).astype(np.int64)
    vrank = np.zeros(len(ts), np.int64) if version_codes is None else _rank(version_codes, versions or [])
    for codes, offset in segs:
        ok = codes >= 0
        if not ok.any():
            continue
        # sort by (key, bucket, ts, version rank): the last row of each (key, bucket) is its newest
        order = np.lexsort((vrank[ok], ts[ok], bucket[ok], codes[ok]))
        k, b = codes[ok][order], bucket[ok][order]
        last = np.r_[(k[1:] != k[:-1]) | (b[1:] != b[:-1]), True]
        rows = np.flatnonzero(ok)[order][last]
        for key, bk, row in zip((k[last] + offset).tolist(), b[last].tolist(), rows.tolist(), strict=True):
            version = None if version_codes is None else versions[version_codes[row]]  # type: ignore[index]
            out.append((key, float(bk * bucket_s), float(ts[row]), version))
    return out


def _rank(codes: np.ndarray, table: list[str]) -> np.ndarray:
    """Each event's version's rank among the table's values sorted, so ties break the same anywhere."""
    order = np.argsort(np.array(table, dtype=object)) if table else np.zeros(0, np.int64)
    rank = np.empty(len(table), np.int64)
    rank[order] = np.arange(len(table))
    return rank[codes]
