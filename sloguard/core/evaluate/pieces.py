"""A parsed batch, cut into one compact `Piece` per (model, shard), ready to cross workers.

This runs in the stateless parse step, on whichever worker read the batch, so the per-event work
that needs no keyed state happens where the data already is:

* ids become 64-bit hashes (`idhash.py`), and each prediction and label goes to shard
  `hash % shards`, so an id's duplicates and its label meet its prediction in one shard;
* everything a shard needs of an event becomes numpy columns: times, status, latency, lag, score,
  segment values as codes into a small table, what the model predicted (per confusion block),
  drift bins and selection cells, and the raw payloads as one byte string (for dead letters);
* what needs no shard state at all (feature-pipeline events, rejected messages) is folded into a
  `Summary` here and rides along with one shard's piece.

Every piece carries the batch's progress, and every batch yields a piece for every shard (most
empty), so each shard, and the judge per shard, learns how far each source has got.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from sloguard.core.evaluate.idhash import id_hashes, shard_of
from sloguard.core.evaluate.plan import ModelPlan
from sloguard.core.evaluate.ratio_sli import ratio_flags
from sloguard.core.evaluate.summary import (
    Progress,
    SketchPart,
    Summary,
    fold_cells,
    fold_rows,
    newest_per_key,
    segmentations,
)
from sloguard.core.messages.batch import FeatureColumns, InferenceColumns, LabelColumns, as_numbers
from sloguard.core.messages.events import STATUS_CODE
from sloguard.core.stats.quality import label_positive
from sloguard.core.stats.sketch import LogHistogram


@dataclass(frozen=True)
class RaggedBytes:
    """Many byte strings as one: `blob[ends[j-1]:ends[j]]` is string j (pickles as one copy)."""

    blob: bytes
    ends: np.ndarray

    @classmethod
    def of(cls, values: list[bytes]) -> RaggedBytes:
        return cls(b"".join(values), np.cumsum(np.fromiter(map(len, values), np.int64, len(values))))

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, j: int) -> bytes:
        return self.blob[(int(self.ends[j - 1]) if j else 0) : int(self.ends[j])]

    def take(self, rows: np.ndarray) -> RaggedBytes:
        """Strings `rows`, as one (a shard's payloads, when its piece is pickled to another worker)."""
        ends = self.ends[rows]
        starts = np.concatenate(([0], self.ends[:-1]))[rows]  # string j starts where j - 1 ends
        blob = self.blob
        return RaggedBytes(b"".join([blob[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]),
                           np.cumsum(ends - starts))


def intern(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Codes into a table of the distinct values, in order of first appearance; None -> -1."""
    table = {v: i for i, v in enumerate(dict.fromkeys(values))}
    codes = np.fromiter(map(table.__getitem__, values), np.int64, len(values))
    values_ = list(table)
    if None in table:
        none = table[None]
        codes[codes == none] = -1
        codes[codes > none] -= 1
        values_.remove(None)
    return codes, values_


def _compact(codes: np.ndarray, table: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Drop table values no code uses (after a piece took a subset of rows)."""
    used = np.unique(codes[codes >= 0])
    if len(used) == len(table):
        return codes, table
    remap = np.full(len(table) + 1, -1, np.int64)
    remap[used] = np.arange(len(used))
    return remap[codes], [table[i] for i in used.tolist()]


@dataclass
class InferencePiece:
    """One shard's predictions of one batch, as columns (see the module docstring)."""

    hashes: np.ndarray
    ts: np.ndarray
    status: np.ndarray
    latency_ms: np.ndarray
    lag_s: np.ndarray
    n_missing: np.ndarray
    score: np.ndarray
    codes: list[np.ndarray]  # per segment attribute: code into `tables[a]`, -1 when absent
    tables: list[list[str]]
    version_codes: np.ndarray
    versions: list[str]
    predicted: dict[str, np.ndarray]  # per labelled block: the prediction as the block reads it
    live_cells: list[tuple[np.ndarray, np.ndarray | None]]
    payloads: RaggedBytes
    offsets: np.ndarray
    topic: str = ""
    partition: int = 0
    ratio_flags: dict[str, np.ndarray] = field(default_factory=dict)  # "slo:good"/"slo:total" (ratio_sli.py)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: np.ndarray) -> InferencePiece:
        """The rows at positions `rows`, with key tables reduced to the values they use."""
        codes, tables = zip(*(_compact(c[rows], t) for c, t in zip(self.codes, self.tables, strict=True)),
                            strict=True) if self.codes else ((), ())
        vcodes, versions = _compact(self.version_codes[rows], self.versions)
        cells = [(c[rows], None if w is None else w[rows]) for c, w in self.live_cells]
        arrays = {f.name: getattr(self, f.name)[rows] for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray) and f.name != "version_codes"}
        return replace(self, **arrays, codes=list(codes), tables=list(tables), version_codes=vcodes,
                       versions=versions, predicted={k: v[rows] for k, v in self.predicted.items()},
                       live_cells=cells, payloads=self.payloads.take(rows),
                       ratio_flags={k: v[rows] for k, v in self.ratio_flags.items()})


@dataclass
class LabelPiece:
    """One shard's labels of one batch: id hashes, times, the label as each truth column reads it."""

    hashes: np.ndarray
    ts: np.ndarray
    truth: dict[str, np.ndarray]
    payloads: RaggedBytes
    offsets: np.ndarray
    topic: str = ""
    partition: int = 0

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: np.ndarray) -> LabelPiece:
        return replace(self, hashes=self.hashes[rows], ts=self.ts[rows],
                       truth={k: v[rows] for k, v in self.truth.items()}, payloads=self.payloads.take(rows),
                       offsets=self.offsets[rows])


@dataclass
class Rows:
    """Some rows of a batch's columns, without copying them: a shard's share of the batch.

    In one process a piece points into the batch's columns; pickled to another worker it carries
    only its own rows (`__reduce__` takes them), so nothing is copied unless it must travel.
    """

    whole: Any  # InferencePiece | LabelPiece
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __reduce__(self) -> tuple:
        return Rows, (self.whole.take(self.rows), np.arange(len(self.rows)))

    def col(self, name: str) -> np.ndarray:
        return getattr(self.whole, name)[self.rows]


@dataclass
class Piece:
    """Everything one batch holds for one (model, shard)."""

    model: str
    shard: int
    progress: Progress
    inference: Rows | None = None  # rows of an InferencePiece
    labels: Rows | None = None  # rows of a LabelPiece
    pre: Summary | None = None  # folded in the parse step: feature events, label messages, rejections


# ---- building pieces ----------------------------------------------------------------------------


def inference_piece(plan: ModelPlan, cols: InferenceColumns) -> InferencePiece:
    codes, tables = zip(*(intern(v) for v in cols.segments), strict=True) if cols.segments else ((), ())
    vcodes, versions = intern(cols.versions)
    return InferencePiece(
        hashes=id_hashes(cols.ids), ts=cols.ts, status=cols.status, latency_ms=cols.latency_ms, lag_s=cols.lag_s,
        n_missing=cols.n_missing, score=cols.score, codes=list(codes), tables=list(tables), version_codes=vcodes,
        versions=versions, predicted=plan.slices.prediction_columns(cols), live_cells=plan.slices.live_cells(cols),
        payloads=RaggedBytes.of(cols.raw), offsets=np.asarray(cols.offsets, np.int64), topic=cols.topic,
        partition=cols.partition, ratio_flags=ratio_flags(plan.slos, cols, plan.attrs),
    )


def label_piece(plan: ModelPlan, cols: LabelColumns) -> LabelPiece:
    truth: dict[str, np.ndarray] = {}
    for block in plan.slices.labelled.values():
        if block.kind == "confusion" and f"positive:{block.positive}" not in truth:
            truth[f"positive:{block.positive}"] = label_positive(cols.labels, block.positive)
        elif block.kind == "regression":
            truth["number"] = as_numbers(cols.labels)
    return LabelPiece(id_hashes(cols.ids), cols.ts, truth, RaggedBytes.of(cols.raw),
                      np.asarray(cols.offsets, np.int64), cols.topic, cols.partition)


def fold_features(plan: ModelPlan, summary: Summary, cols: FeatureColumns) -> None:
    """ml.features events: freshness counters (per segment when events carry one), lag sketches."""
    codes, tables = zip(*(intern(v) for v in cols.segments), strict=True) if cols.segments else ((), ())
    segs = segmentations(list(codes), summary.key_offsets(list(tables), plan.attrs), len(cols))
    summary.windows.append(fold_rows(segs, cols.ts, plan.layout.feature_matrix(cols), plan.interval_s))
    summary.newest += newest_per_key(segs, cols.ts, plan.interval_s, None, None)
    for i, slo in plan.quantile_slos:
        if slo.sli.params.get("source") == "features":
            summary.sketches += sketch_parts(i, slo.budgeting.slice_s, cols.ts, cols.lag_s, segs)


def fold_messages(plan: ModelPlan, summary: Summary, ts: np.ndarray, valid: bool) -> None:
    """Messages that count only toward the schema SLI of the whole model (labels, rejections)."""
    if not len(ts):
        return
    row = plan.layout.message_vector(1 if valid else 0, 0 if valid else 1)
    summary.windows.append(fold_rows(segmentations([], [], len(ts)), ts, np.tile(row, (len(ts), 1)),
                                     plan.interval_s))


def fold_rejections(plan: ModelPlan, summary: Summary, ts: np.ndarray) -> None:
    """Rejected messages: at their own time when readable, else at the judge's event time."""
    undated = np.isnan(ts)
    summary.undated_rejections += int(undated.sum())
    fold_messages(plan, summary, ts[~undated], valid=False)


_SKETCH = LogHistogram()


def sketch_parts(slo: int, width_s: int, ts: np.ndarray, values: np.ndarray, segs: list) -> list[SketchPart]:
    """Sparse sketch buckets of `values` per (key, slice of `width_s`) for one quantile SLO."""
    ok = ~np.isnan(values)
    if not ok.any():
        return []
    ts, idx = ts[ok], _SKETCH.bucket_index(values[ok])
    sl = np.floor(ts / width_s).astype(np.int64)
    out: list[SketchPart] = []
    for codes, offset in segs:
        c = codes[ok]
        has = c >= 0
        if not has.any():
            continue
        s0 = int(sl[has].min())
        ns = int(sl[has].max()) - s0 + 1
        group = (c[has] * ns + (sl[has] - s0)) * _SKETCH.n_buckets + idx[has]
        cells, counts = np.unique(group, return_counts=True)
        keyslice, bucket = np.divmod(cells, _SKETCH.n_buckets)
        bounds = np.flatnonzero(np.r_[True, keyslice[1:] != keyslice[:-1], True])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            key, s = divmod(int(keyslice[a]), ns)
            out.append(SketchPart(key + offset, slo, float((s0 + s) * width_s), bucket[a:b], counts[a:b]))
    return out


def fold_inference(plan: ModelPlan, summary: Summary, p: InferencePiece, sign: float = 1.0) -> None:
    """Predictions' counters per key and interval, drift and selection cells, latency and lag
    sketches, newest event per key. `sign=-1` takes back what duplicates added."""
    segs = segmentations(p.codes, summary.key_offsets(p.tables, plan.attrs), len(p))
    matrix = plan.layout.inference_matrix(p)
    summary.windows.append(fold_rows(segs, p.ts, matrix if sign > 0 else -matrix, plan.interval_s))
    if sign > 0:
        summary.first_ts = min(summary.first_ts, float(p.ts.min()))
        summary.newest += newest_per_key(segs, p.ts, plan.interval_s, p.version_codes, p.versions)
    if plan.slices.live:
        cells = p.live_cells if sign > 0 else [(c, -np.ones(len(c)) if w is None else -w) for c, w in p.live_cells]
        summary.live.append(fold_cells(segs, p.ts, cells, plan.slices.live_ncols, plan.slices.live_base_s))
    if plan.labelled:  # answered predictions per labelled slice, from their tick: the labels' denominator
        col = np.where(p.status == STATUS_CODE["ok"], plan.slices.predictions_col, -1)
        summary.labelled.append(fold_cells(segs, p.ts, [(col, None if sign > 0 else -np.ones(len(col)))],
                                           plan.slices.labelled_ncols, plan.slices.labelled_base_s,
                                           tick=tick_of(p.ts, plan.interval_s), tick_s=plan.interval_s))
    for i, slo in plan.quantile_slos:
        if slo.sli.params.get("source", "inference") != "inference":
            continue
        if slo.sli.kind == "latency_quantile":
            mask = p.status != STATUS_CODE["error"]  # a failed request has no latency to judge
            values = p.latency_ms
        elif slo.sli.kind == "threshold_quantile":
            values = p.ratio_flags[f"{slo.name}:value"]
            mask = ~np.isnan(values)
        else:
            values = p.lag_s
            mask = ~np.isnan(values)
        parts = sketch_parts(i, slo.budgeting.slice_s, p.ts[mask], values[mask], [(c[mask], o) for c, o in segs])
        summary.sketches += parts if sign > 0 else [replace(x, counts=-x.counts) for x in parts]


def route(plan: ModelPlan, progress: Progress, inference: InferenceColumns | None, labels: LabelColumns | None,
          features: FeatureColumns | None, rejected_ts: np.ndarray | None) -> list[Piece]:
    """Cut one batch's events of `plan`'s model into a `Piece` per shard (see the module docstring).

    What needs no shard state is folded here, once per batch, into a `Summary` that rides with one
    shard's piece: the predictions' counters (a shard later takes back those of duplicates, which
    are rare), feature-pipeline events, label and rejected messages.
    """
    shards = plan.shards
    pieces = [Piece(plan.name, s, progress) for s in range(shards)]
    # no id to route the batch's own summary by: one shard per batch, spread by where it came from
    s0 = (zlib.crc32(progress.source.encode()) + int(progress.newest if math.isfinite(progress.newest) else 0)
          ) % shards
    pre = Summary(plan.name, s0)
    if inference is not None and len(inference):
        whole = inference_piece(plan, inference)
        fold_inference(plan, pre, whole)
        _split(pieces, shard_of(whole.hashes, shards), whole, "inference")
    if labels is not None and len(labels):
        if plan.labelled:
            lp = label_piece(plan, labels)
            _split(pieces, shard_of(lp.hashes, shards), lp, "labels")
        fold_messages(plan, pre, labels.ts, valid=True)
    if features is not None and len(features):
        fold_features(plan, pre, features)
    if rejected_ts is not None and len(rejected_ts):
        fold_rejections(plan, pre, np.asarray(rejected_ts, np.float64))
    pieces[s0].pre = pre
    return pieces


def _split(pieces: list[Piece], shard: np.ndarray, whole: InferencePiece | LabelPiece, kind: str) -> None:
    if len(pieces) == 1:
        setattr(pieces[0], kind, Rows(whole, np.arange(len(whole))))
        return
    order = np.argsort(shard, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(len(pieces) + 1))
    for s, piece in enumerate(pieces):
        if bounds[s + 1] > bounds[s]:
            setattr(piece, kind, Rows(whole, order[bounds[s] : bounds[s + 1]]))


def tick_of(known: np.ndarray, interval_s: int) -> np.ndarray:
    """The first tick strictly after each time: a pair known at `t` counts from there."""
    return (np.floor(known / interval_s) + 1) * interval_s


__all__ = ["Piece", "RaggedBytes", "Rows", "fold_inference", "intern", "route", "tick_of"]
