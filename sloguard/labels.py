"""The label join: predictions wait for their ground truth from `ml.labels`, within a label delay.

A label joins the prediction with the same `id`; the pair then counts in the *prediction's* time
slice, however old that slice is (`evaluator.py` re-judges it). What waits is columnar: each
batch of predictions becomes one `_Chunk` of numpy columns (the prediction's time, its segment
key codes, whether it predicted the positive class, ...), and a dict maps each waiting id to a
sequence number, so a join is one dict pop per label and numpy gathers per chunk.

Bounded, never silent:

* a prediction waits at most `delay_s` of event time, then *expires* (counted);
* at most `cap` predictions wait; beyond that the oldest batches are *evicted* (counted);
* a label for an id that is not waiting is held for `hold_s` (its prediction may still be on its
  way from a lagging partition), then dead-lettered with the reason: unknown id, expired, evicted,
  or later than the label delay. Held labels are capped too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sloguard.batch import LabelColumns
from sloguard.timeutil import format_duration, to_rfc3339

EXPIRED, EVICTED = "expired", "evicted"
GONE_MAX = 100_000  # expired/evicted ids remembered to explain their late labels (older ones: "unknown")


@dataclass
class _Chunk:
    """One batch of waiting predictions: ids and columns by row, `alive` until joined or expired."""

    base: int  # sequence number of the batch's first prediction
    ids: list[str]
    cols: dict[str, np.ndarray]
    alive: np.ndarray
    left: int
    max_ts: float
    kept: np.ndarray | None = None  # after compaction: the batch rows still held, ascending

    def rows(self, seqs: np.ndarray) -> np.ndarray:
        """Positions in the columns of the predictions with sequence numbers `seqs`."""
        rows = seqs - self.base
        return rows if self.kept is None else np.searchsorted(self.kept, rows)

    def compact(self) -> None:
        """Keep only the predictions still waiting, so joined ones free their memory."""
        live = np.flatnonzero(self.alive)
        self.kept = live if self.kept is None else self.kept[live]
        self.ids = [self.ids[i] for i in live.tolist()]
        self.cols = {k: v[live] for k, v in self.cols.items()}
        self.alive = np.ones(len(live), bool)


@dataclass
class Joined:
    """Label/prediction pairs found by one call: prediction columns and label values, row-aligned."""

    pred: dict[str, np.ndarray]
    labels: list[Any]
    label_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class LabelMeta:
    """Where a label came from, so an unusable one can be dead-lettered with its payload."""

    ts: float
    value: Any
    raw: bytes
    topic: str
    partition: int
    offset: int


def _span(seconds: float) -> str:
    return format_duration(int(seconds)) if seconds >= 1 else f"{max(0.0, float(seconds)):g}s"


def _meta(labels: LabelColumns, j: int) -> LabelMeta:
    return LabelMeta(
        float(labels.ts[j]), labels.labels[j], labels.raw[j], labels.topic, labels.partition, labels.offsets[j]
    )


@dataclass
class LabelJoin:
    """Predictions waiting for labels, and labels waiting for predictions; see the module docstring."""

    delay_s: float
    cap: int
    hold_s: float
    chunks: list[_Chunk] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)  # waiting prediction id -> sequence number
    gone: dict[str, str] = field(default_factory=dict)  # recently expired/evicted ids -> why (capped)
    held: dict[str, LabelMeta] = field(default_factory=dict)  # labels whose prediction is not known yet
    next_seq: int = 0
    late_held: list[tuple[LabelMeta, str]] = field(default_factory=list)  # held labels joined too late
    oldest: float = -math.inf  # predictions before this can no longer be counted (their slice is gone)
    counters: dict[str, int] = field(
        default_factory=lambda: {"joined": 0, "late": 0, "expired": 0, "evicted": 0, "rejected_labels": 0}
    )

    # ---- predictions ---------------------------------------------------------------------------

    def add_predictions(self, ids: Sequence[str], cols: dict[str, np.ndarray]) -> Joined | None:
        """Start waiting for the labels of `ids` (`cols` must include `ts`); joins held labels."""
        n = len(ids)
        if not n:
            return None
        chunk = _Chunk(self.next_seq, list(ids), cols, np.ones(n, bool), n, float(np.max(cols["ts"])))
        self.index.update(zip(chunk.ids, range(self.next_seq, self.next_seq + n), strict=True))
        self.next_seq += n
        self.chunks.append(chunk)
        joined = self._join_held(chunk) if self.held else None
        self._evict()
        return joined

    def _join_held(self, chunk: _Chunk) -> Joined | None:
        held = self.held
        hits = [i for i in chunk.ids if i in held]
        if not hits:
            return None
        metas = [held.pop(i) for i in hits]
        rejected: list[tuple[LabelMeta, str]] = []
        joined = self._take(hits, [m.value for m in metas], np.array([m.ts for m in metas]), rejected, metas)[0]
        self.late_held += rejected
        return joined

    # ---- labels ---------------------------------------------------------------------------------

    def add_labels(self, labels: LabelColumns) -> tuple[Joined, list[tuple[LabelMeta, str]]]:
        """Join labels to waiting predictions. Returns the pairs, and labels rejected right away.

        A label for an id that is not waiting is held (see `expire`), unless its prediction is
        known to have expired or been evicted: then it is rejected with that reason at once.
        """
        rejected: list[tuple[LabelMeta, str]] = []
        joined, missing = self._take(labels.ids, labels.labels, np.asarray(labels.ts, float), rejected, labels)
        for j in missing:
            i, meta = labels.ids[j], _meta(labels, j)
            why = self.gone.get(i)
            if why is not None:
                rejected.append((meta, self._gone_reason(i, why)))
            elif i in self.held:
                rejected.append((meta, f"duplicate label: another label for id {i!r} already waits for its prediction"))
            else:
                self.held[i] = meta
        while len(self.held) > self.cap:  # an unbounded stream of unknown ids must not grow memory
            i = next(iter(self.held))
            rejected.append((self.held.pop(i), f"no prediction with id {i!r}: too many labels waiting for one"))
        self.counters["rejected_labels"] += len(rejected)
        return joined, rejected

    def _take(
        self,
        ids: list[str],
        values: list[Any],
        label_ts: np.ndarray,
        rejected: list[tuple[LabelMeta, str]],
        metas: list[LabelMeta] | LabelColumns,
    ) -> tuple[Joined, list[int]]:
        """Pop `ids` from the waiting predictions; returns the pairs and the positions not found."""
        pop = self.index.pop
        seqs = np.fromiter((pop(i, -1) for i in ids), np.int64, len(ids))
        found = np.flatnonzero(seqs >= 0)
        missing = np.flatnonzero(seqs < 0).tolist()
        if not len(found):
            return Joined({}, [], np.empty(0)), missing
        bases = np.array([c.base for c in self.chunks], np.int64)
        which = np.searchsorted(bases, seqs[found], side="right") - 1
        parts: dict[str, list[np.ndarray]] = {}
        order: list[np.ndarray] = []
        touched = np.unique(which).tolist()
        for k in touched:
            sel = found[which == k]
            chunk = self.chunks[k]
            rows = chunk.rows(seqs[sel])
            chunk.alive[rows] = False
            chunk.left -= len(rows)
            order.append(sel)
            for name, col in chunk.cols.items():
                parts.setdefault(name, []).append(col[rows])
        for k in touched:
            chunk = self.chunks[k]
            if chunk.left and chunk.left * 4 < len(chunk.alive):
                chunk.compact()
        if any(not self.chunks[k].left for k in touched):
            self.chunks = [c for c in self.chunks if c.left]
        pos = np.concatenate(order)
        pred = {name: np.concatenate(p) for name, p in parts.items()}
        lts = label_ts[pos]
        late = ((lts - pred["ts"]) > self.delay_s) | (pred["ts"] < self.oldest)
        if late.any():  # the prediction was still kept, but the label cannot count: not a pair
            for j in np.flatnonzero(late).tolist():
                p = int(pos[j])
                meta = metas[p] if isinstance(metas, list) else _meta(metas, p)
                if lts[j] - pred["ts"][j] > self.delay_s:
                    why = (
                        f"label for id {ids[p]!r} came {_span(lts[j] - pred['ts'][j])} after its "
                        f"prediction, beyond the label delay of {_span(self.delay_s)}"
                    )
                else:
                    why = (
                        f"label for id {ids[p]!r} came after event time left its prediction's slice "
                        f"(predicted at {to_rfc3339(float(pred['ts'][j]))}, older than every slice still kept)"
                    )
                rejected.append((meta, why))
            self.counters["late"] += int(late.sum())
            keep = ~late
            pos, lts = pos[keep], lts[keep]
            pred = {name: col[keep] for name, col in pred.items()}
        self.counters["joined"] += len(pos)
        return Joined(pred, [values[p] for p in pos.tolist()], lts), missing

    # ---- time -----------------------------------------------------------------------------------

    def expire(self, watermark: float) -> list[tuple[LabelMeta, str]]:
        """Expire predictions older than the label delay; release held labels past `hold_s`.

        Returns the held labels now rejected (and held ones that joined too late), with reasons.
        """
        if not math.isfinite(watermark):
            return []
        while self.chunks and self.chunks[0].max_ts < watermark - self.delay_s:
            self._drop(self.chunks.pop(0), EXPIRED)
        out, self.late_held = self.late_held, []
        if self.held:
            for i in [i for i, m in self.held.items() if m.ts < watermark - self.hold_s]:
                out.append((self.held.pop(i), self._held_reason(i)))
        self.counters["rejected_labels"] += len(out)
        return out

    def release_held(self) -> list[tuple[LabelMeta, str]]:
        """End of input: every held label, with why it found no prediction."""
        out = [(m, self._held_reason(i)) for i, m in self.held.items()]
        self.held.clear()
        out += self.late_held
        self.late_held = []
        self.counters["rejected_labels"] += len(out)
        return out

    def _evict(self) -> None:
        while len(self.index) > self.cap and self.chunks:
            self._drop(self.chunks.pop(0), EVICTED)

    def _drop(self, chunk: _Chunk, why: str) -> None:
        if not chunk.left:
            return
        index, gone = self.index, self.gone
        live = np.flatnonzero(chunk.alive)
        seqs = (live if chunk.kept is None else chunk.kept[live]) + chunk.base
        for row, seq in zip(live.tolist(), seqs.tolist(), strict=True):
            i = chunk.ids[row]
            if index.get(i) == seq:  # a later duplicate id may own the entry now
                del index[i]
            gone[i] = why
        self.counters[why] += chunk.left
        while len(gone) > min(self.cap, GONE_MAX):
            del gone[next(iter(gone))]

    def _held_reason(self, i: str) -> str:
        """Why a held label found no prediction: it expired, was evicted, or never came."""
        why = self.gone.get(i)
        return self._gone_reason(i, why) if why else self._unknown_reason(i)

    def _gone_reason(self, i: str, why: str) -> str:
        if why == EXPIRED:
            return (
                f"label for id {i!r} came after its prediction expired "
                f"(waited longer than the label delay of {_span(self.delay_s)})"
            )
        return f"label for id {i!r} came after its prediction was evicted (more than {self.cap} predictions waiting)"

    def _unknown_reason(self, i: str) -> str:
        return (
            f"label for unknown prediction id {i!r}: no prediction waits for it within the label delay "
            f"of {_span(self.delay_s)} (unknown, or already labelled; held {_span(self.hold_s)} for it)"
        )

    # ---- reporting ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self.index)

    def oldest_pending(self) -> str | None:
        """RFC 3339 time of the oldest batch still holding a waiting prediction."""
        for c in self.chunks:
            if c.left:
                return to_rfc3339(float(np.min(c.cols["ts"][c.alive])))
        return None

    def memory_bytes(self) -> int:
        """Approximate bytes held: the columns, plus ~100 bytes per dict entry and id string."""
        cols = sum(col.nbytes for c in self.chunks for col in c.cols.values()) + sum(
            c.alive.nbytes for c in self.chunks
        )
        return (
            cols + 100 * (len(self.index) + len(self.gone) + len(self.held)) + 60 * sum(len(c.ids) for c in self.chunks)
        )

    def report(self) -> dict[str, Any]:
        """Counters for budget events: waiting predictions and what happened to the others."""
        return {"pending": self.pending, "held_labels": len(self.held), **self.counters}
