"""The label join: predictions wait for their ground truth from `ml.labels`, within a label delay.

A label joins the prediction with the same `id`; the pair then counts in the *prediction's* time
slice, however old that slice is (the judge re-judges it). One `LabelStore` lives in each shard of
a model (ids are routed to shards by hash), and everything in it is numpy:

* waiting predictions sit in arrival-ordered `_Block`s of columns (time, segment key codes,
  whether it was answered, what it predicted), about 30 bytes each; a block is sealed when it is
  full or spans 1/16 of the label delay;
* a `HashIndex` maps each waiting id's 64-bit hash to the prediction's sequence number, so a batch
  of labels is joined with two `searchsorted` calls and one gather per block it touches;
* expiry and eviction drop whole blocks from the old end (O(1) each); their ids stay in the index
  until its next merge, which moves them to a bounded memory of *gone* ids (`GONE_MAX`), so a late
  label can still be told why it found nothing.

Bounded, never silent:

* a prediction waits at least `delay_s` of event time (at most 1/16 more, its block's span), then
  *expires* (counted); a label more than `delay_s` after its prediction never counts;
* at most about `cap` predictions wait; beyond that the oldest blocks are *evicted* (counted);
* a label for an id that is not waiting is held for `hold_s` (its prediction may still be on its
  way from a lagging partition), then dead-lettered with the reason: unknown id, expired, evicted,
  or later than the label delay. Held labels are capped too and expire through a heap by time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sloguard.core.evaluate.aggregate import by_group
from sloguard.core.evaluate.held import HeldLabels, LabelMeta
from sloguard.core.evaluate.idhash import HashIndex
from sloguard.core.spec.timeutil import format_duration, to_rfc3339

EXPIRED, EVICTED, JOINED = "expired", "evicted", "joined"
_REASONS = (EXPIRED, EVICTED, JOINED)  # why a block left; a JOINED block's ids are simply unknown again
GONE_MAX = 100_000  # expired/evicted ids remembered to explain their late labels (older ones: "unknown")
BLOCK_ROWS = 65_536


@dataclass
class _Block:
    """Waiting predictions with sequence numbers base.. in arrival order; `alive` until joined."""

    base: int
    cols: dict[str, np.ndarray]
    n: int = 0
    left: int = 0
    min_ts: float = math.inf
    max_ts: float = -math.inf
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    kept: np.ndarray | None = None  # after compaction: the offsets (seq - base) still held, ascending

    def append(self, cols: dict[str, np.ndarray]) -> None:
        k = len(cols["ts"])
        if self.n + k > len(self.alive):  # grow by doubling: amortised O(1) per row
            size = max(1024, 2 * (self.n + k))
            self.cols = {name: _grown(self.cols.get(name), cols[name], size) for name in cols}
            self.alive = _grown(self.alive, np.ones(0, bool), size)
        for name, col in cols.items():
            self.cols[name][self.n : self.n + k] = col
        self.alive[self.n : self.n + k] = True
        self.n += k
        self.left += k
        self.min_ts = min(self.min_ts, float(cols["ts"].min()))
        self.max_ts = max(self.max_ts, float(cols["ts"].max()))

    def trim(self) -> None:
        """A sealed block gives back the spare room of its last doubling."""
        self.cols = {k: v[: self.n].copy() for k, v in self.cols.items()}
        self.alive = self.alive[: self.n].copy()

    def rows(self, seqs: np.ndarray) -> np.ndarray:
        """Positions of `seqs` in the columns; -1 for one compaction dropped (it was joined)."""
        offsets = seqs - self.base
        if self.kept is None:
            return offsets
        if not len(self.kept):
            return np.full(len(offsets), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.kept, offsets), len(self.kept) - 1)
        return np.where(self.kept[pos] == offsets, pos, -1)

    def compact(self) -> None:
        """Keep only the predictions still waiting, so joined ones free their memory."""
        live = np.flatnonzero(self.alive[: self.n])
        self.kept = live if self.kept is None else self.kept[live]
        self.cols = {k: v[live] for k, v in self.cols.items()}
        self.alive = np.ones(len(live), bool)
        self.n = len(live)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.cols.values()) + self.alive.nbytes + (
            0 if self.kept is None else self.kept.nbytes
        )


def _grown(old: np.ndarray | None, like: np.ndarray, size: int) -> np.ndarray:
    new = np.zeros(size, like.dtype)
    if old is not None:
        new[: len(old)] = old[: min(len(old), size)]
    return new


@dataclass
class Joined:
    """Label/prediction pairs: prediction columns, label truth columns and label times, row-aligned."""

    pred: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    label_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.label_ts)

    def take(self, rows: np.ndarray) -> Joined:
        return Joined({k: v[rows] for k, v in self.pred.items()}, {k: v[rows] for k, v in self.truth.items()},
                      self.label_ts[rows])

    @staticmethod
    def concat(parts: list[Joined]) -> Joined | None:
        parts = [p for p in parts if len(p)]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return Joined({k: np.concatenate([p.pred[k] for p in parts]) for k in parts[0].pred},
                      {k: np.concatenate([p.truth[k] for p in parts]) for k in parts[0].truth},
                      np.concatenate([p.label_ts for p in parts]))


def _span(seconds: float) -> str:
    return format_duration(int(seconds)) if seconds >= 1 else f"{max(0.0, float(seconds)):g}s"


Rejected = list[tuple[LabelMeta, str]]


@dataclass
class LabelStore:
    """Predictions waiting for labels, and labels waiting for predictions; see the module docstring."""

    delay_s: float
    cap: int
    hold_s: float
    blocks: deque[_Block] = field(default_factory=deque)
    index: HashIndex = field(default_factory=HashIndex)  # id hash -> sequence number
    next_seq: int = 0
    head_seq: int = 0  # predictions before this were dropped (expired or evicted)
    dropped: deque[tuple[int, int]] = field(default_factory=deque)  # (end seq, reason code) of dropped blocks
    gone: deque[tuple[np.ndarray, np.ndarray]] = field(default_factory=deque)  # (sorted hashes, reason codes)
    gone_count: int = 0
    held: HeldLabels = field(default_factory=HeldLabels)  # labels whose prediction is not known yet (held.py)
    dead: int = 0  # index entries of joined predictions not merged out yet
    oldest: float = -math.inf  # predictions before this can no longer be counted (their slice is gone)
    truth_names: tuple[str, ...] = ()
    counters: dict[str, int] = field(
        default_factory=lambda: {"joined": 0, "late": 0, "expired": 0, "evicted": 0, "rejected_labels": 0}
    )

    # ---- predictions ---------------------------------------------------------------------------

    def add_predictions(self, hashes: np.ndarray, cols: dict[str, np.ndarray]) -> tuple[Joined | None, Rejected]:
        """Start waiting for the labels of `hashes` (`cols` must include `ts`); joins held labels."""
        n = len(hashes)
        if not n:
            return None, []
        block = self.blocks[-1] if self.blocks else None
        limit = min(BLOCK_ROWS, max(1, self.cap // 16))  # so eviction drops at most ~1/16 of the cap
        if block is None or block.kept is not None or block.n + n > limit or (
            float(cols["ts"].max()) - block.min_ts > self.delay_s / 16
        ):
            if block is not None and block.kept is None:
                block.trim()
            block = _Block(self.next_seq, {})
            self.blocks.append(block)
        block.append(cols)
        self.index.insert(hashes, np.arange(self.next_seq, self.next_seq + n, dtype=np.int64), self._keep)
        self.next_seq += n
        joined, rejected = self._join_held(hashes) if self.held else (None, [])
        self._evict()
        return joined, rejected

    def _join_held(self, hashes: np.ndarray) -> tuple[Joined | None, Rejected]:
        hits, ts, truth, metas = self.held.take(hashes)
        if not len(hits):
            return None, []
        rejected: Rejected = []
        joined, missing = self._take(hits, ts, truth, metas, rejected)
        for j in missing:  # a duplicate prediction id already joined: the held label is unknown again
            rejected.append((metas[j], self._unknown_reason(metas[j].id)))
        self.counters["rejected_labels"] += len(rejected)
        return joined, rejected

    # ---- labels ---------------------------------------------------------------------------------

    def add_labels(self, hashes: np.ndarray, ts: np.ndarray, truth: dict[str, np.ndarray],
                   meta: LabelRefs) -> tuple[Joined | None, Rejected]:
        """Join labels to waiting predictions. Returns the pairs, and labels rejected right away.

        A label for an id that is not waiting is held (see `expire`), unless its prediction is
        known to have expired or been evicted: then it is rejected with that reason at once.
        """
        self.truth_names = tuple(truth)
        rejected: Rejected = []
        joined, missing = self._take(hashes, ts, truth, meta, rejected)
        if missing:
            miss = np.array(missing, np.int64)
            gone = self._gone_reasons(hashes[miss])
            repeated = self.held.contains(hashes[miss])  # another label for the id already waits
            _, first = np.unique(hashes[miss], return_index=True)
            later = np.ones(len(miss), bool)
            later[first] = False
            repeated |= later  # ... or came earlier in this batch
            hold = (np.array(gone, dtype=object) == None) & ~repeated  # noqa: E711 - elementwise
            for k in np.flatnonzero(~hold).tolist():  # only the rejected ones, in label order
                m, why = meta[missing[k]], gone[k]
                if why is not None:
                    rejected.append((m, self._gone_reason(m.id, why)))
                else:
                    rejected.append((m, f"duplicate label: another label for id {m.id!r} already waits for its "
                                        "prediction"))
            sel = miss[hold]
            if len(sel):
                self.held.add(hashes[sel], ts[sel], {name: truth[name][sel] for name in self.truth_names},
                              meta.subset(sel))
        for m, _ in self.held.evict(self.cap):  # an unbounded stream of unknown ids must not grow memory
            rejected.append((m, f"no prediction with id {m.id!r}: too many labels waiting for one"))
        self.counters["rejected_labels"] += len(rejected)
        return joined, rejected

    def _take(self, hashes: np.ndarray, label_ts: np.ndarray, truth: dict[str, np.ndarray],
              meta: Any, rejected: Rejected) -> tuple[Joined | None, list[int]]:
        """Join `hashes` to waiting predictions; returns the pairs and the positions not found."""
        seqs = self.index.lookup(hashes) if len(self.index) else np.full(len(hashes), -1, np.int64)
        ok = seqs >= self.head_seq
        _, first = np.unique(seqs, return_index=True)  # two labels for one id in a batch: the first
        once = np.zeros(len(seqs), bool)
        once[first] = True
        ok &= once
        parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        if ok.any():
            bases = np.array([b.base for b in self.blocks], np.int64)
            which = np.searchsorted(bases, seqs, side="right") - 1
            for k, sel in by_group(which, np.flatnonzero(ok)):
                block = self.blocks[k]
                rows = block.rows(seqs[sel])
                live = rows >= 0  # a compacted block may hold no rows at all: index only real rows
                live[live] = block.alive[rows[live]]
                ok[sel[~live]] = False  # already joined: not waiting any more
                sel, rows = sel[live], rows[live]
                if not len(sel):
                    continue
                block.alive[rows] = False
                block.left -= len(rows)
                parts.append((sel, {name: col[rows] for name, col in block.cols.items()}))
                self.dead += len(rows)
                if block.left * 4 < block.n:
                    block.compact()
        while self.blocks and not self.blocks[0].left:  # fully joined blocks at the old end
            self._drop(self.blocks.popleft(), JOINED)
        if self.dead * 2 > len(self.index):  # joined ids would outnumber the waiting ones
            self.index.merge(self._keep)
            self.dead = 0
        missing = np.flatnonzero(~ok).tolist()
        if not parts:
            return None, missing
        pos = np.concatenate([p for p, _ in parts])
        pred = {name: np.concatenate([c[name] for _, c in parts]) for name in parts[0][1]}
        lts = label_ts[pos]
        late = ((lts - pred["ts"]) > self.delay_s) | (pred["ts"] < self.oldest)
        if late.any():  # the prediction was still kept, but the label cannot count: not a pair
            for j in np.flatnonzero(late).tolist():
                m = meta[int(pos[j])]
                if lts[j] - pred["ts"][j] > self.delay_s:
                    why = (f"label for id {m.id!r} came {_span(lts[j] - pred['ts'][j])} after its "
                           f"prediction, beyond the label delay of {_span(self.delay_s)}")
                else:
                    why = (f"label for id {m.id!r} came after event time left its prediction's slice "
                           f"(predicted at {to_rfc3339(float(pred['ts'][j]))}, older than every slice still kept)")
                rejected.append((m, why))
            self.counters["late"] += int(late.sum())
            keep = ~late
            pos, lts = pos[keep], lts[keep]
            pred = {name: col[keep] for name, col in pred.items()}
        self.counters["joined"] += len(pos)
        return Joined(pred, {name: col[pos] for name, col in truth.items()}, lts), missing

    # ---- time -----------------------------------------------------------------------------------

    def expire(self, watermark: float) -> Rejected:
        """Expire predictions older than the label delay; release held labels past `hold_s`."""
        if not math.isfinite(watermark):
            return []
        while self.blocks and self.blocks[0].max_ts < watermark - self.delay_s:
            self._drop(self.blocks.popleft(), EXPIRED)
        out = self._held_reasons(self.held.expire(watermark - self.hold_s))
        self.counters["rejected_labels"] += len(out)
        return out

    def release_held(self) -> Rejected:
        """End of input: every held label, with why it found no prediction."""
        out = self._held_reasons(self.held.release_all())
        self.counters["rejected_labels"] += len(out)
        return out

    def _evict(self) -> None:
        while self.pending > self.cap and self.blocks:
            self._drop(self.blocks.popleft(), EVICTED)

    def _drop(self, block: _Block, why: str) -> None:
        """Forget a block (already taken off the deque): its sequence numbers end where the next begins."""
        if why != JOINED:
            self.counters[why] += block.left
        self.head_seq = self.blocks[0].base if self.blocks else self.next_seq
        self.dropped.append((self.head_seq, _REASONS.index(why)))

    def _keep(self, hashes: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """Index entries worth keeping at a merge: waiting predictions. Those of expired or evicted
        blocks move to the memory of gone ids; joined ones are forgotten."""
        gone = seqs < self.head_seq
        if gone.any():
            ends = np.array([e for e, _ in self.dropped], np.int64)
            codes = np.array([c for _, c in self.dropped], np.int8)
            which = codes[np.minimum(np.searchsorted(ends, seqs[gone], side="right"), len(ends) - 1)]
            told = which != _REASONS.index(JOINED)
            if told.any():
                self.gone.append((hashes[gone][told], which[told]))  # hashes arrive sorted
                self.gone_count += int(told.sum())
            while self.gone_count > min(self.cap, GONE_MAX) and len(self.gone) > 1:
                self.gone_count -= len(self.gone.popleft()[0])
            while len(self.dropped) > 1:
                self.dropped.popleft()
        return ~gone & self._alive(seqs)

    def _alive(self, seqs: np.ndarray) -> np.ndarray:
        """Whether each sequence number is a prediction still waiting."""
        out = np.zeros(len(seqs), bool)
        if not self.blocks:
            return out
        bases = np.array([b.base for b in self.blocks], np.int64)
        which = np.searchsorted(bases, seqs, side="right") - 1
        for k, sel in by_group(which, np.flatnonzero(which >= 0)):
            block = self.blocks[k]
            offsets = seqs[sel] - block.base
            if block.kept is None:
                ok = offsets < block.n
                out[sel[ok]] = block.alive[offsets[ok]]
            else:
                pos = np.minimum(np.searchsorted(block.kept, offsets), max(len(block.kept) - 1, 0))
                ok = (block.kept[pos] == offsets) if len(block.kept) else np.zeros(len(sel), bool)
                out[sel[ok]] = block.alive[pos[ok]]
        return out

    def _gone_reasons(self, hashes: np.ndarray) -> list[str | None]:
        """Why each id is no longer waiting, if it is known to have expired or been evicted."""
        out: list[str | None] = [None] * len(hashes)
        seqs = self.index.lookup(hashes) if len(self.index) else np.full(len(hashes), -1, np.int64)
        found = np.flatnonzero((seqs >= 0) & (seqs < self.head_seq))
        if len(found):  # the block each id left with, found for all of them at once
            ends = np.array([e for e, _ in self.dropped], np.int64)
            codes = np.array([c for _, c in self.dropped], np.int8)
            left = codes[np.minimum(np.searchsorted(ends, seqs[found], side="right"), len(ends) - 1)]
            for j, code in zip(found.tolist(), left.tolist(), strict=True):
                why = _REASONS[code]
                out[j] = None if why == JOINED else why
        for keys, codes in reversed(self.gone):
            pos = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
            for j in np.flatnonzero(keys[pos] == hashes).tolist():
                if out[j] is None:
                    out[j] = _REASONS[int(codes[pos[j]])]
        return out

    def _held_reasons(self, held: list[tuple[LabelMeta, int]]) -> Rejected:
        """Why each released held label found no prediction: it expired, was evicted, or never came.
        One lookup for all of them: a burst of late labels releases thousands at once."""
        if not held:
            return []
        whys = self._gone_reasons(np.array([h for _, h in held], np.uint64))
        return [(m, self._gone_reason(m.id, why) if why else self._unknown_reason(m.id))
                for (m, _), why in zip(held, whys, strict=True)]

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
        return sum(b.left for b in self.blocks)

    def oldest_pending(self) -> str | None:
        """RFC 3339 time of the oldest block still holding a waiting prediction."""
        for b in self.blocks:
            if b.left:
                return to_rfc3339(float(np.min(b.cols["ts"][: b.n][b.alive[: b.n]])))
        return None

    def memory_bytes(self) -> int:
        """Bytes held by the columns, the index, the memory of gone ids and the held labels."""
        return (sum(b.nbytes for b in self.blocks) + self.index.nbytes
                + sum(k.nbytes + c.nbytes for k, c in self.gone) + self.held.nbytes)

    def report(self) -> dict[str, Any]:
        """Counters for budget events: waiting predictions and what happened to the others."""
        return {"pending": self.pending, "held_labels": len(self.held), **self.counters}


@dataclass(frozen=True)
class LabelRefs:
    """Where a batch's labels came from: `refs[j]` is the `LabelMeta` of label `rows[j]`."""

    ts: np.ndarray
    payloads: Any  # RaggedBytes: payload j
    topic: str
    partition: int
    offsets: np.ndarray
    rows: np.ndarray | None = None

    def subset(self, positions: np.ndarray) -> LabelRefs:
        """The refs of labels `positions` alone, compacted (held labels keep only their own payloads)."""
        rows = positions if self.rows is None else self.rows[positions]
        return LabelRefs(self.ts[rows], self.payloads.take(rows), self.topic, self.partition, self.offsets[rows])

    def __getitem__(self, j: int) -> LabelMeta:
        k = j if self.rows is None else int(self.rows[j])
        return LabelMeta(float(self.ts[k]), self.payloads[k], self.topic, self.partition, int(self.offsets[k]))
