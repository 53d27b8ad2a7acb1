"""The judge: one model's windows per segment key, event-time ticks, slice verdicts and budgets.

The judge is the second, keyed-by-model stage. It receives `Summary`s (summary.py) from every
shard and the parser, never events: merging is adding rows into pending buffers, and each tick
folds them into the keys' windows and slice rings with one grouped sum. A tick t is judged once
every shard has reported event time past t + allowed_lateness (one `SourceFrontier` per shard:
a shard's report arrives after the data it covers), so any number of shards, workers or processes
judge the same ticks on the same data. At each tick the judge releases old buckets, judges
finished time slices (quantile sketches, the data-quality score, quality and fairness from the
labelled ring, drift across all keys at once) and hands every key and SLO to `report.py`, which
turns them into budget events and alert transitions. It never reads the clock.

Keys: the whole model (`segment == {}`) plus one key per value of each configured segment
attribute (`{"region": "eu"}`). At most `MAX_VALUES_PER_ATTRIBUTE` values are tracked per
attribute; later ones share the key `{"<attr>": "(other)"}` so a high-cardinality attribute
cannot exhaust memory.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from sloguard.core.evaluate.aggregate import EVENTS, whole_model_only
from sloguard.core.evaluate.alerts import BUDGET_EXHAUSTED
from sloguard.core.evaluate.frontier import SourceFrontier
from sloguard.core.evaluate.gather import KEYS, LABEL_STORE, NO_DATA, RETIRED, Entry, TickPart, assemble
from sloguard.core.evaluate.judge_state import (
    OTHER,
    JudgeState,
    KeyState,
    add_grouped,
)
from sloguard.core.evaluate.plan import ModelPlan
from sloguard.core.evaluate.report import Report
from sloguard.core.evaluate.slices import BAD, VERDICT_CODE, VERDICT_NAME, drift_family, judge_slice
from sloguard.core.evaluate.summary import Rows, Summary
from sloguard.core.messages.outputs import Budget, Output
from sloguard.core.stats.drift import FeatureDrift
from sloguard.core.stats.sketch import LogHistogram
from sloguard.core.stats.windows import Windows


class Judge:
    """The judging stage of one model (see the module docstring); deterministic, snapshot-able."""

    def __init__(self, plan: ModelPlan, state: JudgeState | None = None, sources: Iterable[str] = (),
                 part: int | None = None) -> None:
        self.plan = plan
        self.config = plan.config
        self.slos = plan.slos
        # None: one judge for every SLO, writing outputs; else one of `plan.parts`, judging the SLOs
        # whose name hashes to it and handing over `TickPart`s for gather.py to join
        self.part = part
        self.mine = [part is None or p == part for p in plan.part_of]
        self.lead = part is None or part == 0  # writes what belongs to no SLO: no-data, the label store
        self.slo_index = {s.name: i for i, s in enumerate(plan.slos)}
        # the slice rings only its own sliced SLOs read: a part without them skips folding them
        sliced = [(i, s.sli.spec.labelled) for i, s in plan.sliced if self.mine[i]]
        self.reads_labelled = any(labelled for _, labelled in sliced)
        self.reads_live = any(not labelled for _, labelled in sliced)
        self.sources = tuple(sources)
        self.slice_log: dict[tuple[int, float], tuple[float, str]] | None = None  # set by baseline.py
        self.reuse = True  # a key at which nothing changed repeats its last events (tests switch it off)
        self._drift_cache: dict[tuple[int, float], dict[str, list[FeatureDrift]]] = {}
        self._bad_cache = {}
        self._label_report: dict[str, Any] | None = None
        self.report = Report(self)
        span = plan.slices.labelled_layout.tiers[0].span_s if plan.slices.labelled_layout is not None else 0
        self._ring_windows = [[w for w in plan.burn_windows[i] if w <= span] for i in range(len(plan.slos))]
        if state is None:
            state = JudgeState(frontiers={s: SourceFrontier(self.sources) for s in range(plan.shards)})
            for attr in plan.attrs:
                state.values[attr] = {}
                state.groups[attr] = []
        self.state = state
        if not state.keys:
            state.new_key(plan, {})
        # firing alerts of SLOs or rules a resume with another config removed: resolved at the next tick
        self.orphans = state.book.orphans({s.name: {*(r.name for r in s.rules), BUDGET_EXHAUSTED} for s in self.slos})

    def key_of(self, attr: str, value: str) -> KeyState:
        return self.state.key_of(self.plan, attr, value)

    # ---- merging summaries ----------------------------------------------------------------------

    def merge(self, summary: Summary) -> list[Output]:
        """Add one summary's rows to the pending buffers, then judge every tick event time has passed."""
        st = self.state
        keys = [self.key_of(a, v) for a, v in summary.keys]
        index = np.array([k.index for k in keys], np.int64)
        for rows, pending in ((summary.windows, st.pending_windows),
                              (summary.live if self.reads_live else (), st.pending_live)):
            for r in rows:
                if r is not None and len(r):
                    pending.append(Rows(index[r.key], r.start, r.rows))
        for r in summary.labelled if self.reads_labelled else ():
            if r is not None and len(r):
                assert r.tick is not None
                # pairs wait, indexed by the tick they count from (a stable sort keeps each tick's rows in order)
                order = np.argsort(r.tick, kind="stable")
                ticks = r.tick[order]
                for sel in np.split(order, np.flatnonzero(ticks[1:] != ticks[:-1]) + 1):
                    st.pending_labelled.setdefault(float(r.tick[sel[0]]), []).append(
                        Rows(index[r.key[sel]], r.start[sel], r.rows[sel]))
        for part in summary.sketches:
            if not self.mine[part.slo]:
                continue
            width = self.slos[part.slo].budgeting.slice_s
            if st.next_tick is not None and part.start + width < st.next_tick:
                st.counters["late_slice_values"] += int(part.counts.sum())
                continue
            sketches = keys[part.key].sketches
            sketch = sketches.get((part.slo, part.start))
            if sketch is None:
                sketch = sketches[(part.slo, part.start)] = LogHistogram()
            sketch.add_counts(part.index, part.counts)
        for k, bucket, ts, version in summary.newest:
            keys[k].see(bucket, ts, version)
        st.first_ts = min(st.first_ts, summary.first_ts)
        for name, n in summary.counters.items():
            st.counters[name] = st.counters.get(name, 0) + n
        if summary.labels is not None:
            st.shard_labels[summary.shard] = summary.labels
        if summary.undated_rejections:
            self._undated(summary.undated_rejections, summary)
        out: list[Output] = []
        p = summary.progress
        if p is None:
            return out
        frontier = st.frontiers.setdefault(summary.shard, SourceFrontier(self.sources))
        frontier.update(p.source, p.newest, p.caught_up, p.arrival, self.config.max_future_skew_s)
        mark = max(st.marks.get(summary.shard, -math.inf), p.watermark)
        if p.clock is not None and frontier.all_caught_up():
            mark = max(mark, p.clock)
        st.marks[summary.shard] = mark
        self._advance(self.watermark(), out, final=False)
        return out

    def watermark(self) -> float:
        """Event time every shard has passed: the oldest of the shards' frontiers.

        A shard's frontier moves only with that shard's own summaries, each sent after the data it
        covers, so no tick is judged before every shard's data up to it has been merged.
        """
        st = self.state
        return min((max(f.watermark(), st.marks.get(s, -math.inf)) for s, f in st.frontiers.items()),
                   default=-math.inf)

    def _undated(self, n: int, summary: Summary) -> None:
        """Rejected messages without a readable time count at the current event time."""
        st = self.state
        now = st.watermark if math.isfinite(st.watermark) else max(
            (f.newest() for f in st.frontiers.values()), default=-math.inf)
        if summary.progress is not None and not math.isfinite(now):
            now = summary.progress.newest
        if not math.isfinite(now):  # no event time known at all yet: count them, they cannot be placed
            st.counters["undated_rejections"] = st.counters.get("undated_rejections", 0) + n
            return
        row = self.plan.layout.message_vector(0, n)
        st.pending_windows.append(Rows(np.zeros(1, np.int64), np.array([now]), row[None, :]))

    def advance(self, now: float) -> list[Output]:
        """Move event time to `now` (a live runner's clock) and evaluate the ticks it passes."""
        out: list[Output] = []
        self._advance(now, out, final=False)
        return out

    def finish(self) -> list[Output]:
        """End of input (replay, drain): evaluate every tick up to and including the one after the
        last event time seen, so the last partial interval is reported too (nothing more can come)."""
        out: list[Output] = []
        newest = max((f.newest() for f in self.state.frontiers.values()), default=-math.inf)
        end = max(self.state.watermark, newest)
        self._advance(self.plan.tick_after(end) if math.isfinite(end) else end, out, final=True)
        return out

    # ---- ticks ----------------------------------------------------------------------------------

    def _advance(self, watermark: float, out: list[Output], final: bool) -> None:
        st, interval = self.state, self.plan.interval_s
        if watermark > st.watermark:
            st.watermark = watermark
        limit = st.watermark - (0 if final else self.config.allowed_lateness_s)
        if st.next_tick is None:
            # the first tick follows the earliest event; it is fixed only once event time has passed
            # it, when every shard has delivered what came before it
            if not math.isfinite(st.first_ts) or self.plan.tick_after(st.first_ts) > limit:
                return
            st.next_tick = self.plan.tick_after(st.first_ts)
        skip_to = limit - self.plan.retention_s - interval
        if st.next_tick < skip_to:  # a long silence: ticks older than every window would be empty
            st.next_tick = math.ceil(skip_to / interval) * interval
        while st.next_tick <= limit:
            t = float(st.next_tick)
            self._flush(t)
            self._evaluate(t, out)
            st.next_tick += interval

    def _flush(self, t: float) -> None:
        """Fold the pending rows into the keys' windows and rings; labelled rows from their tick on."""
        st, ordered = self.state, self.state.ordered
        adjust = self.plan.adjustments
        if adjust:  # excluded and scaled periods of occurrence SLOs, before the rows reach the windows
            names = [k.key for k in ordered]
            st.pending_windows = [Rows(r.key, r.start, adjust.rows(r.key, r.start, r.rows, names))
                                  for r in st.pending_windows]
        add_grouped(st.pending_windows, ordered, "windows")
        st.pending_windows = []
        add_grouped(st.pending_live, ordered, "live")
        st.pending_live = []
        due = [tick for tick in st.pending_labelled if tick <= t]
        if due:
            rows = [r for tick in sorted(due) for r in st.pending_labelled.pop(tick)]
            for key, start in add_grouped(rows, ordered, "labelled"):
                key.dirty.add(start)
        for key in ordered:
            if key.newest:
                key.settle(t)

    def _evaluate(self, t: float, out: list[Output]) -> None:
        """Judge tick t: its outputs (one judge), or its `TickPart` (a part of the judge)."""
        entries: list[Entry] = []
        self._judge_tick(t, entries)
        if self.part is None:
            out += assemble(entries, self.plan.model.health_weights)
        else:
            out.append(("tick", TickPart(self.plan.name, t, self.part, entries)))  # type: ignore[arg-type]

    def _judge_tick(self, t: float, entries: list[Entry]) -> None:
        """Judge tick t into `entries`, each tagged with its place in the tick (gather.py)."""
        self._drift_cache = {}  # drift is judged once per slice for all keys together
        self._bad_cache: dict[int, dict[int, np.ndarray]] = {}
        self._label_report = None
        plan, mine = self.plan, self.mine
        self.report.tick(t)
        if self.orphans:
            retired: list[Output] = []
            self.report.retire(self.orphans, retired)
            entries.append(((RETIRED,), retired))
            self.orphans = []
        ends = plan.window_ends(t)
        distinct = sorted(set(ends))
        sum_plan = plan.layout.window_layout.sum_plan(distinct)  # the same for every key
        # which rows of the sums each SLO reads: equal sums mean equal windows only under the same
        # mapping (a timeslice SLO's end moves to the next slice boundary while the others' sums stay)
        reads: tuple = tuple(distinct.index(e) for e in ends)
        # calendar SLOs read their period so far; a new period is a new reading for every key. A
        # window ending on the boundary still reads the period it closes (its last report is whole).
        periods = [s.calendar.bounds(end - 0.001) if s.calendar is not None else None
                   for s, end in zip(self.slos, ends, strict=True)]
        if any(periods):
            reads = (reads, tuple(p[0] for p in periods if p is not None))
        for rank, key in list(self.state.reported):
            key.windows.release(t - plan.longest_slice_s)  # timeslice SLOs read windows up to a slice back
            for ring in (key.labelled, key.live):
                if ring is not None:
                    ring.release(t)
            key.counted = {}
            self._judge_slices(key, t)
            self._judge_sliced(key, t)
            if key.key and t - key.last_ts > plan.retention_s:
                continue  # a segment silent for longer than every window: nothing left to report
            # Timeslice SLOs read their windows at the last slice boundary: between two judged
            # slices nothing new is known, and a window ending mid-slice would drop a bad slice.
            total = key.windows.sums_matrix(sum_plan)
            tick = key.windows.span(t - plan.interval_s, t)  # what this tick added
            cached = key.cache
            if (self.reuse and not key.changed and cached is not None and len(cached) == 3 and cached[2] == reads
                    and np.array_equal(cached[0][:-1], total)
                    and np.array_equal(cached[0][-1], tick) and not self.state.book.holding(key.key)
                    and not (plan.adjustments and plan.adjustments.changing(key.key, t))):
                # nothing new reached this key and its windows did not move: last tick's events, retimed
                index = self.slo_index
                entries += [((KEYS, rank, index[e[1].slo]), [e]) for e in self.report.again(key, cached[1])]
                continue
            sums_at: dict[float, dict[int, list[float]]] = {}
            for (end, w), row in zip(sum_plan.slots, total.tolist(), strict=True):
                sums_at.setdefault(end, {})[w] = row
            budgets: list[Budget] = []
            tick_row = tick.tolist()
            prefix = key.windows.prefixes() if any(periods) else None  # shared by the calendar SLOs
            for i, slo in enumerate(self.slos):
                if not mine[i] or (key.key and whole_model_only(slo)):
                    continue
                period = periods[i]
                so_far = (None if period is None
                          else key.windows.since(slo.counted_window_s, period[0], ends[i], prefix))
                written: list[Output] = []
                self.report.slo(key, i, slo, sums_at[ends[i]], tick_row, t, written,
                                None if period is None else (*period, so_far.tolist()))
                if written:
                    entries.append(((KEYS, rank, i), written))
                    budgets += [m for kind, m in written if kind == "budget"]
            key.cache = (np.vstack([total, tick]), budgets, reads)
            key.changed = False
        if self.lead:
            silent: list[Output] = []
            self.report.no_data(self.state.ordered[0], t, silent)
            if silent:
                entries.append(((NO_DATA,), silent))
            if self.plan.labelled:  # how far the label join has read: for metrics, never in budget events (issue 15)
                entries.append(((LABEL_STORE,), [("label_store", {
                    "model": self.plan.name, "segment": {}, "ts": self.report.ts_text, **self.label_report()})]))

    # ---- judging slices -------------------------------------------------------------------------

    def _count(self, key: KeyState, i: int, verdict: str) -> None:
        good, judged = key.counted.get(i, (0.0, 0.0))
        key.counted[i] = (good + (verdict == "good"), judged + (verdict != "unjudged"))

    def _judge_slices(self, key: KeyState, t: float) -> None:
        """Judge the metric SLOs' slices that end at `t` (good, bad, or unjudged: too few samples)."""
        for i, slo in enumerate(self.slos):
            if not self.plan.metric[i] or t % slo.budgeting.slice_s or i in self.plan.slices.blocks or not self.mine[i]:
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
            shown = None if math.isnan(value) else round(float(value), 6)
            if samples or key.values.get(i) != shown:  # an idle key's empty slice changes nothing
                key.changed = True
            key.values[i] = shown
            if samples:
                key.windows.add(start, self._slice_vector(key, i, start, verdict))
                self._count(key, i, verdict)
        for k in [k for k in key.sketches if k[1] + self.slos[k[0]].budgeting.slice_s <= t]:
            del key.sketches[k]  # slices whose tick passed while the key was idle

    def _judge_sliced(self, key: KeyState, t: float) -> None:
        """Judge the slices of quality, fairness and drift SLOs ending at `t`, and re-judge older
        slices that late labels have changed (their verdict in the windows is replaced).

        Labels trickle into many old slices every minute; re-judging them every `rejudge_s`
        (5 minutes, or the shortest labelled slice) keeps that cost flat at the price of a few
        minutes' delay on a verdict that labels change.
        """
        rejudge = t % self.plan.rejudge_s == 0
        for i, slo in self.plan.sliced:
            w = slo.budgeting.slice_s
            if not self.mine[i] or (slo.sli.spec.fairness and key.key):
                continue  # another part's SLO; fairness compares the groups of the whole model
            starts = {t - w} if t % w == 0 else set()
            if slo.sli.spec.labelled and rejudge:
                starts |= {d - d % w for d in key.dirty if d - d % w + w <= t}
                starts |= self.state.label_waits.due(key.index, i, t)  # judged without all their labels
            for start in sorted(starts):
                self._judge_one(key, i, slo, start, first=start == t - w)
        if rejudge:
            key.dirty.clear()

    def _judge_one(self, key: KeyState, i: int, slo: Any, start: float, first: bool) -> None:
        plan = self.plan
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
                for s in self.state.groups[attr]
                if s.segment[attr] != OTHER
            }
        drift = None
        if slo.sli.spec.sliced == "drift":
            drift = self._drift_family(i, slo, start).get(key.key)
        counts = ring.span(start, end)
        j = judge_slice(slo, plan.slices.blocks[i], counts, groups, drift)
        if labelled and j.verdict != "unjudged" and slo.budgeting.min_label_share:
            j = self.state.label_waits.gate(key.index, i, slo, plan.slices.blocks[i][0], plan.slices.predictions_col,
                                            counts, start, float(self.state.next_tick or 0.0), j)
        if j.samples or j.verdict != "unjudged":  # an empty slice of an idle key changes nothing (see below)
            key.changed = True
        new = VERDICT_CODE[j.verdict] if j.samples else 0.0
        if self.slice_log is not None and not key.key and j.samples:
            self.slice_log[(i, start)] = (float(j.value), j.verdict)
        if labelled:
            col = plan.slices.verdict_col[i]
            old = float(ring.span(start, start + plan.slices.labelled_base_s)[col])
            if new != old:
                key.changed = True
                mark = np.zeros(plan.slices.labelled_ncols)
                mark[col] = new - old
                ring.add(start, mark)
                change = self._slice_vector(key, i, start, j.verdict) if new else np.zeros(plan.layout.ncols)
                if old:
                    change = change - self._slice_vector(key, i, start, VERDICT_NAME[old])
                key.windows.add(start, change)
                if not old:
                    self._count(key, i, j.verdict)
        elif new:
            key.windows.add(start, self._slice_vector(key, i, start, j.verdict))
            self._count(key, i, j.verdict)
        if j.verdict != "unjudged" and start >= key.value_start.get(i, -math.inf):
            key.value_start[i] = start
            key.values[i] = None if math.isnan(j.value) else round(float(j.value), 6)
            key.details[i] = j.details

    def _slice_vector(self, key: KeyState, i: int, start: float, verdict: str) -> np.ndarray:
        """A judged slice's counters, weighted by an excluded or scaled period (adjustments.py)."""
        vector = self.plan.layout.slice_vector(i, verdict)
        adjust = self.plan.adjustments
        return adjust.slice_vector(key.key, i, start, vector) if adjust else vector

    def labelled_bad(self, key: KeyState, i: int) -> tuple[float, dict[int, float]] | None:
        """Bad slices per burn window for a labelled SLO, read up to the newest slice labels judged.

        The newest slices wait for their labels; read at the current tick, a short window would only
        ever hold unjudged slices and no page could fire. So burn windows end where judgement has
        reached (`burn_rates_to` in budget events) and are read from the slice ring's verdicts.
        """
        start = key.value_start.get(i)
        ring = key.labelled
        if start is None or ring is None:
            return None
        end = start + self.slos[i].budgeting.slice_s
        windows = self._ring_windows[i]
        bad = self._bad_slices(key, ring)[i]
        if self.plan.adjustments:  # excluded or scaled periods: bad slices there cost less, or nothing
            edges = np.searchsorted(bad, [end - w for w in windows] + [end])
            weights = self.plan.adjustments.weights(key.key, i, bad)
            if weights is not None:
                cum = np.concatenate(([0.0], np.cumsum(weights)))
                return end, {w: float(cum[edges[-1]] - cum[e]) for w, e in zip(windows, edges[:-1].tolist(),
                                                                                 strict=True)}
        starts = bad.tolist()  # a few dozen sorted slice starts: bisect beats numpy's call overhead
        last = bisect.bisect_left(starts, end)
        return end, {w: last - bisect.bisect_left(starts, end - w) for w in windows}

    def _bad_slices(self, key: KeyState, ring: Windows) -> dict[int, np.ndarray]:
        """Per labelled SLO, the sorted starts of its bad slices in the key's ring (once per tick)."""
        cached = self._bad_cache.get(key.index)
        if cached is None:
            index = ring.index[0]
            cols = self.plan.slices.verdict_col
            bad = (ring.counts[0][:, list(cols.values())] == BAD) & (index >= 0)[:, None]
            base = self.plan.slices.labelled_base_s
            cached = {i: np.sort(index[bad[:, j]]) * base for j, i in enumerate(cols)}
            self._bad_cache[key.index] = cached
        return cached

    def _drift_family(self, i: int, slo: Any, start: float) -> dict[str, list[FeatureDrift]]:
        """Every key's drift results for one slice, judged as one family (cached for the tick)."""
        cached = self._drift_cache.get((i, start))
        if cached is None:
            end = start + slo.budgeting.slice_s
            counts = {k.key: k.live.span(start, end) for k in self.state.ordered if k.live is not None}
            cached = drift_family(slo, self.plan.slices.blocks[i], counts, self.plan.references,
                                  self.plan.segment_references)
            self._drift_cache[(i, start)] = cached
        return cached

    def _data_quality(self, key: KeyState, i: int, start: float, end: float) -> tuple[float, int]:
        """The seed's data-quality score over [start, end): min(1 - missing rate, 1 - stale rate)."""
        expected, missing, known, stale = self.plan.layout.columns[i].aux
        v = key.windows.span(start, end)
        samples = int(v[EVENTS])
        if samples == 0:
            return math.nan, 0
        missing_rate = v[missing] / v[expected] if v[expected] else 0.0
        stale_rate = v[stale] / v[known] if v[known] else 0.0
        return min(1 - missing_rate, 1 - stale_rate), samples

    # ---- reporting helpers ----------------------------------------------------------------------

    def label_report(self) -> dict[str, Any]:
        """The label stores' counters summed over shards, plus labels the judge could not place."""
        if self._label_report is not None:
            return dict(self._label_report)
        total: dict[str, Any] = {}
        for report in self.state.shard_labels.values():
            for k, v in report.items():
                total[k] = total.get(k, 0) + v
        late = self.state.counters.get("late_labels", 0)
        if late:
            total["late_labels"] = late
        self._label_report = total
        return dict(total)

