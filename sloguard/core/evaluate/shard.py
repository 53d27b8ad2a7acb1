"""The per-event stage of one (model, shard): dedupe, the label join, and pre-aggregation.

A `Shard` takes the `Piece`s (pieces.py) of its hash range and turns each into one `Summary`
(summary.py) for the judge, plus dead letters:

1. **dedupe**: ids seen within `limits.dedupe_window` are dead-lettered as duplicates (they count
   toward the schema SLI);
2. **pre-aggregation**: counter rows per (segment key, interval), drift bins and selection counts
   per (key, slice bucket), quantile sketch buckets per (key, SLO, slice), and the newest event
   and version per (key, interval), all with numpy over the piece's columns;
3. **the label join** (`labels.LabelStore`): predictions wait for their labels; each joined pair
   becomes confusion counts or regression sums in its prediction's slice, tagged with the tick
   from which it counts (the first tick after the later of the label's and the prediction's event
   time), so verdicts depend on event time only, not on batching or on the number of shards;
4. **time**: the shard's own frontier over the sources' progress expires remembered ids, waiting
   predictions and held labels; the summary carries the progress on to the judge.

The shard's state is numpy columns and small dicts; it pickles without walking per-event objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sloguard.core.evaluate.dedupe import RecentIds
from sloguard.core.evaluate.frontier import SourceFrontier
from sloguard.core.evaluate.judge_state import MAX_VALUES_PER_ATTRIBUTE
from sloguard.core.evaluate.labels import Joined, LabelRefs, LabelStore, Rejected
from sloguard.core.evaluate.pieces import InferencePiece, Piece, Rows, fold_inference, fold_messages, tick_of
from sloguard.core.evaluate.plan import ModelPlan
from sloguard.core.evaluate.summary import Summary, fold_cells, segmentations
from sloguard.core.messages.events import STATUS_CODE
from sloguard.core.messages.outputs import dead_letter
from sloguard.core.spec.timeutil import format_duration, to_rfc3339

#: Per attribute and shard: distinct segment values a waiting prediction can name. The judge keeps a
#: key for the first MAX_VALUES_PER_ATTRIBUTE values and remembers 4x as many (judge.py); a shard
#: has no use for more (it used to keep 32,767 per shard: 100k distinct values cost every shard
#: a dict of all of them while the judge pooled them into "(other)").
MAX_CODES = 4 * MAX_VALUES_PER_ATTRIBUTE + 1
OTHER = "(other)"

Output = tuple[str, dict[str, Any]]


@dataclass
class ShardState:
    """What one shard keeps between batches."""

    recent: RecentIds
    labels: LabelStore | None
    frontier: SourceFrontier
    watermark: float = -math.inf
    codes: list[dict[str, int]] = field(default_factory=list)  # per attribute: value -> code of waiting predictions
    values: list[list[str]] = field(default_factory=list)  # per attribute: code -> value


class Shard:
    """The per-event stage of one model's shard (see the module docstring)."""

    def __init__(self, plan: ModelPlan, shard: int, state: ShardState | None = None, sources: tuple[str, ...] = ()
                 ) -> None:
        self.plan = plan
        self.shard = shard
        config = plan.config
        if state is None:
            store = None
            if plan.labelled:
                store = LabelStore(plan.model.label_delay_s, max(1, plan.model.max_pending_labels // plan.shards),
                                   max(config.allowed_lateness_s, plan.interval_s))
            state = ShardState(RecentIds(config.dedupe_window_s, max(1000, 2_000_000 // plan.shards)), store,
                               SourceFrontier(sources), codes=[{} for _ in plan.attrs],
                               values=[[] for _ in plan.attrs])
        self.state = state

    def ingest(self, piece: Piece) -> tuple[Summary, list[Output]]:
        """One piece in; its summary for the judge and its dead letters out."""
        summary = piece.pre or Summary(self.plan.name, self.shard)
        summary.progress = piece.progress
        dead: list[Output] = []
        if piece.inference is not None and len(piece.inference):
            self._inference(piece.inference, summary, dead)
        if self.state.labels is not None:
            self.state.labels.oldest = self._labelled_from()
        if piece.labels is not None and len(piece.labels) and self.state.labels is not None:
            lp, rows = piece.labels.whole, piece.labels.rows
            refs = LabelRefs(lp.ts, lp.payloads, lp.topic, lp.partition, lp.offsets, rows)
            joined, rejected = self.state.labels.add_labels(
                lp.hashes[rows], lp.ts[rows], {k: v[rows] for k, v in lp.truth.items()}, refs)
            self._pairs(joined, summary)
            self._reject(rejected, dead)
        if summary.undated_rejections:
            self._date(summary, piece.progress.source)
        self._advance(piece, dead)
        if self.state.labels is not None:
            summary.labels = self.state.labels.report()
        return summary, dead

    def finish(self) -> list[Output]:
        """End of input: labels still held for a prediction that never came are dead-lettered."""
        dead: list[Output] = []
        st = self.state
        if st.labels is not None:
            end = max(st.watermark, st.frontier.newest())
            if end > st.watermark:  # no more input: event time has reached the newest event seen
                self._reject(st.labels.expire(end), dead)
            self._reject(st.labels.release_held(), dead)
        return dead

    # ---- inference ------------------------------------------------------------------------------

    def _inference(self, view: Rows, summary: Summary, dead: list[Output]) -> None:
        """Dedupe the piece's predictions (taking back duplicates' counters), then let them wait."""
        p, rows = view.whole, view.rows
        fresh = self.state.recent.first_seen(p.hashes[rows], p.ts[rows])
        if fresh is not None:
            self._duplicates(p.take(rows[~fresh]), summary, dead)
            rows = rows[fresh]
            if not len(rows):
                return
        store = self.state.labels
        if store is not None:
            waiting = {"ts": p.ts[rows], "answered": p.status[rows] == STATUS_CODE["ok"],
                       **{k: v[rows] for k, v in p.predicted.items()}}
            for j, (codes, table) in enumerate(zip(p.codes, p.tables, strict=True)):
                waiting[f"code{j}"] = self._shard_codes(j, codes[rows], table)
            joined, rejected = store.add_predictions(p.hashes[rows], waiting)
            self._pairs(joined, summary)
            self._reject(rejected, dead)

    def _duplicates(self, p: InferencePiece, summary: Summary, dead: list[Output]) -> None:
        """Dead-letter repeated ids; their counters were added with the batch: take them back."""
        window = format_duration(int(self.state.recent.window_s))
        for j in range(len(p)):
            raw = p.payloads[j]
            error = f"duplicate: id {_id_of(raw)!r} was already seen within {window}"
            dead.append(("dead_letter", dead_letter(p.topic, p.partition, int(p.offsets[j]), "dedupe", error, raw,
                                                    model=self.plan.name, ts=to_rfc3339(float(p.ts[j])))))
        summary.counters["duplicates"] = summary.counters.get("duplicates", 0) + len(p)
        fold_inference(self.plan, summary, p, sign=-1.0)
        fold_messages(self.plan, summary, p.ts, valid=False)

    def _shard_codes(self, j: int, codes: np.ndarray, table: list[str]) -> np.ndarray:
        """The piece's codes of attribute j as this shard's stable codes (int16)."""
        known, values = self.state.codes[j], self.state.values[j]
        lookup = np.empty(len(table) + 1, np.int16)
        lookup[-1] = -1
        for k, value in enumerate(table):
            code = known.get(value)
            if code is None:
                if len(values) >= MAX_CODES - 1:
                    value = OTHER
                    code = known.get(OTHER)
                if code is None:
                    code = known[value] = len(values)
                    values.append(value)
            lookup[k] = code
        return lookup[codes]

    # ---- labels ---------------------------------------------------------------------------------

    def _pairs(self, joined: Joined | None, summary: Summary) -> None:
        """Count joined pairs in their prediction's slice of every key, from the tick they are known.

        A failed request (status error or timeout) gave no answer: its pair is counted as
        `unanswered`, not as a negative prediction, so an outage burns availability, not quality.
        """
        if joined is None or not len(joined):
            return
        store, plan = self.state.labels, self.plan
        assert store is not None
        ok = joined.pred["answered"]
        if not ok.all():
            store.counters["unanswered"] = store.counters.get("unanswered", 0) + int((~ok).sum())
            joined = joined.take(np.flatnonzero(ok))
            if not len(joined):
                return
        codes, tables = [], []
        for j in range(len(plan.attrs)):
            shard_codes = joined.pred[f"code{j}"].astype(np.int64)
            used = np.unique(shard_codes[shard_codes >= 0])
            local = np.searchsorted(used, shard_codes)
            codes.append(np.where(shard_codes >= 0, local, -1))
            tables.append([self.state.values[j][u] for u in used.tolist()])
        segs = segmentations(codes, summary.key_offsets(tables, plan.attrs), len(joined))
        known = np.maximum(joined.label_ts, joined.pred["ts"])
        summary.labelled.append(fold_cells(segs, joined.pred["ts"], plan.slices.labelled_cells(joined.pred,
                                                                                            joined.truth),
                                           plan.slices.labelled_ncols, plan.slices.labelled_base_s,
                                           tick=tick_of(known, plan.interval_s), tick_s=plan.interval_s))

    def _reject(self, rejected: Rejected, dead: list[Output]) -> None:
        for meta, reason in rejected:
            dead.append(("dead_letter", dead_letter(meta.topic, meta.partition, meta.offset, "label_join", reason,
                                                    meta.raw, model=self.plan.name, ts=to_rfc3339(meta.ts))))

    def _date(self, summary: Summary, source: str) -> None:
        """Rejected messages with no readable time and no valid event before them in their batch
        count at the newest event time their source had reached before the batch."""
        newest, _ = self.state.frontier.sources.get(source, (-math.inf, False))
        if math.isfinite(newest):
            fold_messages(self.plan, summary, np.full(summary.undated_rejections, newest), valid=False)
            summary.undated_rejections = 0

    def _labelled_from(self) -> float:
        """The oldest prediction time whose slice the judge's labelled ring surely still keeps.

        The judge's ticks trail this shard's watermark by the allowed lateness at least, and its
        ring keeps `span` before its tick: a pair older than that would be added to a released slice.
        """
        wm, layout = self.state.watermark, self.plan.slices.labelled_layout
        if not math.isfinite(wm) or layout is None:
            return -math.inf
        base, span = layout.base_s, layout.tiers[0].span_s
        return (math.floor((wm - self.plan.config.allowed_lateness_s - span) / base) + 1) * base

    # ---- time -----------------------------------------------------------------------------------

    def _advance(self, piece: Piece, dead: list[Output]) -> None:
        st, p = self.state, piece.progress
        st.frontier.update(p.source, p.newest, p.caught_up, p.arrival, self.plan.config.max_future_skew_s)
        wm = max(p.watermark, st.frontier.watermark())
        if p.clock is not None and st.frontier.all_caught_up():
            wm = max(wm, p.clock)
        if wm <= st.watermark:
            return
        st.watermark = wm
        st.recent.expire(wm)
        if st.labels is not None:
            self._reject(st.labels.expire(wm), dead)


def _id_of(raw: bytes) -> str:
    import orjson

    try:
        return str(orjson.loads(raw).get("id"))
    except (orjson.JSONDecodeError, AttributeError):
        return "?"


__all__ = ["Shard", "ShardState"]
