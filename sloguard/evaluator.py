"""The state of one model: windows per segment key, event-time ticks, budgets and alerts.

`ModelEvaluator` is what the dataflow keeps per model. It takes `ModelBatch`es (a parsed
batch's columns for this model, plus the batch's event-time watermark), folds them into each
key's windows, and each time event time passes a tick (every `evaluation_interval`, once
`allowed_lateness` has gone by) it judges finished time slices, computes every SLO's budget and
burn rates for every key and emits `budget` events and `alert` transitions. It never reads the
clock: time comes from the events (replay) or from `advance(now)` (a live runner's wall clock).

Keys: the whole model (`segment == {}`) plus one key per value of each configured segment
attribute (`{"region": "eu"}`). At most `MAX_VALUES_PER_ATTRIBUTE` values are tracked per
attribute; later ones share the key `{"<attr>": "(other)"}` so a high-cardinality attribute
cannot exhaust memory.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sloguard.aggregate import EVENTS, ModelLayout, group_slices, group_sum, whole_model_only
from sloguard.alerts import BUDGET_EXHAUSTED, NO_DATA, AlertBook, alert_id, rule_holds
from sloguard.batch import FeatureColumns, InferenceColumns, LabelColumns, ParsedBatch, Rejections
from sloguard.budget import budget_remaining, burn_rate, health_score
from sloguard.config import Config, Slo
from sloguard.dedupe import RecentIds
from sloguard.drift import FeatureDrift, reference_from_dict
from sloguard.events import STATUS_CODE, DeadLetter
from sloguard.frontier import SourceFrontier
from sloguard.labels import Joined, LabelJoin, LabelMeta
from sloguard.sketch import LogHistogram
from sloguard.sli import METRIC
from sloguard.slices import (
    BAD,
    VERDICT_CODE,
    VERDICT_NAME,
    SliceLayout,
    add_cells,
    drift_family,
    explain,
    judge_slice,
)
from sloguard.timeutil import format_duration, to_rfc3339
from sloguard.windows import Windows

MAX_VALUES_PER_ATTRIBUTE = 200
OTHER = "(other)"

Output = tuple[str, dict[str, Any]]  # ("budget" | "alert" | "dead_letter", message)


@dataclass
class ModelBatch:
    """What one parsed batch holds for one model, and how far event time has got overall."""

    model: str
    watermark: float  # event time all inputs have passed, when the source knows it (else -inf)
    inference: InferenceColumns | None = None
    labels: LabelColumns | None = None
    features: FeatureColumns | None = None
    rejections: Rejections | None = None
    source: str = ""  # progress report of the source the batch came from (frontier.py)
    newest: float = -math.inf
    caught_up: bool = False
    clock: float | None = None


def split_by_model(parsed: ParsedBatch, models: list[str]) -> list[tuple[str, ModelBatch]]:
    """One `ModelBatch` per configured model: silent models still get the watermark."""
    return [
        (
            m,
            ModelBatch(
                m,
                parsed.watermark,
                parsed.inference.get(m),
                parsed.labels.get(m),
                parsed.features.get(m),
                parsed.rejections.get(m),
                parsed.source,
                parsed.max_ts,
                parsed.caught_up,
                parsed.clock,
            ),
        )
        for m in models
    ]


class KeyState:
    """Windows, open time slices and per-slice counts (slices.py) of one segment key."""

    __slots__ = (
        "details",
        "dirty",
        "key",
        "labelled",
        "last_ts",
        "live",
        "segment",
        "sketches",
        "value_start",
        "values",
        "version",
        "windows",
    )

    def __init__(
        self,
        key: str,
        segment: dict[str, str],
        windows: Windows,
        rings: tuple[Windows | None, Windows | None] = (None, None),
    ) -> None:
        self.key = key
        self.segment = segment
        self.windows = windows
        self.sketches: dict[tuple[int, float], LogHistogram] = {}
        self.values: dict[int, float | None] = {}
        self.version: str | None = None
        self.last_ts = -math.inf
        self.labelled, self.live = rings
        self.dirty: set[float] = set()  # labelled ring buckets that got labels since the last tick
        self.details: dict[int, Any] = {}  # SLO index -> what explains the newest judged slice
        self.value_start: dict[int, float] = {}  # SLO index -> start of the slice `values` holds


def _take_pairs(joined: Joined, rows: np.ndarray) -> Joined:
    return Joined({k: v[rows] for k, v in joined.pred.items()}, [joined.labels[i] for i in rows], joined.label_ts[rows])


def segment_key(segment: dict[str, str]) -> str:
    """`""` for the whole model, `attr=value` for a segment key."""
    return ",".join(f"{k}={v}" for k, v in segment.items())


class ModelEvaluator:
    """Keyed state and evaluation of one model's SLOs; snapshot-able, deterministic."""

    def __init__(
        self, config: Config, model: str, state: dict[str, Any] | None = None, sources: Iterable[str] = ()
    ) -> None:
        self.config = config
        self.layout = ModelLayout(config, model)
        self.model = model
        self.slos = self.layout.slos
        self.interval_s = config.evaluation_interval_s
        self._quantile_slos = [
            (i, s) for i, s in enumerate(self.slos) if s.sli.kind in ("latency_quantile", "freshness_quantile")
        ]
        self._burn_windows = [
            sorted({x for r in s.rules for x in (r.long_window_s, r.short_window_s)}) for s in self.slos
        ]
        self._label = {w: format_duration(w) for w in self.layout.windows}
        self._longest_slice_s = max((s.budgeting.slice_s for s in self.slos), default=0)
        model_cfg = self.layout.model
        self.references = {f: reference_from_dict(d) for f, d in model_cfg.reference.items()}
        self.slices = SliceLayout(model_cfg, self.slos, config.allowed_lateness_s, self.references)
        self._sliced = [(i, s) for i, s in enumerate(self.slos) if i in self.slices.blocks]
        labelled_slices = [s.budgeting.slice_s for _, s in self._sliced if s.sli.spec.labelled]
        self._rejudge_s = max(self.interval_s, min([300, *labelled_slices]) // self.interval_s * self.interval_s)
        self.slice_log: dict[tuple[int, float], tuple[float, str]] | None = None  # set by baseline.py
        self._drift_cache: dict[tuple[int, float], dict[str, list[FeatureDrift]]] = {}
        self._retention_s = max(config.longest_window_s, self.layout.model.no_data_after_s)
        if state is None:
            state = {
                "watermark": -math.inf,
                "next_tick": None,
                "keys": {"": KeyState("", {}, self._windows(), self.slices.new_rings())},
                "codes": {a: {None: -1} for a in self.layout.model.segments},
                "by_code": {a: [] for a in self.layout.model.segments},
                "book": AlertBook(),
                "recent": RecentIds(config.dedupe_window_s),
                "counters": {"duplicates": 0, "late_slice_values": 0},
                "first_ts": math.inf,  # earliest inference event: silence counts only after it
                "frontier": SourceFrontier(sources),
                "labels": LabelJoin(
                    model_cfg.label_delay_s,
                    model_cfg.max_pending_labels,
                    max(config.allowed_lateness_s, self.interval_s),
                )
                if self.slices.labelled
                else None,
            }
        self.state = state

    @classmethod
    def from_snapshot(cls, config: Config, model: str, snapshot: dict[str, Any]) -> ModelEvaluator:
        """Rebuild from `snapshot()`; continuing gives the same outputs as never stopping."""
        return cls(config, model, copy.deepcopy(snapshot))

    def snapshot(self) -> dict[str, Any]:
        """An independent, picklable copy of the whole state (no side effects)."""
        return copy.deepcopy(self.state)

    def _windows(self) -> Windows:
        return Windows(self.layout.window_layout, self.layout.ncols)

    # ---- ingest -------------------------------------------------------------------------------

    def process(self, batch: ModelBatch) -> list[Output]:
        """Fold one batch into the windows, then evaluate every tick event time has passed."""
        out: list[Output] = []
        whole = self.state["keys"][""]
        if batch.inference is not None and len(batch.inference):
            self._ingest_inference(self._dedupe(batch.inference, out), out)
        if batch.features is not None and len(batch.features):
            self._ingest_features(batch.features)
        if batch.labels is not None and len(batch.labels):
            self._add_messages(whole, batch.labels.ts, valid=True)
            if self.state["labels"] is not None:
                self.state["labels"].oldest = self._labelled_from()
                joined, rejected = self.state["labels"].add_labels(batch.labels)
                self._count_joined(joined)
                self._reject_labels(rejected, out)
        frontier = self.state["frontier"]
        if batch.source:
            frontier.update(batch.source, batch.newest, batch.caught_up)
        watermark = max(batch.watermark, frontier.watermark())
        if batch.clock is not None and frontier.all_caught_up():
            watermark = max(watermark, batch.clock)
        if batch.rejections is not None and len(batch.rejections):
            self._add_rejections(whole, np.asarray(batch.rejections.ts, float), watermark)
        self._advance(watermark, out, final=False)
        return out

    def _add_rejections(self, whole: KeyState, ts: np.ndarray, watermark: float) -> None:
        """Count rejected messages toward the schema SLI, undated ones at the current event time."""
        now = self.state["watermark"] if math.isfinite(self.state["watermark"]) else watermark
        if not math.isfinite(now):
            now = self.state["frontier"].newest()
        ts = np.where(np.isnan(ts), now, ts)
        undated = ~np.isfinite(ts)
        if undated.any():  # no event time known at all yet: count them, they cannot be placed in time
            self.state["counters"]["undated_rejections"] = self.state["counters"].get("undated_rejections", 0) + int(
                undated.sum()
            )
            ts = ts[~undated]
        if len(ts):
            self._add_messages(whole, ts, valid=False)

    def advance(self, now: float) -> list[Output]:
        """Move event time to `now` (a live runner's clock) and evaluate the ticks it passes."""
        out: list[Output] = []
        self._advance(now, out, final=False)
        return out

    def finish(self) -> list[Output]:
        """End of input (replay): evaluate every tick up to the last event time seen.

        Labels still held for a prediction that never came are dead-lettered: no more will come.
        """
        out: list[Output] = []
        self._advance(max(self.state["watermark"], self.state["frontier"].newest()), out, final=True)
        if self.state["labels"] is not None:
            self._reject_labels(self.state["labels"].release_held(), out)
        return out

    def _dedupe(self, cols: InferenceColumns, out: list[Output]) -> InferenceColumns:
        recent = self.state["recent"]
        fresh = recent.first_seen(cols.ids, float(cols.ts.max()))
        if fresh is None:
            return cols
        keep = np.asarray(fresh)
        dup_ts = []
        for i in np.flatnonzero(~keep):
            out.append(
                (
                    "dead_letter",
                    DeadLetter(
                        cols.topic,
                        cols.partition,
                        cols.offsets[i],
                        f"duplicate: id {cols.ids[i]!r} was already seen within "
                        f"{format_duration(int(recent.window_s))}",
                        cols.raw[i],
                        self.model,
                        float(cols.ts[i]),
                    ).to_dict(),
                )
            )
            dup_ts.append(float(cols.ts[i]))
        self.state["counters"]["duplicates"] += len(dup_ts)
        self._add_messages(self.state["keys"][""], np.asarray(dup_ts), valid=False)
        return cols.take(np.flatnonzero(keep))

    def _segmentations(self, n: int, segments: list[list[str | None]]) -> list[tuple[np.ndarray, list[KeyState]]]:
        """Per segmentation (whole model, then each attribute): a key code per event, and the keys."""
        whole = self.state["keys"][""]
        segs = [(np.zeros(n, np.int64), [whole])]
        for attr, values in zip(self.layout.model.segments, segments, strict=True):
            known = list(map(self.state["codes"][attr].get, values))  # None: a value not seen before
            if None in known:
                known = [self._code_for(attr, v) if c is None else c for c, v in zip(known, values, strict=True)]
            codes = np.array(known, np.int64)
            segs.append((codes, self.state["by_code"][attr]))
        return segs

    def _code_for(self, attr: str, value: str) -> int:
        index, states = self.state["codes"][attr], self.state["by_code"][attr]
        if value in index:
            return index[value]
        if len(states) >= MAX_VALUES_PER_ATTRIBUTE:
            if OTHER not in index:
                index[OTHER] = self._new_key(attr, OTHER)
            if len(index) < 4 * MAX_VALUES_PER_ATTRIBUTE:  # remember a few overflow values, not all
                index[value] = index[OTHER]
            return index[OTHER]
        index[value] = self._new_key(attr, value)
        return index[value]

    def _new_key(self, attr: str, value: str) -> int:
        segment = {attr: value}
        state = KeyState(segment_key(segment), segment, self._windows(), self.slices.new_rings())
        self.state["keys"][state.key] = state
        self.state["by_code"][attr].append(state)
        return len(self.state["by_code"][attr]) - 1

    def _ingest_inference(self, cols: InferenceColumns, out: list[Output]) -> None:
        if not len(cols):
            return
        self.state["first_ts"] = min(self.state["first_ts"], float(cols.ts.min()))
        segs = self._segmentations(len(cols), cols.segments)
        self._add_rows(cols.ts, self.layout.inference_matrix(cols), segs)
        self._touch(segs, cols.ts, cols.versions)
        if self.slices.live:
            rings = [[s.live for s in states] for _, states in segs]
            add_cells(
                rings,
                [c for c, _ in segs],
                cols.ts,
                self.slices.live_base_s,
                self.slices.live_ncols,
                self.slices.live_cells(cols),
            )
        join = self.state["labels"]
        if join is not None:
            waiting = {"ts": cols.ts, "answered": cols.status == STATUS_CODE["ok"]}
            waiting.update(self.slices.prediction_columns(cols))
            for j, (codes, _) in enumerate(segs[1:]):
                waiting[f"code{j}"] = codes.astype(np.int32)
            join.oldest = self._labelled_from()
            joined = join.add_predictions(cols.ids, waiting)
            if joined is not None:
                self._count_joined(joined)
        for i, slo in self._quantile_slos:
            if slo.sli.params.get("source", "inference") != "inference":
                continue
            if slo.sli.kind == "latency_quantile":
                mask = cols.status != STATUS_CODE["error"]
                values = cols.latency_ms
            else:
                values = cols.lag_s
                mask = ~np.isnan(values)
            self._sketch(i, slo, cols.ts[mask], values[mask], [(c[mask], s) for c, s in segs])

    def _labelled_from(self) -> float:
        """The start of the oldest slice the labelled rings still keep: older pairs cannot count."""
        ring = self.state["keys"][""].labelled
        return -math.inf if ring is None else float(ring.keep_from[0] * self.slices.labelled_base_s)

    def _count_joined(self, joined: Joined) -> None:
        """Count label/prediction pairs in the prediction's slice of every key it belongs to.

        A failed request (status error or timeout) gave no answer: its pair is counted as
        `unanswered`, not as a negative prediction, so an outage burns availability, not quality.
        """
        if not len(joined):
            return
        answered = joined.pred["answered"]
        if not answered.all():
            self.state["labels"].counters["unanswered"] = self.state["labels"].counters.get("unanswered", 0) + int(
                (~answered).sum()
            )
            joined = _take_pairs(joined, np.flatnonzero(answered))
            if not len(joined):
                return
        # A pair is known from the later of its label's and its prediction's event time. Pairs known
        # after the next tick wait for it, so a slice's verdict depends on event time only, never on
        # how the inputs were batched (replay, Kafka, several workers agree).
        known = np.maximum(joined.label_ts, joined.pred["ts"])
        next_tick = self.state["next_tick"]
        if next_tick is not None and (known >= next_tick).any():
            later = known >= next_tick
            self.state.setdefault("staged", []).append(_take_pairs(joined, np.flatnonzero(later)))
            joined = _take_pairs(joined, np.flatnonzero(~later))
            if not len(joined):
                return
        self._apply_pairs(joined)

    def _apply_staged(self, tick: float) -> None:
        """Count the staged pairs known before `tick`."""
        staged = self.state.get("staged")
        if not staged:
            return
        keep = []
        for joined in staged:
            known = np.maximum(joined.label_ts, joined.pred["ts"])
            now = known < tick
            if now.any():
                self._apply_pairs(_take_pairs(joined, np.flatnonzero(now)))
            if not now.all():
                keep.append(_take_pairs(joined, np.flatnonzero(~now)))
        self.state["staged"] = keep

    def _apply_pairs(self, joined: Joined) -> None:
        whole = self.state["keys"][""]
        codes = [np.zeros(len(joined), np.int64)]
        states: list[list[KeyState]] = [[whole]]
        for j, attr in enumerate(self.layout.model.segments):
            codes.append(joined.pred[f"code{j}"].astype(np.int64))
            states.append(self.state["by_code"][attr])
        hits = add_cells(
            [[s.labelled for s in st] for st in states],
            codes,
            joined.pred["ts"],
            self.slices.labelled_base_s,
            self.slices.labelled_ncols,
            self.slices.labelled_cells(joined.pred, joined.labels),
        )
        for seg, code, start in hits:
            states[seg][code].dirty.add(start)

    def _reject_labels(self, rejected: list[tuple[LabelMeta, str]], out: list[Output]) -> None:
        for meta, reason in rejected:
            out.append(
                (
                    "dead_letter",
                    DeadLetter(
                        meta.topic, meta.partition, meta.offset, reason, meta.raw, self.model, meta.ts
                    ).to_dict(),
                )
            )

    def _ingest_features(self, cols: FeatureColumns) -> None:
        """ml.features events: freshness from the pipeline, per segment when events carry one."""
        segs = self._segmentations(len(cols), cols.segments)
        self._add_rows(cols.ts, self.layout.feature_matrix(cols), segs)
        self._touch(segs, cols.ts, None)
        for i, slo in self._quantile_slos:
            if slo.sli.params.get("source") == "features":
                self._sketch(i, slo, cols.ts, cols.lag_s, segs)

    @staticmethod
    def _touch(segs: list[tuple[np.ndarray, list[KeyState]]], ts: np.ndarray, versions: list[str] | None) -> None:
        """Record each key's newest event time (and model version): the last row of each code."""
        for codes, states in segs:
            uniq, first_from_end = np.unique(codes[::-1], return_index=True)
            for code, j in zip(uniq.tolist(), (len(codes) - 1 - first_from_end).tolist(), strict=True):
                if code >= 0:
                    st = states[code]
                    st.last_ts = max(st.last_ts, float(ts[j]))
                    if versions is not None:
                        st.version = versions[j]

    def _add_rows(self, ts: np.ndarray, matrix: np.ndarray, segs: list[tuple[np.ndarray, list[KeyState]]]) -> None:
        """Sum the rows per (key, interval) and merge each sum into that key's windows."""
        base = self.interval_s
        bucket = np.floor(ts / base).astype(np.int64)
        b0 = int(bucket.min())
        off = bucket - b0
        nb = int(off.max()) + 1
        for codes, states in segs:
            valid = codes >= 0
            if not valid.any():
                continue
            gids, sums = group_sum(codes[valid] * nb + off[valid], matrix[valid])
            for gid, vec in zip(gids.tolist(), sums, strict=True):
                code, b = divmod(gid, nb)
                states[code].windows.add((b0 + b) * base, vec)

    def _add_messages(self, whole: KeyState, ts: np.ndarray, valid: bool) -> None:
        base = self.interval_s
        gids, counts = group_sum(np.floor(ts / base).astype(np.int64), np.ones((len(ts), 1)))
        for b, n in zip(gids.tolist(), counts[:, 0].tolist(), strict=True):
            vec = self.layout.message_vector(n if valid else 0, 0 if valid else n)
            whole.windows.add(b * base, vec)

    def _sketch(
        self,
        i: int,
        slo: Slo,
        ts: np.ndarray,
        values: np.ndarray,
        segs: list[tuple[np.ndarray, list[KeyState]]],
    ) -> None:
        """Add values to the open slice sketches of every key; slices already judged are skipped."""
        if not len(ts):
            return
        width = slo.budgeting.slice_s
        sl = np.floor(ts / width).astype(np.int64)
        s0 = int(sl.min())
        off = sl - s0
        ns = int(off.max()) + 1
        next_tick = self.state["next_tick"]
        for codes, states in segs:
            valid = codes >= 0
            if not valid.any():
                continue
            order, gids, parts = group_slices(codes[valid] * ns + off[valid])
            vals = values[valid][order]
            for gid, part in zip(gids.tolist(), parts, strict=True):
                code, s = divmod(gid, ns)
                start = float((s0 + s) * width)
                if next_tick is not None and start + width < next_tick:
                    self.state["counters"]["late_slice_values"] += part.stop - part.start
                    continue
                sketch = states[code].sketches.get((i, start))
                if sketch is None:
                    sketch = states[code].sketches[(i, start)] = LogHistogram()
                sketch.add(vals[part])

    # ---- evaluation ---------------------------------------------------------------------------

    def _advance(self, watermark: float, out: list[Output], final: bool) -> None:
        st = self.state
        if watermark > st["watermark"]:
            st["watermark"] = watermark
        if st["next_tick"] is None:
            first = st["first_ts"]
            if not math.isfinite(first):
                return
            st["next_tick"] = (math.floor(first / self.interval_s) + 1) * self.interval_s
        limit = st["watermark"] - (0 if final else self.config.allowed_lateness_s)
        skip_to = limit - self._retention_s - self.interval_s
        if st["next_tick"] < skip_to:  # a long silence: ticks older than every window would be empty
            st["next_tick"] = math.ceil(skip_to / self.interval_s) * self.interval_s
        while st["next_tick"] <= limit:
            self._apply_staged(float(st["next_tick"]))
            self._evaluate(float(st["next_tick"]), out)
            st["next_tick"] += self.interval_s
        st["recent"].expire(st["watermark"])
        if st["labels"] is not None:
            self._reject_labels(st["labels"].expire(st["watermark"]), out)

    def _evaluate(self, t: float, out: list[Output]) -> None:
        self._ts_text = to_rfc3339(t)
        self._drift_cache = {}  # drift is judged once per slice for all keys together
        keys = self.state["keys"]
        for key in list(keys.values()):
            key.windows.release(t - self._longest_slice_s)  # timeslice SLOs read windows up to a slice back
            for ring in (key.labelled, key.live):
                if ring is not None:
                    ring.release(t)
            self._judge_slices(key, t)
            self._judge_sliced(key, t)
            if key.key and t - key.last_ts > self._retention_s:
                continue  # a segment silent for longer than every window: nothing left to report
            sums_at: dict[float, dict[int, list[float]]] = {}
            prefix = key.windows.prefixes()
            first = len(out)
            for i, slo in enumerate(self.slos):
                if key.key and whole_model_only(slo):
                    continue
                # Timeslice SLOs read their windows at the last slice boundary: between two judged
                # slices nothing new is known, and a window ending mid-slice would drop a bad slice.
                end = t if slo.sli.family != METRIC else t - t % slo.budgeting.slice_s
                if end not in sums_at:
                    # plain floats: the per-SLO arithmetic below indexes these a few dozen times
                    sums_at[end] = {w: v.tolist() for w, v in key.windows.sums(end, prefix).items()}
                self._evaluate_slo(key, i, slo, sums_at[end], t, out)
            if not key.key:
                self._health([m for kind, m in out[first:] if kind == "budget"])
        self._no_data(keys[""], t, out)

    def _health(self, events: list[dict[str, Any]]) -> None:
        """The composite health score of the model, attached to its whole-model budget events."""
        if not events:
            return
        health = health_score(
            [(e["dimension"], e["budget_remaining"]) for e in events], self.layout.model.health_weights
        )
        for e in events:
            e["health"] = health

    def _judge_slices(self, key: KeyState, t: float) -> None:
        """Judge the metric SLOs' slices that end at `t` (good, bad, or unjudged: too few samples)."""
        for i, slo in enumerate(self.slos):
            if slo.sli.family != METRIC or t % slo.budgeting.slice_s or i in self.slices.blocks:
                continue
            start = t - slo.budgeting.slice_s
            if slo.sli.kind == "data_quality":
                value, samples = self._data_quality(key, i, start, t)
            else:
                sketch = key.sketches.pop((i, start), None)
                samples = sketch.count if sketch is not None else 0
                value = sketch.quantile(slo.sli.params["quantile"]) if samples else math.nan
            if samples == 0 and not math.isfinite(key.last_ts):
                continue
            if samples < slo.budgeting.min_samples:
                verdict = "unjudged"
            else:
                good = value >= slo.objective if slo.sli.spec.direction == ">=" else value <= slo.objective
                verdict = "good" if good else "bad"
            if self.slice_log is not None and not key.key and samples:
                self.slice_log[(i, start)] = (float(value), verdict)
            key.values[i] = None if math.isnan(value) else round(float(value), 6)
            if samples:
                key.windows.add(start, self.layout.slice_vector(i, verdict))
        for k in [k for k in key.sketches if k[1] + self.slos[k[0]].budgeting.slice_s <= t]:
            del key.sketches[k]  # slices whose tick passed while the key was idle

    def _judge_sliced(self, key: KeyState, t: float) -> None:
        """Judge the slices of quality, fairness and drift SLOs ending at `t`, and re-judge older
        slices that late labels have changed (their verdict in the windows is replaced).

        Labels trickle into many old slices every minute; re-judging them every `_rejudge_s`
        (5 minutes, or the shortest labelled slice) keeps that cost flat at the price of a few
        minutes' delay on a verdict that labels change.
        """
        rejudge = t % self._rejudge_s == 0
        for i, slo in self._sliced:
            w = slo.budgeting.slice_s
            if slo.sli.spec.fairness and key.key:
                continue  # fairness compares the groups of the whole model
            starts = {t - w} if t % w == 0 else set()
            if slo.sli.spec.labelled and rejudge:
                starts |= {d - d % w for d in key.dirty if d - d % w + w <= t}
            for start in sorted(starts):
                self._judge_one(key, i, slo, start)
        if rejudge:
            key.dirty.clear()

    def _judge_one(self, key: KeyState, i: int, slo: Slo, start: float) -> None:
        labelled = slo.sli.spec.labelled
        ring = key.labelled if labelled else key.live
        if ring is None:
            return
        end = start + slo.budgeting.slice_s
        groups = None
        if slo.sli.spec.fairness:
            attr = slo.sli.params["attribute"]
            groups = {  # "(other)" pools unrelated values: not a group to compare
                s.segment[attr]: (s.labelled if labelled else s.live).span(start, end)  # type: ignore[union-attr]
                for s in self.state["by_code"][attr]
                if s.segment[attr] != OTHER
            }
        drift = None
        if slo.sli.spec.sliced == "drift":
            drift = self._drift_family(i, slo, start).get(key.key)
        j = judge_slice(slo, self.slices.blocks[i], ring.span(start, end), groups, drift)
        new = VERDICT_CODE[j.verdict] if j.samples else 0.0
        if self.slice_log is not None and not key.key and j.samples:
            self.slice_log[(i, start)] = (float(j.value), j.verdict)
        if labelled:
            col = self.slices.verdict_col[i]
            old = float(ring.span(start, start + self.slices.labelled_base_s)[col])
            if new != old:
                mark = np.zeros(self.slices.labelled_ncols)
                mark[col] = new - old
                ring.add(start, mark)
                change = self.layout.slice_vector(i, j.verdict) if new else np.zeros(self.layout.ncols)
                if old:
                    change = change - self.layout.slice_vector(i, VERDICT_NAME[old])
                key.windows.add(start, change)
        elif new:
            key.windows.add(start, self.layout.slice_vector(i, j.verdict))
        if j.verdict != "unjudged" and start >= key.value_start.get(i, -math.inf):
            key.value_start[i] = start
            key.values[i] = None if math.isnan(j.value) else round(float(j.value), 6)
            key.details[i] = j.details

    def _labelled_bad(self, key: KeyState, i: int, slo: Slo) -> tuple[float, dict[int, int]] | None:
        """Bad slices per burn window for a labelled SLO, read up to the newest slice labels judged.

        The newest slices wait for their labels; read at the current tick, a short window would only
        ever hold unjudged slices and no page could fire. So burn windows end where judgement has
        reached (`burn_rates_to` in budget events) and are read from the slice ring's verdicts.
        """
        start = key.value_start.get(i)
        ring = key.labelled
        if start is None or ring is None:
            return None
        end = start + slo.budgeting.slice_s
        span = ring.layout.tiers[0].span_s
        index = ring.index[0]
        verdicts = ring.counts[0][:, self.slices.verdict_col[i]]
        bad = index[(index >= 0) & (verdicts == BAD)] * self.slices.labelled_base_s
        return end, {w: int(((bad >= end - w) & (bad < end)).sum()) for w in self._burn_windows[i] if w <= span}

    def _drift_family(self, i: int, slo: Slo, start: float) -> dict[str, list[FeatureDrift]]:
        """Every key's drift results for one slice, judged as one family (cached for the tick)."""
        cached = self._drift_cache.get((i, start))
        if cached is None:
            end = start + slo.budgeting.slice_s
            counts = {k.key: k.live.span(start, end) for k in self.state["keys"].values() if k.live is not None}
            cached = drift_family(slo, self.slices.blocks[i], counts, self.references)
            self._drift_cache[(i, start)] = cached
        return cached

    def _data_quality(self, key: KeyState, i: int, start: float, end: float) -> tuple[float, int]:
        """The seed's data-quality score over [start, end): min(1 - missing rate, 1 - stale rate)."""
        expected, missing, known, stale = self.layout.columns[i].aux
        v = key.windows.span(start, end)
        samples = int(v[EVENTS])
        if samples == 0:
            return math.nan, 0
        missing_rate = v[missing] / v[expected] if v[expected] else 0.0
        stale_rate = v[stale] / v[known] if v[known] else 0.0
        return min(1 - missing_rate, 1 - stale_rate), samples

    def _evaluate_slo(
        self, key: KeyState, i: int, slo: Slo, sums: dict[int, list[float]], t: float, out: list[Output]
    ) -> None:
        c = self.layout.columns[i]
        eb = slo.error_budget
        w = sums[slo.window_s]
        if not any(w):
            return
        metric = slo.sli.family == METRIC
        labelled = self._labelled_bad(key, i, slo) if slo.sli.spec.labelled else None

        def counts(window_s: int) -> tuple[float, float]:
            """(bad, total) over a window: bad slices of all slices, or bad events of all."""
            if labelled is not None and window_s in labelled[1]:
                return labelled[1][window_s], window_s / slo.budgeting.slice_s
            v = sums[window_s]
            if metric:
                return v[c.total], window_s / slo.budgeting.slice_s
            return v[c.total] - v[c.good], v[c.total]

        bad, total = counts(slo.window_s)
        remaining = budget_remaining(bad, total, eb)
        windows = self._burn_windows[i]
        label = self._label
        burns = {ws: burn_rate(*counts(ws), eb) for ws in windows}
        burn_labels = {label[ws]: round(burns[ws], 4) for ws in windows}
        low_traffic = {}
        # the guard counts events; completeness counts each event's expected feature values
        per_event = max(1, len(self.layout.model.features)) if slo.sli.kind == "completeness" else 1
        for rule in slo.rules:
            holds = rule_holds(rule, burns[rule.long_window_s], burns[rule.short_window_s])
            if holds and not metric:
                seen = sums[rule.long_window_s][c.total] / per_event
                if seen < slo.min_events:
                    holds = False
                    low_traffic[rule.name] = {
                        "window": format_duration(rule.long_window_s),
                        "events": int(seen),
                        "min_events": slo.min_events,
                    }
            self._transition(
                key,
                slo,
                rule.name,
                rule.severity,
                holds,
                t,
                out,
                burn_labels,
                remaining,
                rule.burn_rate,
                rule.windows,
            )
        exhausted = remaining <= 0 and (metric or total / per_event >= slo.min_events)
        if remaining <= 0 and not exhausted:
            low_traffic[BUDGET_EXHAUSTED] = {
                "window": slo.window,
                "events": int(total / per_event),
                "min_events": slo.min_events,
            }
        self._transition(
            key,
            slo,
            BUDGET_EXHAUSTED,
            self.config.exhausted_severity,
            exhausted,
            t,
            out,
            burn_labels,
            remaining,
            None,
            None,
        )
        good = w[c.good]
        judged = w[c.good] + w[c.total] if metric else w[c.total]
        event: dict[str, Any] = {
            "type": "budget",
            "slo": slo.name,
            "dimension": slo.dimension,
            "model": self.model,
            "version": key.version,
            "segment": key.segment,
            "ts": self._ts_text,
            "sli": None if not judged else round(good / judged, 6),
            "objective": slo.objective,
            "target": slo.slo_target,
            "window": slo.window,
            "budgeting": slo.budgeting.method,
            "good": good,
            "total": judged,
            "budget_remaining": round(remaining, 6),
            "burn_rates": burn_labels,
            "events": {label[ws]: int(sums[ws][EVENTS]) for ws in windows},
        }
        if metric:
            event["slices_unjudged"] = w[c.unjudged]
            event["value"] = key.values.get(i)
        if i in key.details and key.details[i] is not None:
            event[slo.sli.spec.dimension if slo.sli.spec.dimension in ("drift", "fairness") else "details"] = (
                key.details[i]
            )
        if labelled is not None:
            event["burn_rates_to"] = to_rfc3339(labelled[0])
        if slo.sli.spec.labelled and not key.key:
            event["labels"] = self.state["labels"].report()
        if slo.baseline is not None:
            event["baseline"] = slo.baseline
        if low_traffic:
            event["low_traffic"] = low_traffic
        if key.windows.dropped:  # events that came after their windows were evaluated: never silent
            event["late_dropped"] = int(key.windows.dropped)
        out.append(("budget", event))

    def _no_data(self, whole: KeyState, t: float, out: list[Output]) -> None:
        """`no-data` fires when a model that has sent events sends none for `no_data_after`."""
        after = self.layout.model.no_data_after_s
        silent = self.state["first_ts"] <= t - after and whole.windows.span(t - after, t)[EVENTS] == 0
        transition, started = self.state["book"].update((None, "", NO_DATA), silent, t)
        if transition is None:
            return
        owner = self.config.owners.get("infrastructure") or self.config.owners.get("default")
        summary = (
            f"{self.model} has sent no inference events for {format_duration(after)} "
            f"(since before {to_rfc3339(t - after)})"
            if transition == "firing"
            else f"{self.model} is sending inference events again"
        )
        out.append(
            (
                "alert",
                self._alert(
                    whole,
                    None,
                    "infrastructure",
                    NO_DATA,
                    self.config.no_data_severity,
                    transition,
                    started,
                    t,
                    {},
                    None,
                    summary,
                    owner,
                ),
            )
        )

    def _transition(
        self,
        key: KeyState,
        slo: Slo,
        rule: str,
        severity: str,
        holds: bool,
        t: float,
        out: list[Output],
        burns: dict[str, float],
        remaining: float,
        threshold: float | None,
        windows: tuple[str, str] | None,
    ) -> None:
        transition, started = self.state["book"].update((slo.name, key.key, rule), holds, t)
        if transition is None:
            return
        where = f"{self.model}{', ' + key.key if key.key else ''}"
        if rule == BUDGET_EXHAUSTED:
            summary = (
                f"{slo.name} ({where}) has spent its {slo.window} error budget ({remaining:.0%} left)"
                if transition == "firing"
                else f"{slo.name} ({where}) has error budget again ({remaining:.0%} left)"
            )
        else:
            long_w, short_w = windows or ("", "")
            summary = (
                f"{slo.name} ({where}) burns its {slo.window} error budget "
                f"{burns.get(long_w, 0):.1f}x over {long_w} and {burns.get(short_w, 0):.1f}x over "
                f"{short_w} (threshold {threshold:g}x); {remaining:.0%} of the budget left"
                if transition == "firing"
                else f"{slo.name} ({where}) no longer burns {threshold:g}x over {long_w}/{short_w}"
            )
        i = self.slos.index(slo)
        if transition == "firing" and key.details.get(i) is not None:
            summary += explain(slo, key.details[i], key.values.get(i))
        alert = self._alert(
            key,
            slo.name,
            slo.dimension,
            rule,
            severity,
            transition,
            started,
            t,
            burns,
            remaining,
            summary,
            self.config.owner_of(slo),
        )
        if windows:
            alert["windows"] = {"long": windows[0], "short": windows[1]}
            alert["threshold"] = threshold
        if key.details.get(i) is not None:
            alert[slo.dimension if slo.dimension in ("drift", "fairness") else "details"] = key.details[i]
        out.append(("alert", alert))

    def _alert(
        self,
        key: KeyState,
        slo: str | None,
        dimension: str,
        rule: str,
        severity: str,
        state: str,
        started: float,
        t: float,
        burns: dict[str, float],
        remaining: float | None,
        summary: str,
        owner: Any,
    ) -> dict[str, Any]:
        return {
            "type": "alert",
            "id": alert_id(slo, self.model, key.key, rule),
            "state": state,
            "severity": severity,
            "rule": rule,
            "slo": slo,
            "dimension": dimension,
            "model": self.model,
            "version": key.version,
            "segment": key.segment,
            "owner": owner.route if owner else None,
            "burn_rates": burns,
            "budget_remaining": None if remaining is None else round(float(remaining), 6),
            "started_at": to_rfc3339(started),
            "ts": self._ts_text,
            "summary": summary,
            "actions": list(owner.actions) if owner else [],
            "runbook": owner.runbook if owner else None,
        }
