"""One scenario drawn: `ScenarioPlan`.

It lays out the incidents, draws every column with one seeded generator and serialises in chunks.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from sloguard.core.synth.contract import (
    BAD_KINDS,
    BAD_WEIGHTS,
    CANARY_SHARE,
    CHUNK,
    CONTROL,
    DEFAULT_DURATION_S,
    DEFAULT_START,
    ID_MASK,
    ID_MULT,
    MISSING_SHARE,
    RFC_SHARE,
    SCENARIOS,
    STATUS_NAMES,
    UNLABELLED_SHARE,
    VARIANT_NAMES,
    Incident,
    Scenario,
    manifest_of,
)
from sloguard.core.synth.definitions import (
    FLAGGED,
    ML_KINDS,
    Column,
    IncidentSpec,
    definition,
    incident_segment,
    layout_incidents,
)
from sloguard.core.synth.encode import corrupt, feature_dicts, gc_paused, lognormal, ts_values


class ScenarioPlan:
    """All columns of one scenario, drawn up front; lines are serialised chunk by chunk.

    Holds ~100 bytes per event instead of the ~450 of serialised lines, so `write_scenario` can
    stream large scenarios; `materialise()` gives the in-memory `Scenario`.
    """

    def __init__(
        self,
        scenario: str,
        events: int = 300_000,
        seed: int = 7,
        start: float = DEFAULT_START,
        duration_s: float = DEFAULT_DURATION_S,
        chunk_size: int = CHUNK,
        healthy: bool = False,
    ) -> None:
        if events < 1:
            raise ValueError(f"events must be >= 1, got {events}")
        self.chunk_size = max(1, int(chunk_size))
        self.d = d = definition(scenario)
        self.name, self.events, self.seed = scenario, int(events), int(seed)
        self.start, self.end = float(start), float(start) + float(duration_s)
        layout = [] if healthy else layout_incidents(d, self.start, float(duration_s))
        rng = np.random.default_rng([self.seed, SCENARIOS.index(scenario)])
        self._id_offset = int(rng.integers(0, 1 << 48))
        self._build_inference(rng, layout)
        self._build_labels(rng)
        self._build_features(rng, layout)
        self.bad_messages = {k: 0 for k in BAD_KINDS}
        self._bad_lines: list[bytes] = []
        self._bad_pos = np.zeros(0, np.int64)
        self._bad_ts = np.zeros(0)
        self.incidents: list[Incident] = []
        for s, a, b in layout:
            bad: dict[str, int] = {}
            if s.kind == "malformed_burst":
                bad = self._build_bad(rng, s, a, b)
                self.bad_messages = dict(bad)
            self.incidents.append(
                Incident(
                    name=s.name,
                    kind=s.kind,
                    model=d.model,
                    dimension=s.dimension,
                    slos=s.slos,
                    rule=s.rule,
                    segment=incident_segment(s),
                    start=a,
                    end=b,
                    detect_within_s=s.detect_within_s,
                    description=s.description,
                    bad_messages=bad,
                    feature=s.feature,
                    group=dict([s.group]) if s.group else {},
                )
            )

    # inference -------------------------------------------------------------------------------

    def _build_inference(self, rng: np.random.Generator, layout: list[tuple[IncidentSpec, float, float]]) -> None:
        d, n = self.d, self.events
        silent = [(a, b) for s, a, b in layout if s.kind == "silent_model"]
        gap_a, gap_b = silent[0] if silent else (self.end, self.end)
        active = (self.end - self.start) - (gap_b - gap_a)
        u = np.sort(rng.uniform(0.0, active, n))
        t = self.start + u
        t = np.round(np.where(t >= gap_a, t + (gap_b - gap_a), t), 3)
        self.t = t
        self.region = rng.choice(len(d.values[0]), n, p=d.weights[0]).astype(np.int8)
        second = rng.choice(len(d.values[1]), n, p=d.weights[1]).astype(np.int8)
        self.second = second
        self.seg_key = (self.region * len(d.values[1]) + second).astype(np.int16)
        self._segments = [{d.attrs[0]: a, d.attrs[1]: b} for a in d.values[0] for b in d.values[1]]
        self.variant = (rng.random(n) < CANARY_SHARE).astype(np.int8)
        self.ts_rfc = rng.random(n) < RFC_SHARE
        self.fts_rfc = rng.random(n) < RFC_SHARE
        r = rng.random(n)
        status = np.zeros(n, np.int8)
        status[r < d.p_error + d.p_timeout] = 2
        status[r < d.p_error] = 1
        latency = lognormal(rng, d.latency_ms, n)
        fast_fail = rng.uniform(0.5, 5.0, n)
        latency = np.where(status == 1, fast_fail, latency)
        latency = np.where(status == 2, rng.uniform(*d.timeout_ms, n), latency)
        lag = lognormal(rng, d.serving_lag_s, n)
        feats, y, score, prediction = d.draw(rng, t, self.region, second)
        self.feats = feats
        nf = len(feats)
        missing = np.where(
            rng.random((n, nf), dtype=np.float32) < MISSING_SHARE,
            np.where(rng.random((n, nf), dtype=np.float32) < 0.5, 1, 2),
            0,
        ).astype(np.int8)
        # incident draws, made whether or not an incident uses them (stable streams)
        u_inc = rng.random(n)
        spike = rng.uniform(300.0, 800.0, n)
        stale = rng.uniform(*d.stale_lag_s, n)
        u_miss = rng.random((n, nf), dtype=np.float32)
        null_or_absent = np.where(rng.random((n, nf), dtype=np.float32) < 0.5, 1, 2).astype(np.int8)
        flagged = np.round(rng.uniform(*FLAGGED, n), 4)
        legit_score = np.round(rng.beta(1.2, 14.0, n), 4)
        for s, a, b in layout:
            w = (t >= a) & (t < b)
            if s.region is not None:
                w &= self.region == d.values[0].index(s.region)
            if s.kind in ("error_outage", "canary_regression"):
                sel = w & (u_inc < s.fraction)
                if s.kind == "canary_regression":
                    sel &= (self.variant == 1) & (self.region != d.values[0].index(CONTROL["region"]))
                status[sel] = 1
                latency[sel] = fast_fail[sel]
            elif s.kind == "latency_spike":
                sel = w & (u_inc < s.fraction) & (status == 0)
                latency[sel] = spike[sel]
            elif s.kind == "stale_features":
                lag[w] = stale[w] + lag[w]
            elif s.kind == "missing_features":
                hit = w[:, None] & (u_miss < s.fraction)
                missing[hit] = null_or_absent[hit]
            elif s.kind in ML_KINDS:
                self._ml_incident(s, w, u_inc, flagged, legit_score, feats, y, score, prediction)
        self.status, self.missing = status, missing
        self.latency = np.round(latency, 1)
        self.feature_ts = np.round(t - lag, 3)
        self.y, self.score, self.prediction = y, score, prediction

    def _ml_incident(
        self,
        s: IncidentSpec,
        w: np.ndarray,
        u: np.ndarray,
        flagged: np.ndarray,
        legit_score: np.ndarray,
        feats: list[Column],
        y: np.ndarray,
        score: np.ndarray,
        prediction: np.ndarray,
    ) -> None:
        """Quality, CTR, drift and fairness incidents: they change scores, labels or features."""
        d = self.d
        w = w & (self.region != d.values[0].index(CONTROL["region"]))
        if s.kind == "quality_drop":  # frauds missed, some legitimate events flagged
            missed = w & (y == 1) & (u < s.fraction)
            wrong = w & (y == 0) & (u < s.fraction / 100)
            score[missed] = legit_score[missed]
            score[wrong] = flagged[wrong]
        elif s.kind == "ctr_drop":  # fewer clicks on the same recommendations
            y[w & (u < s.fraction)] = 0
        elif s.kind == "fairness_regression":  # one group's legitimate events flagged
            attr, value = s.group or ("", "")
            k = d.attrs.index(attr)
            group = w & ((self.region, self.second)[k] == d.values[k].index(value))
            wrong = group & (y == 0) & (u < s.fraction)
            score[wrong] = flagged[wrong]
        elif s.kind == "feature_drift":
            col = next(c for c in feats if c.name == s.feature)
            col.data[w] = (col.data[w] * s.scale + s.offset).astype(col.data.dtype)
            if col.data.dtype.kind == "f":
                col.data[w] = np.round(col.data[w], 4)
        else:
            raise ValueError(f"unknown incident kind {s.kind!r}")
        if d.prediction_prefix is None:  # a classifier: the prediction follows the score
            prediction[w] = (score[w] >= 0.5).astype(prediction.dtype)

    def _ids(self, idx: np.ndarray) -> list[str]:
        x = idx.astype(np.uint64) * np.uint64(ID_MULT) + np.uint64(self._id_offset)
        x &= np.uint64(ID_MASK)
        p = self.d.id_prefix
        return [f"{p}{v:012x}" for v in x.tolist()]

    def _inference_dicts(self, idx: np.ndarray) -> list[dict[str, Any]]:
        """Inference events for rows `idx` (healthy rows, as they appear in the file)."""
        d = self.d
        status = self.status[idx]
        failed = np.flatnonzero(status != 0).tolist()
        score: list[Any] = self.score[idx].tolist()
        pred: list[Any] = self.prediction[idx].tolist()
        if d.prediction_prefix is not None:
            pred = [f"{d.prediction_prefix}{v}" for v in pred]
        for p in failed:  # a failed request has no prediction
            score[p] = None
            pred[p] = None
        versions = np.array(d.versions, dtype=object)[self.variant[idx]].tolist()
        segments = self._segments
        model = d.model
        return [
            {
                "id": i,
                "model": model,
                "version": v,
                "ts": ts,
                "status": st,
                "latency_ms": lat,
                "prediction": pr,
                "score": sc,
                "segment": segments[sg],
                "features": f,
                "feature_ts": fts,
                "variant": va,
            }
            for i, v, ts, st, lat, pr, sc, sg, f, fts, va in zip(
                self._ids(idx),
                versions,
                ts_values(self.t[idx], self.ts_rfc[idx]),
                STATUS_NAMES[status].tolist(),
                self.latency[idx].tolist(),
                pred,
                score,
                self.seg_key[idx].tolist(),
                feature_dicts(self.feats, idx, self.missing),
                ts_values(self.feature_ts[idx], self.fts_rfc[idx]),
                VARIANT_NAMES[self.variant[idx]].tolist(),
                strict=True,
            )
        ]

    # labels ----------------------------------------------------------------------------------

    def _build_labels(self, rng: np.random.Generator) -> None:
        n = self.events
        mdn, sigma, lo, hi = self.d.label_delay_s
        delay = np.clip(rng.lognormal(np.log(mdn), sigma, n), lo, hi)
        keep = rng.random(n) >= UNLABELLED_SHARE
        rfc = rng.random(n) < RFC_SHARE
        lts = np.round(self.t + delay, 3)
        sel = np.flatnonzero(keep & (self.status == 0) & (lts <= self.end))
        order = np.argsort(lts[sel], kind="stable")
        self.lab_idx = sel[order]
        self.lab_ts = lts[self.lab_idx]
        self.lab_rfc = rfc[self.lab_idx]

    def _label_dicts(self, a: int, b: int) -> list[dict[str, Any]]:
        idx = self.lab_idx[a:b]
        model = self.d.model
        return [
            {"id": i, "model": model, "label": y, "ts": ts}
            for i, y, ts in zip(
                self._ids(idx), self.y[idx].tolist(), ts_values(self.lab_ts[a:b], self.lab_rfc[a:b]), strict=True
            )
        ]

    # ml.features -----------------------------------------------------------------------------

    def _build_features(self, rng: np.random.Generator, layout: list[tuple[IncidentSpec, float, float]]) -> None:
        d = self.d
        n = max(1, self.events // 2)
        ts = np.round(np.sort(rng.uniform(self.start, self.end, n)), 3)
        region = rng.choice(len(d.values[0]), n, p=d.weights[0]).astype(np.int8)
        second = rng.choice(len(d.values[1]), n, p=d.weights[1]).astype(np.int8)
        self.f_cols = d.draw(rng, ts, region, second)[0]
        self.f_entity = rng.integers(0, max(1000, self.events // 5), n)
        lag = lognormal(rng, d.pipeline_lag_s, n)
        stale = rng.uniform(*d.stale_lag_s, n)
        for s, a, b in layout:
            if s.kind == "stale_features":
                w = (ts >= a) & (ts < b) & (region == d.values[0].index(s.region or ""))
                lag[w] = stale[w] + lag[w]
        self.f_ts, self.f_region = ts, region
        self.f_event_ts = np.round(ts - lag, 3)
        self.f_ts_rfc = rng.random(n) < RFC_SHARE
        self.f_ev_rfc = rng.random(n) < RFC_SHARE
        self._f_segments = [{d.attrs[0]: r} for r in d.values[0]]

    def _feature_event_dicts(self, a: int, b: int) -> list[dict[str, Any]]:
        idx = np.arange(a, b)
        p, model, segs = self.d.entity_prefix, self.d.model, self._f_segments
        return [
            {"model": model, "entity": f"{p}{e:07d}", "segment": segs[r], "features": f, "event_ts": ev, "ts": ts}
            for e, r, f, ev, ts in zip(
                self.f_entity[a:b].tolist(),
                self.f_region[a:b].tolist(),
                feature_dicts(self.f_cols, idx),
                ts_values(self.f_event_ts[a:b], self.f_ev_rfc[a:b]),
                ts_values(self.f_ts[a:b], self.f_ts_rfc[a:b]),
                strict=True,
            )
        ]

    # malformed burst -------------------------------------------------------------------------

    def _build_bad(self, rng: np.random.Generator, s: IncidentSpec, a: float, b: float) -> dict[str, int]:
        """Bad messages at `s.fraction` of the model's traffic in [a, b), none for the control."""
        t = self.t
        window = (t >= a) & (t < b)
        control = self.d.values[0].index(CONTROL["region"])
        cand = np.flatnonzero(window & (self.region != control))
        nb = min(round(s.fraction * int(window.sum())), int(cand.size))
        counts = np.floor(np.array(BAD_WEIGHTS) * nb).astype(np.int64)
        counts[0] += nb - int(counts.sum())
        kinds = rng.permutation(np.repeat(np.arange(len(BAD_KINDS)), counts))
        base = np.sort(rng.choice(cand, nb, replace=False)) if nb else np.zeros(0, np.int64)
        variant = rng.integers(0, 1 << 30, nb)
        fresh = self._ids(np.arange(self.events, self.events + nb))
        lines = []
        for j, (k, d) in enumerate(zip(kinds.tolist(), self._inference_dicts(base), strict=True)):
            kind = BAD_KINDS[k]
            if kind != "duplicate_id":
                d = dict(d, id=fresh[j])
            lines.append(corrupt(kind, d, int(variant[j]), float(t[base[j]])))
        self._bad_lines = lines
        self._bad_ts = t[base]
        self._bad_pos = np.searchsorted(t, self._bad_ts, side="right")
        return {kind: int(c) for kind, c in zip(BAD_KINDS, counts.tolist(), strict=True)}

    # output ----------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Lines per file."""
        return {
            "inference": self.events + len(self._bad_lines),
            "labels": int(self.lab_idx.size),
            "features": int(self.f_ts.size),
        }

    def manifest(self) -> dict[str, Any]:
        """The manifest.json object."""
        return manifest_of(
            self.name, self.seed, self.events, self.start, self.end, self.incidents, self.bad_messages, self.counts()
        )

    def inference_chunks(self) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(ts, lines) chunks of ml.inference in file order; bad messages sit after their base."""
        dumps, n = orjson.dumps, self.events
        bad_pos, j = self._bad_pos, 0
        for a in range(0, n, self.chunk_size):
            b = min(a + self.chunk_size, n)
            with gc_paused():
                lines = [dumps(x) for x in self._inference_dicts(np.arange(a, b))]
            ts = self.t[a:b]
            k = int(np.searchsorted(bad_pos, b, side="right"))
            if k > j:
                rel = bad_pos[j:k] - a
                ts = np.insert(ts, rel, self._bad_ts[j:k])
                merged: list[bytes] = []
                prev = 0
                for r, line in zip(rel.tolist(), self._bad_lines[j:k], strict=True):
                    merged.extend(lines[prev:r])
                    merged.append(line)
                    prev = r
                merged.extend(lines[prev:])
                lines, j = merged, k
            yield ts, lines

    def label_chunks(self) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(ts, lines) chunks of ml.labels, sorted by ts."""
        dumps = orjson.dumps
        for a in range(0, self.lab_idx.size, self.chunk_size):
            b = min(a + self.chunk_size, self.lab_idx.size)
            with gc_paused():
                lines = [dumps(x) for x in self._label_dicts(a, b)]
            yield self.lab_ts[a:b], lines

    def feature_chunks(self) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(ts, lines) chunks of ml.features, sorted by ts."""
        dumps = orjson.dumps
        for a in range(0, self.f_ts.size, self.chunk_size):
            b = min(a + self.chunk_size, self.f_ts.size)
            with gc_paused():
                lines = [dumps(x) for x in self._feature_event_dicts(a, b)]
            yield self.f_ts[a:b], lines

    def chunks(self, kind: str) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """Chunks of one stream: `inference`, `labels` or `features`."""
        return {"inference": self.inference_chunks, "labels": self.label_chunks, "features": self.feature_chunks}[
            kind
        ]()

    def merged(self) -> Iterator[tuple[str, float, bytes]]:
        """(stream, ts, line) of all three streams in event-time order, e.g. to publish live."""

        def flat(kind: str) -> Iterator[tuple[str, float, bytes]]:
            for ts, lines in self.chunks(kind):
                for x, line in zip(ts.tolist(), lines, strict=True):
                    yield kind, x, line

        return heapq.merge(flat("features"), flat("inference"), flat("labels"), key=lambda r: r[1])

    def materialise(self) -> Scenario:
        """The whole scenario in memory."""
        streams: dict[str, list[bytes]] = {}
        for k in ("inference", "labels", "features"):
            out: list[bytes] = []
            for _, lines in self.chunks(k):
                with gc_paused():
                    out.extend(lines)
            streams[k] = out
        return Scenario(
            name=self.name,
            inference=streams["inference"],
            labels=streams["labels"],
            features=streams["features"],
            incidents=list(self.incidents),
            control=dict(CONTROL),
            seed=self.seed,
            events=self.events,
            start=self.start,
            end=self.end,
            bad_messages=dict(self.bad_messages),
        )
