"""Labels that came before their prediction, held in columns until it comes or their time is up.

On Kafka the labels topic is read beside the inference topic, not after it, so a large share of
labels arrives before the prediction they label and waits here. Everything is per batch, not per
label: the labels a batch holds become one `_Chunk` (a compact copy of their hashes, times, truth
values and payload references), a `HashIndex` maps each held id's hash to its row number, and rows
are numbered in arrival order, so the oldest held label is the lowest live row.

* `take(hashes)` hands over the held labels of newly arrived predictions (one index lookup);
* `expire(limit)` releases labels stamped before `limit`, in (time, arrival) order, scanning only
  chunks whose oldest label is before it;
* `evict(cap)` releases the oldest beyond a cap (an unbounded stream of unknown ids must not grow
  memory). A chunk is dropped when its last label leaves; the index forgets dead rows at its merges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from sloguard.core.evaluate.aggregate import by_group
from sloguard.core.evaluate.idhash import HashIndex

_NO_HASHES = np.empty(0, np.uint64)
_NO_TS = np.empty(0, np.float64)
_NO_ROWS = np.empty(0, np.int64)


@dataclass(frozen=True)
class LabelMeta:
    """Where a label came from, so an unusable one can be dead-lettered with its payload."""

    ts: float
    raw: bytes
    topic: str
    partition: int
    offset: int

    @property
    def id(self) -> str:
        """The label's id, read back from its payload (only for the reason of a dead letter)."""
        try:
            return str(orjson.loads(self.raw).get("id"))
        except (orjson.JSONDecodeError, AttributeError):
            return "?"


@dataclass
class _Chunk:
    """Held labels of one batch: rows `first ..` in arrival order; `alive` until they leave."""

    first: int
    hashes: np.ndarray
    ts: np.ndarray
    truth: dict[str, np.ndarray]
    refs: Any  # LabelRefs of exactly these labels
    alive: np.ndarray
    left: int
    min_ts: float

    def meta(self, j: int) -> LabelMeta:
        return self.refs[j]


class Metas:
    """The `LabelMeta`s of released rows, made only when asked for: joined labels need none; only
    the few dead-lettered ones (late, duplicate) read theirs."""

    __slots__ = ("chunks", "local", "owner")

    def __init__(self, chunks: list[_Chunk], owner: np.ndarray, local: np.ndarray) -> None:
        self.chunks, self.owner, self.local = chunks, owner, local  # row j: chunks[owner[j]], its row local[j]

    def __len__(self) -> int:
        return len(self.local)

    def __getitem__(self, j: int) -> LabelMeta:
        return self.chunks[int(self.owner[j])].meta(int(self.local[j]))

    def reordered(self, order: np.ndarray) -> Metas:
        return Metas(self.chunks, self.owner[order], self.local[order])


class HeldLabels:
    """Held labels by id hash (see the module docstring)."""

    def __init__(self) -> None:
        self.index = HashIndex()  # id hash -> row
        self.chunks: list[_Chunk] = []
        self.next_row = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + sum(
            c.hashes.nbytes + c.ts.nbytes + c.alive.nbytes + sum(v.nbytes for v in c.truth.values())
            + len(c.refs.payloads.blob) for c in self.chunks)

    # ---- rows -----------------------------------------------------------------------------------

    def _rows(self, hashes: np.ndarray) -> np.ndarray:
        """The live row of each hash, -1 where none is held."""
        rows = self.index.lookup(hashes) if len(self.index) else np.full(len(hashes), -1, np.int64)
        live = rows >= 0
        if live.any():
            live[live] = self._alive(rows[live])
        return np.where(live, rows, -1)

    def _locate(self, rows: np.ndarray) -> np.ndarray:
        """The position in `self.chunks` of each row (rows of dropped chunks: -1)."""
        if not self.chunks:
            return np.full(len(rows), -1, np.int64)
        firsts = np.array([c.first for c in self.chunks], np.int64)
        which = np.searchsorted(firsts, rows, side="right") - 1
        ends = firsts + np.array([len(c.hashes) for c in self.chunks], np.int64)
        ok = (which >= 0) & (rows < ends[np.maximum(which, 0)])
        return np.where(ok, which, -1)

    def _alive(self, rows: np.ndarray) -> np.ndarray:
        which = self._locate(rows)
        out = np.zeros(len(rows), bool)
        for k, sel in by_group(which, np.flatnonzero(which >= 0)):
            chunk = self.chunks[k]
            out[sel] = chunk.alive[rows[sel] - chunk.first]
        return out

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        return self._rows(hashes) >= 0

    # ---- in and out -----------------------------------------------------------------------------

    def add(self, hashes: np.ndarray, ts: np.ndarray, truth: dict[str, np.ndarray], refs: Any) -> None:
        """Hold labels whose ids are neither held nor repeated among them (the caller checks)."""
        n = len(hashes)
        if not n:
            return
        rows = np.arange(self.next_row, self.next_row + n, dtype=np.int64)
        self.chunks.append(_Chunk(self.next_row, hashes.copy(), np.asarray(ts, float).copy(),
                                  {k: np.asarray(v).copy() for k, v in truth.items()}, refs,
                                  np.ones(n, bool), n, float(np.min(ts))))
        self.next_row += n
        self.count += n
        self.index.insert(hashes, rows, self._keep)

    def take(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], Metas]:
        """Release the held labels of `hashes` (each once): their hashes, times, truth and metas."""
        rows = self._rows(hashes)
        rows = np.unique(rows[rows >= 0])
        if not len(rows):  # the common case, a prediction whose label has not come: nothing to release
            return _NO_HASHES, _NO_TS, {}, Metas([], _NO_ROWS, _NO_ROWS)
        held, ts, truth, metas = self._release(rows)
        order = np.argsort(held, kind="stable")  # by hash, as the joins of a batch go
        return held[order], ts[order], {k: v[order] for k, v in truth.items()}, metas.reordered(order)

    def expire(self, limit: float) -> list[tuple[LabelMeta, int]]:
        """Release labels stamped before `limit`, oldest first (ties: arrival order); with hashes."""
        if not math.isfinite(limit):
            return []
        picked = []
        for chunk in self.chunks:
            if chunk.left and chunk.min_ts < limit:
                old = np.flatnonzero(chunk.alive & (chunk.ts < limit))
                picked.append(old + chunk.first)
        if not picked:
            return []
        rows = np.concatenate(picked)
        hashes, ts, _, metas = self._release(rows)
        order = np.lexsort((rows, ts))
        return [(metas[j], int(hashes[j])) for j in order.tolist()]

    def evict(self, cap: int) -> list[tuple[LabelMeta, int]]:
        """Release the oldest held labels beyond `cap`, in arrival order; with hashes."""
        excess = self.count - cap
        if excess <= 0:
            return []
        picked: list[np.ndarray] = []
        for chunk in self.chunks:
            if excess <= 0:
                break
            live = np.flatnonzero(chunk.alive)[:excess]
            picked.append(live + chunk.first)
            excess -= len(live)
        rows = np.concatenate(picked)
        hashes, _, _, metas = self._release(rows)
        return [(metas[j], int(hashes[j])) for j in range(len(rows))]

    def release_all(self) -> list[tuple[LabelMeta, int]]:
        """Every held label, in arrival order; with hashes."""
        return self.evict(0)

    def _release(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], Metas]:
        """Mark `rows` (ascending, live) gone; their hashes, times, truth columns and metas, row-aligned."""
        which = self._locate(rows)
        hashes = np.empty(len(rows), np.uint64)
        ts = np.empty(len(rows))
        truth: dict[str, list[np.ndarray]] = {}
        metas = Metas(list(self.chunks), which, np.empty(len(rows), np.int64))
        for k, sel in by_group(which):
            chunk = self.chunks[k]
            local = rows[sel] - chunk.first
            chunk.alive[local] = False
            chunk.left -= len(local)
            hashes[sel], ts[sel] = chunk.hashes[local], chunk.ts[local]
            for name, col in chunk.truth.items():
                truth.setdefault(name, []).append((sel, col[local]))  # type: ignore[arg-type]
            metas.local[sel] = local
        self.count -= len(rows)
        columns = {}
        for name, parts in truth.items():
            col = np.empty(len(rows), np.result_type(*[p for _, p in parts]))
            for sel, values in parts:  # type: ignore[misc]
                col[sel] = values
            columns[name] = col
        if any(not c.left for c in self.chunks):
            self.chunks = [c for c in self.chunks if c.left]
        if len(self.index) > 2 * self.count + 4096:  # mostly dead rows: forget them
            self.index.merge(self._keep)
        return hashes, ts, columns, metas

    def _keep(self, hashes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Index entries worth keeping at a merge: rows still held."""
        return self._alive(rows)
