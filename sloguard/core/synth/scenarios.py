"""Synthetic ML traffic with injected incidents: the data behind `sloguard generate` and the demo.

A scenario is a few hours of a model's three input streams (DESIGN.md, "Contracts"):
`ml.inference`, `ml.labels` and `ml.features`, healthy except for a known list of incidents. Each
`Incident` says which SLOs should alert, with which rule, for which segment and how soon, so
replays and end-to-end tests can check detection against ground truth. The segment
`region=apac` is the control: only whole-model incidents (a silent model, a burst of rejected
messages) ever touch it. About 10 % of requests are served by a canary version (`variant:
canary`); the fraud scenario's first incident is a canary regression (the canary fails a quarter
of its requests outside the control region), which a rollout controller should roll back, while
the recommender's canary stays as healthy as its stable version.

Columns are drawn with numpy from one seeded generator and serialised with orjson in chunks, so
the same arguments always give the same bytes and a million events take seconds. Time comes only
from the arguments; nothing here reads the clock. Only `write_scenario` does I/O.

Healthy traffic is calibrated against the example configs: each ratio SLO's normal bad rate is at
most about a fifth of its error budget, and each incident is long and strong enough for the
SRE-workbook `fast-burn` rule (burn >= 14.4 over 1 h and 5 m, 30-day window) to fire. For a 95 %
objective that needs >= 72 % bad events over an hour, hence the 55-minute recsys latency and
staleness incidents.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SCENARIOS = ("fraud", "recsys")
DEFAULT_START = 1767225600.0  # 2026-01-01T00:00:00Z
DEFAULT_DURATION_S = 14 * 3600.0
MAX_MESSAGE_BYTES = 65_536
CONTROL = {"region": "apac"}
BAD_KINDS = (
    "malformed_json",
    "wrong_types",
    "nan_token",
    "missing_fields",
    "absurd_timestamp",
    "oversized",
    "duplicate_id",
)
FILES = {
    "inference": "inference.jsonl",
    "labels": "labels.jsonl",
    "features": "features.jsonl",
    "manifest": "manifest.json",
}

_LEAD_S = 80 * 60.0  # clean traffic before the first incident: hourly SLIs report, canaries get judged
_MIN_GAP_S = 45 * 60.0  # clean traffic between incidents
_MIN_TAIL_S = 20 * 60.0  # clean traffic after the last one
_CHUNK = 65_536
_RFC_SHARE = 0.10  # share of timestamps written as RFC 3339 strings
_CANARY_SHARE = 0.10
_UNLABELLED_SHARE = 0.10
_MISSING_SHARE = 0.0005  # healthy share of feature values null or absent
_BURST_RATE = 0.15  # bad messages per good event of the model during a malformed burst
_BAD_WEIGHTS = (0.25, 0.20, 0.10, 0.15, 0.10, 0.05, 0.15)  # in BAD_KINDS order
_NAN = "__sloguard_nan__"
_ID_MULT = 0x9E3779B97F4B  # odd: i -> (i * _ID_MULT + offset) mod 2**48 is a bijection
_ID_MASK = (1 << 48) - 1
_STATUS = np.array(["ok", "error", "timeout"], dtype=object)
_VARIANT = np.array(["stable", "canary"], dtype=object)


@dataclass(frozen=True)
class Incident:
    """One injected incident and the alert it should raise, as written in manifest.json."""

    name: str
    kind: str  # error_outage, latency_spike, stale_features, missing_features, malformed_burst,
    # silent_model, canary_regression, quality_drop, ctr_drop, feature_drift, fairness_regression
    model: str
    dimension: str  # infrastructure | data | quality | drift | fairness
    slos: tuple[str, ...]  # SLO names expected to alert
    rule: str  # expected alert rule: fast-burn | no-data
    segment: dict[str, str]  # {} (whole model), {"region": ...} or {"variant": "canary"}
    start: float  # epoch seconds
    end: float
    detect_within_s: float  # generous bound on event-time detection delay after `start`
    description: str = ""
    bad_messages: dict[str, int] = field(default_factory=dict)  # malformed_burst: count by kind
    feature: str = ""  # feature_drift: the feature the drift alert should name
    group: dict[str, str] = field(default_factory=dict)  # fairness_regression: the worst group, e.g. atm


@dataclass
class Scenario:
    """A generated scenario held in memory: one JSON line (bytes, no newline) per message."""

    name: str
    inference: list[bytes]
    labels: list[bytes]
    features: list[bytes]
    incidents: list[Incident]
    control: dict[str, str]
    seed: int = 0
    events: int = 0
    start: float = DEFAULT_START
    end: float = DEFAULT_START + DEFAULT_DURATION_S
    bad_messages: dict[str, int] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The manifest.json object."""
        return _manifest(
            self.name,
            self.seed,
            self.events,
            self.start,
            self.end,
            self.incidents,
            self.bad_messages,
            {"inference": len(self.inference), "labels": len(self.labels), "features": len(self.features)},
        )


def incidents_from_manifest(manifest: dict[str, Any]) -> list[Incident]:
    """The incidents of a loaded manifest.json, as `Incident` objects."""
    out = []
    for d in manifest["incidents"]:
        d = dict(d)
        d["slos"] = tuple(d["slos"])
        out.append(Incident(**d))
    return out


# --- scenario definitions -------------------------------------------------------------------


@dataclass(frozen=True)
class _Col:
    """One feature column: values (numbers, or codes into `vocab` for strings)."""

    name: str
    data: np.ndarray
    vocab: np.ndarray | None = None

    def values(self, idx: np.ndarray) -> list[Any]:
        if self.vocab is not None:
            return self.vocab[self.data[idx]].tolist()
        return self.data[idx].tolist()


@dataclass(frozen=True)
class _Spec:
    """One planned incident, in minutes; placed on the timeline by `_layout`."""

    name: str
    kind: str
    minutes: float
    region: str | None = None
    fraction: float = 1.0  # share of the region's events affected
    slos: tuple[str, ...] = ()
    dimension: str = "data"
    rule: str = "fast-burn"
    detect_within_s: float = 1200.0
    description: str = ""
    feature: str = ""  # feature_drift: the feature, changed to value * scale + offset
    scale: float = 1.0
    offset: float = 0.0
    group: tuple[str, str] | None = None  # fairness_regression: (attribute, value) of the hurt group
    at_minute: float | None = None  # placed this many minutes after the start, before the others


_Draw = tuple[list[_Col], np.ndarray, np.ndarray, np.ndarray]  # features, label, score, prediction


@dataclass(frozen=True)
class _Def:
    """What differs between scenarios: model, segments, distributions and incidents."""

    model: str
    id_prefix: str
    entity_prefix: str
    versions: tuple[str, str]  # stable, canary
    attrs: tuple[str, str]
    values: tuple[tuple[str, ...], tuple[str, ...]]
    weights: tuple[tuple[float, ...], tuple[float, ...]]
    latency_ms: tuple[float, float]  # lognormal median, sigma
    timeout_ms: tuple[float, float]
    p_error: float
    p_timeout: float
    serving_lag_s: tuple[float, float]  # inference ts - feature_ts: lognormal median, sigma
    pipeline_lag_s: tuple[float, float]  # ml.features ts - event_ts
    stale_lag_s: tuple[float, float]  # uniform range during stale_features
    label_delay_s: tuple[float, float, float, float]  # lognormal median, sigma, min, max
    draw: Callable[[np.random.Generator, np.ndarray, np.ndarray, np.ndarray], _Draw]
    prediction_prefix: str | None  # predictions written as f"{prefix}{n}" when set
    incidents: tuple[_Spec, ...]


def _fraud(rng: np.random.Generator, t: np.ndarray, region: np.ndarray, second: np.ndarray) -> _Draw:
    """Card transactions: fraud (~2 %) has larger amounts, riskier merchants, younger cards;
    the score is correlated with the label and prediction = score >= 0.5."""
    n = t.size
    y = (rng.random(n) < 0.02).astype(np.int64)
    fraud = y == 1
    amount = np.round(rng.lognormal(np.log(45.0), 1.1, n) * np.where(fraud, 2.5, 1.0), 2)
    risk = np.round(np.clip(rng.beta(2.0, 8.0, n) + 0.25 * fraud, 0.0, 1.0), 4)
    txn = rng.poisson(np.where(fraud, 4.0, 1.2)).astype(np.int64)
    age = np.floor(rng.gamma(2.0, np.where(fraud, 120.0, 400.0))).astype(np.int64)
    present = np.array([0.05, 0.97, 0.99])[second] * np.where(fraud, 0.5, 1.0)
    card = (rng.random(n) < present).astype(np.int8)
    cols = [
        _Col("amount", amount),
        _Col("merchant_risk", risk),
        _Col("txn_count_1h", txn),
        _Col("account_age_days", age),
        _Col("card_present", card, np.array(["no", "yes"], dtype=object)),
    ]
    score = np.round(np.where(fraud, rng.beta(8.0, 1.5, n), rng.beta(1.2, 14.0, n)), 4)
    return cols, y, score, (score >= 0.5).astype(np.int64)


_RECSYS_UTC_OFFSET_H = np.array([1, -5, 8])  # eu, us, apac


def _recsys(rng: np.random.Generator, t: np.ndarray, region: np.ndarray, second: np.ndarray) -> _Draw:
    """Recommendation requests: hour_of_day is the local hour; the score is the predicted click
    probability, the label a click drawn from it (CTR ~20 %), the prediction an item id."""
    n = t.size
    hour = (np.floor(t / 3600.0).astype(np.int64) + _RECSYS_UTC_OFFSET_H[region]) % 24
    popularity = np.round(rng.beta(2.0, 5.0, n), 4)
    cols = [
        _Col("user_embedding_norm", np.round(rng.normal(1.0, 0.12, n), 4)),
        _Col("item_popularity", popularity),
        _Col("session_length", rng.poisson(6.0, n).astype(np.int64) + 1),
        _Col("hour_of_day", hour),
        _Col(
            "device",
            rng.choice(3, n, p=[0.4, 0.4, 0.2]).astype(np.int8),
            np.array(["ios", "android", "web"], dtype=object),
        ),
    ]
    score = np.round(np.clip(rng.beta(2.0, 8.0, n) * (0.4 + 2.1 * popularity), 0.0, 1.0), 4)
    y = (rng.random(n) < score).astype(np.int64)
    return cols, y, score, rng.integers(1, 500_000, n)


_DEFS: dict[str, _Def] = {
    "fraud": _Def(
        model="fraud",
        id_prefix="fr-",
        entity_prefix="card-",
        versions=("2026.01.3", "2026.01.4"),
        attrs=("region", "merchant_type"),
        values=(("eu", "us", "latam", "apac"), ("online", "pos", "atm")),
        weights=((0.30, 0.35, 0.15, 0.20), (0.5, 0.4, 0.1)),
        latency_ms=(30.0, 0.4),
        timeout_ms=(1000.0, 1200.0),
        p_error=1.5e-5,
        p_timeout=0.5e-5,
        serving_lag_s=(180.0, 0.9),
        pipeline_lag_s=(90.0, 0.8),
        stale_lag_s=(25.5 * 3600, 26.5 * 3600),
        label_delay_s=(1800.0, 1.0, 60.0, 6 * 3600.0),
        draw=_fraud,
        prediction_prefix=None,
        incidents=(
            _Spec(
                "canary-regression",
                "canary_regression",
                15,
                None,
                0.25,
                ("fraud-availability",),
                "infrastructure",
                detect_within_s=600,
                description="the canary version 2026.01.4 fails 25 % of its requests fast with "
                "status error (outside the control region); stable is unaffected",
                at_minute=20,  # early: before the canary could have enough traffic to be promoted
            ),
            _Spec(
                "eu-outage",
                "error_outage",
                20,
                "eu",
                1.0,
                ("fraud-availability",),
                "infrastructure",
                detect_within_s=600,
                description="every eu request fails fast with status error",
            ),
            _Spec(
                "us-latency-spike",
                "latency_spike",
                25,
                "us",
                0.85,
                ("fraud-latency", "fraud-latency-p99"),
                "infrastructure",
                description="85 % of us requests take 300-800 ms",
            ),
            _Spec(
                "latam-stale-features",
                "stale_features",
                25,
                "latam",
                1.0,
                ("fraud-stale-features", "fraud-data-quality"),
                description="latam features computed ~26 h earlier (feature_ts and ml.features)",
            ),
            _Spec(
                "eu-missing-features",
                "missing_features",
                20,
                "eu",
                0.35,
                ("fraud-feature-completeness", "fraud-data-quality"),
                description="35 % of eu feature values null or absent",
            ),
            _Spec(
                "malformed-burst",
                "malformed_burst",
                20,
                None,
                _BURST_RATE,
                ("fraud-schema",),
                description="bad messages at 15 % of the model's traffic",
            ),
            _Spec(
                "quality-drop",
                "quality_drop",
                45,
                None,
                0.6,
                ("fraud-recall", "fraud-precision"),
                "quality",
                detect_within_s=5400,
                description="a bad model push outside the control region: 60 % of frauds scored like "
                "legitimate transactions, 0.6 % of legitimate ones flagged; labels come ~30 min later",
            ),
            _Spec(
                "latam-amount-drift",
                "feature_drift",
                60,
                "latam",
                1.0,
                ("fraud-feature-drift",),
                "drift",
                detect_within_s=3600,
                description="latam amounts arrive in cents: amount x 100",
                feature="amount",
                scale=100.0,
            ),
            _Spec(
                "atm-fairness-regression",
                "fairness_regression",
                45,
                None,
                0.08,
                ("fraud-fpr-gap",),
                "fairness",
                detect_within_s=5400,
                description="8 % of legitimate atm transactions (outside the control region) are flagged: "
                "the false positive rate gap across merchant types exceeds 0.03",
                group=("merchant_type", "atm"),
            ),
            _Spec(
                "silent-model",
                "silent_model",
                30,
                None,
                1.0,
                (
                    "fraud-availability",
                    "fraud-latency",
                    "fraud-latency-p99",
                    "fraud-feature-completeness",
                    "fraud-stale-features",
                    "fraud-schema",
                    "fraud-data-quality",
                ),
                "infrastructure",
                "no-data",
                900,
                description="no inference events at all for the model",
            ),
        ),
    ),
    "recsys": _Def(
        model="recsys",
        id_prefix="rs-",
        entity_prefix="user-",
        versions=("2026.01.7", "2026.01.8"),
        attrs=("region", "surface"),
        values=(("eu", "us", "apac"), ("home", "search", "email")),
        weights=((0.35, 0.40, 0.25), (0.5, 0.35, 0.15)),
        latency_ms=(50.0, 0.47),
        timeout_ms=(800.0, 1000.0),
        p_error=6e-5,
        p_timeout=2e-5,
        serving_lag_s=(60.0, 0.8),
        pipeline_lag_s=(120.0, 0.7),
        stale_lag_s=(1800.0, 3600.0),
        label_delay_s=(300.0, 1.0, 60.0, 3 * 3600.0),
        draw=_recsys,
        prediction_prefix="item-",
        incidents=(
            _Spec(
                "us-partial-outage",
                "error_outage",
                20,
                "us",
                0.5,
                ("recsys-availability",),
                "infrastructure",
                detect_within_s=600,
                description="half of us requests fail fast with status error",
            ),
            _Spec(
                "eu-latency-spike",
                "latency_spike",
                55,
                "eu",
                0.97,
                ("recsys-latency",),
                "infrastructure",
                detect_within_s=3000,
                description="97 % of eu requests take 300-800 ms; a 95 % objective needs "
                ">= 72 % bad over 1 h to burn at 14.4x",
            ),
            _Spec(
                "us-stale-features",
                "stale_features",
                55,
                "us",
                1.0,
                ("recsys-freshness", "recsys-serving-freshness-p95"),
                detect_within_s=3000,
                description="us feature pipeline 30-60 min behind (ml.features ts - event_ts "
                "and inference ts - feature_ts)",
            ),
            _Spec(
                "eu-missing-features",
                "missing_features",
                20,
                "eu",
                0.30,
                ("recsys-feature-completeness",),
                description="30 % of eu feature values null or absent",
            ),
            _Spec(
                "malformed-burst",
                "malformed_burst",
                20,
                None,
                _BURST_RATE,
                ("recsys-schema",),
                description="bad messages at 15 % of the model's traffic",
            ),
            _Spec(
                "ctr-drop",
                "ctr_drop",
                90,
                None,
                0.4,
                ("recsys-ctr",),
                "quality",
                detect_within_s=10800,
                description="40 % fewer clicks outside the control region: the click-through rate "
                "falls below 95 % of its baseline",
            ),
            _Spec(
                "us-popularity-drift",
                "feature_drift",
                60,
                "us",
                1.0,
                ("recsys-feature-drift",),
                "drift",
                detect_within_s=3600,
                description="us candidates come from a new, more popular catalogue: item_popularity + 0.2",
                feature="item_popularity",
                offset=0.2,
            ),
            _Spec(
                "silent-model",
                "silent_model",
                30,
                None,
                1.0,
                (
                    "recsys-availability",
                    "recsys-latency",
                    "recsys-serving-freshness-p95",
                    "recsys-feature-completeness",
                    "recsys-schema",
                ),
                "infrastructure",
                "no-data",
                900,
                description="no inference events at all for the model",
            ),
        ),
    ),
}


def _incident_segment(s: _Spec) -> dict[str, str]:
    """The segment an incident's alert should name: the canary's, a region's or the whole model."""
    if s.kind == "canary_regression":
        return {"variant": "canary"}
    return {} if s.region is None else {"region": s.region}


_FLAGGED = (0.5, 0.95)  # scores of wrongly flagged legitimate events in quality incidents
_ML_KINDS = ("quality_drop", "ctr_drop", "feature_drift", "fairness_regression")


def min_duration_s(scenario: str) -> float:
    """Shortest timeline that fits the scenario's incidents with their clean gaps."""
    specs = [s for s in _definition(scenario).incidents if s.at_minute is None]
    busy = sum(s.minutes * 60 for s in specs)
    return _LEAD_S + busy + (len(specs) - 1) * _MIN_GAP_S + _MIN_TAIL_S


def _definition(scenario: str) -> _Def:
    try:
        return _DEFS[scenario]
    except KeyError:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})") from None


def _layout(d: _Def, start: float, duration_s: float) -> list[tuple[_Spec, float, float]]:
    """Place incidents in order; extra time beyond the minimum widens the gaps and the tail."""
    need = min_duration_s(d.model)
    if duration_s < need:
        raise ValueError(
            f"duration_s={duration_s:g} is too short for the {d.model} scenario: "
            f"its incidents and clean gaps need at least {need:g} s"
        )
    fixed = [s for s in d.incidents if s.at_minute is not None]
    out = [(s, float(round(start + s.at_minute * 60)), float(round(start + (s.at_minute + s.minutes) * 60)))
           for s in fixed]  # fmt: skip
    rest = [s for s in d.incidents if s.at_minute is None]
    extra = (duration_s - need) / len(rest)
    at = start + _LEAD_S
    for s in rest:
        end = at + s.minutes * 60
        out.append((s, float(round(at)), float(round(end))))
        at = end + _MIN_GAP_S + extra
    return out


# --- helpers --------------------------------------------------------------------------------


def _rfc3339(ts: np.ndarray) -> list[str]:
    """RFC 3339 UTC strings with milliseconds, e.g. 2026-01-01T00:00:00.123Z."""
    ms = np.round(ts * 1000.0).astype(np.int64).astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]


def _ts_values(ts: np.ndarray, rfc: np.ndarray) -> list[Any]:
    """Epoch floats, with the `rfc`-flagged ones as RFC 3339 strings."""
    out: list[Any] = ts.tolist()
    pos = np.flatnonzero(rfc)
    if pos.size:
        for p, s in zip(pos.tolist(), _rfc3339(ts[pos]), strict=True):
            out[p] = s
    return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a chunk of acyclic dicts is built (it would rescan them)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _lognormal(rng: np.random.Generator, params: tuple[float, float], n: int) -> np.ndarray:
    return rng.lognormal(np.log(params[0]), params[1], n)


def _feature_dicts(cols: list[_Col], idx: np.ndarray, missing: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Feature objects for rows `idx`; `missing` (0 present, 1 null, 2 absent) per value."""
    names = [c.name for c in cols]
    values = [c.values(idx) for c in cols]
    m = None if missing is None else missing[idx]
    if m is not None:
        for j, col in enumerate(values):
            for p in np.flatnonzero(m[:, j] == 1).tolist():
                col[p] = None
    out = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    if m is not None:
        rows, js = np.nonzero(m == 2)
        for p, j in zip(rows.tolist(), js.tolist(), strict=True):
            del out[p][names[j]]
    return out


def _manifest(
    name: str,
    seed: int,
    events: int,
    start: float,
    end: float,
    incidents: list[Incident],
    bad: dict[str, int],
    counts: dict[str, int],
) -> dict:
    return {
        "scenario": name,
        "seed": seed,
        "events": events,
        "start": start,
        "end": end,
        "control": dict(CONTROL),
        "incidents": [asdict(i) for i in incidents],
        "bad_messages": dict(bad),
        "counts": counts,
    }


# --- the plan: every column of a scenario, serialised on demand ------------------------------


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
        chunk_size: int = _CHUNK,
        healthy: bool = False,
    ) -> None:
        if events < 1:
            raise ValueError(f"events must be >= 1, got {events}")
        self.chunk_size = max(1, int(chunk_size))
        self.d = d = _definition(scenario)
        self.name, self.events, self.seed = scenario, int(events), int(seed)
        self.start, self.end = float(start), float(start) + float(duration_s)
        layout = [] if healthy else _layout(d, self.start, float(duration_s))
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
                    segment=_incident_segment(s),
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

    def _build_inference(self, rng: np.random.Generator, layout: list[tuple[_Spec, float, float]]) -> None:
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
        self.variant = (rng.random(n) < _CANARY_SHARE).astype(np.int8)
        self.ts_rfc = rng.random(n) < _RFC_SHARE
        self.fts_rfc = rng.random(n) < _RFC_SHARE
        r = rng.random(n)
        status = np.zeros(n, np.int8)
        status[r < d.p_error + d.p_timeout] = 2
        status[r < d.p_error] = 1
        latency = _lognormal(rng, d.latency_ms, n)
        fast_fail = rng.uniform(0.5, 5.0, n)
        latency = np.where(status == 1, fast_fail, latency)
        latency = np.where(status == 2, rng.uniform(*d.timeout_ms, n), latency)
        lag = _lognormal(rng, d.serving_lag_s, n)
        feats, y, score, prediction = d.draw(rng, t, self.region, second)
        self.feats = feats
        nf = len(feats)
        missing = np.where(
            rng.random((n, nf), dtype=np.float32) < _MISSING_SHARE,
            np.where(rng.random((n, nf), dtype=np.float32) < 0.5, 1, 2),
            0,
        ).astype(np.int8)
        # incident draws, made whether or not an incident uses them (stable streams)
        u_inc = rng.random(n)
        spike = rng.uniform(300.0, 800.0, n)
        stale = rng.uniform(*d.stale_lag_s, n)
        u_miss = rng.random((n, nf), dtype=np.float32)
        null_or_absent = np.where(rng.random((n, nf), dtype=np.float32) < 0.5, 1, 2).astype(np.int8)
        flagged = np.round(rng.uniform(*_FLAGGED, n), 4)
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
            elif s.kind in _ML_KINDS:
                self._ml_incident(s, w, u_inc, flagged, legit_score, feats, y, score, prediction)
        self.status, self.missing = status, missing
        self.latency = np.round(latency, 1)
        self.feature_ts = np.round(t - lag, 3)
        self.y, self.score, self.prediction = y, score, prediction

    def _ml_incident(
        self,
        s: _Spec,
        w: np.ndarray,
        u: np.ndarray,
        flagged: np.ndarray,
        legit_score: np.ndarray,
        feats: list[_Col],
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
        x = idx.astype(np.uint64) * np.uint64(_ID_MULT) + np.uint64(self._id_offset)
        x &= np.uint64(_ID_MASK)
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
                _ts_values(self.t[idx], self.ts_rfc[idx]),
                _STATUS[status].tolist(),
                self.latency[idx].tolist(),
                pred,
                score,
                self.seg_key[idx].tolist(),
                _feature_dicts(self.feats, idx, self.missing),
                _ts_values(self.feature_ts[idx], self.fts_rfc[idx]),
                _VARIANT[self.variant[idx]].tolist(),
                strict=True,
            )
        ]

    # labels ----------------------------------------------------------------------------------

    def _build_labels(self, rng: np.random.Generator) -> None:
        n = self.events
        mdn, sigma, lo, hi = self.d.label_delay_s
        delay = np.clip(rng.lognormal(np.log(mdn), sigma, n), lo, hi)
        keep = rng.random(n) >= _UNLABELLED_SHARE
        rfc = rng.random(n) < _RFC_SHARE
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
                self._ids(idx), self.y[idx].tolist(), _ts_values(self.lab_ts[a:b], self.lab_rfc[a:b]), strict=True
            )
        ]

    # ml.features -----------------------------------------------------------------------------

    def _build_features(self, rng: np.random.Generator, layout: list[tuple[_Spec, float, float]]) -> None:
        d = self.d
        n = max(1, self.events // 2)
        ts = np.round(np.sort(rng.uniform(self.start, self.end, n)), 3)
        region = rng.choice(len(d.values[0]), n, p=d.weights[0]).astype(np.int8)
        second = rng.choice(len(d.values[1]), n, p=d.weights[1]).astype(np.int8)
        self.f_cols = d.draw(rng, ts, region, second)[0]
        self.f_entity = rng.integers(0, max(1000, self.events // 5), n)
        lag = _lognormal(rng, d.pipeline_lag_s, n)
        stale = rng.uniform(*d.stale_lag_s, n)
        for s, a, b in layout:
            if s.kind == "stale_features":
                w = (ts >= a) & (ts < b) & (region == d.values[0].index(s.region or ""))
                lag[w] = stale[w] + lag[w]
        self.f_ts, self.f_region = ts, region
        self.f_event_ts = np.round(ts - lag, 3)
        self.f_ts_rfc = rng.random(n) < _RFC_SHARE
        self.f_ev_rfc = rng.random(n) < _RFC_SHARE
        self._f_segments = [{d.attrs[0]: r} for r in d.values[0]]

    def _feature_event_dicts(self, a: int, b: int) -> list[dict[str, Any]]:
        idx = np.arange(a, b)
        p, model, segs = self.d.entity_prefix, self.d.model, self._f_segments
        return [
            {"model": model, "entity": f"{p}{e:07d}", "segment": segs[r], "features": f, "event_ts": ev, "ts": ts}
            for e, r, f, ev, ts in zip(
                self.f_entity[a:b].tolist(),
                self.f_region[a:b].tolist(),
                _feature_dicts(self.f_cols, idx),
                _ts_values(self.f_event_ts[a:b], self.f_ev_rfc[a:b]),
                _ts_values(self.f_ts[a:b], self.f_ts_rfc[a:b]),
                strict=True,
            )
        ]

    # malformed burst -------------------------------------------------------------------------

    def _build_bad(self, rng: np.random.Generator, s: _Spec, a: float, b: float) -> dict[str, int]:
        """Bad messages at `s.fraction` of the model's traffic in [a, b), none for the control."""
        t = self.t
        window = (t >= a) & (t < b)
        control = self.d.values[0].index(CONTROL["region"])
        cand = np.flatnonzero(window & (self.region != control))
        nb = min(round(s.fraction * int(window.sum())), int(cand.size))
        counts = np.floor(np.array(_BAD_WEIGHTS) * nb).astype(np.int64)
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
            lines.append(_corrupt(kind, d, int(variant[j]), float(t[base[j]])))
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
        return _manifest(
            self.name, self.seed, self.events, self.start, self.end, self.incidents, self.bad_messages, self.counts()
        )

    def inference_chunks(self) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(ts, lines) chunks of ml.inference in file order; bad messages sit after their base."""
        dumps, n = orjson.dumps, self.events
        bad_pos, j = self._bad_pos, 0
        for a in range(0, n, self.chunk_size):
            b = min(a + self.chunk_size, n)
            with _gc_paused():
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
            with _gc_paused():
                lines = [dumps(x) for x in self._label_dicts(a, b)]
            yield self.lab_ts[a:b], lines

    def feature_chunks(self) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(ts, lines) chunks of ml.features, sorted by ts."""
        dumps = orjson.dumps
        for a in range(0, self.f_ts.size, self.chunk_size):
            b = min(a + self.chunk_size, self.f_ts.size)
            with _gc_paused():
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
                with _gc_paused():
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


def _corrupt(kind: str, d: dict[str, Any], variant: int, ts: float) -> bytes:
    """One bad message of `kind` made from the healthy event `d` at `ts` (`d` is not mutated)."""
    dumps = orjson.dumps
    if kind == "duplicate_id":  # a redelivered copy of a real event, byte for byte
        return dumps(d)
    if kind == "malformed_json":
        raw = dumps(d)
        v = variant % 4
        if v == 0:  # truncated mid-message; the `"model":"..."` prefix survives
            cut = len(raw) // 3 + variant % max(1, len(raw) - 1 - len(raw) // 3)
            return raw[:cut]
        if v == 1:  # an unquoted key
            return raw.replace(b'"status":', b"status:", 1)
        if v == 2:  # trailing comma
            return raw[:-1] + b",}"
        return raw[:-1] + b',"note":"\xc3\x28"}'  # invalid UTF-8
    d = dict(d)
    if kind == "nan_token":
        target = ("score", "latency_ms", "features")[variant % 3]
        if target == "features":
            feats = dict(d["features"])
            feats[next(iter(feats), "x")] = _NAN
            d["features"] = feats
        else:
            d[target] = _NAN
        return dumps(d).replace(b'"' + _NAN.encode() + b'"', b"NaN")
    if kind == "wrong_types":
        field_name, value = (
            ("latency_ms", "fast"),
            ("score", "high"),
            ("status", 500),
            ("segment", "eu"),
            ("features", [1, 2, 3]),
            ("ts", True),
            ("id", 12345),
        )[variant % 7]
        d[field_name] = value
    elif kind == "missing_fields":
        del d[("id", "ts", "status", "latency_ms", "version")[variant % 5]]
    elif kind == "absurd_timestamp":
        v = variant % 3
        if v == 0:  # year 2150, epoch seconds
            d["ts"] = 5_680_281_600.0 + ts % 86_400
        elif v == 1:
            d["ts"] = "2150-01-01T00:00:00.000Z"
        else:  # epoch milliseconds written as seconds
            d["ts"] = round(ts * 1000.0)
    elif kind == "oversized":
        size = len(dumps(d))
        d["debug"] = "x" * (MAX_MESSAGE_BYTES - size + 64 + variant % 8192)
    return dumps(d)


# --- public entry points --------------------------------------------------------------------


def plan(
    scenario: str,
    events: int = 300_000,
    seed: int = 7,
    start: float = DEFAULT_START,
    duration_s: float = DEFAULT_DURATION_S,
    chunk_size: int = _CHUNK,
    healthy: bool = False,
) -> ScenarioPlan:
    """Draw a scenario's columns without serialising them (for streaming large scenarios).

    `chunk_size` (lines per chunk) changes memory use only, never the bytes. `healthy` leaves the
    incidents out: known-good history for `sloguard baseline`.
    """
    return ScenarioPlan(scenario, events, seed, start, duration_s, chunk_size, healthy)


def generate(
    scenario: str,
    events: int = 300_000,
    seed: int = 7,
    start: float = DEFAULT_START,
    duration_s: float = DEFAULT_DURATION_S,
) -> Scenario:
    """Generate `scenario` (fraud | recsys): `events` healthy inference events plus bad messages.

    The timeline needs at least `min_duration_s(scenario)` seconds (under 14 h for each); the
    default of 14 h fits both.
    """
    return plan(scenario, events, seed, start, duration_s).materialise()


def write_scenario(scenario: Scenario | ScenarioPlan, out_dir: Path) -> dict[str, Path]:
    """Write inference.jsonl, labels.jsonl, features.jsonl and manifest.json into `out_dir`.

    A `ScenarioPlan` is streamed chunk by chunk; both give the same bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f for k, f in FILES.items()}
    for kind in ("inference", "labels", "features"):
        with paths[kind].open("wb") as fh:
            if isinstance(scenario, ScenarioPlan):
                for _, lines in scenario.chunks(kind):
                    if lines:
                        fh.write(b"\n".join(lines) + b"\n")
            else:
                lines = getattr(scenario, kind)
                for a in range(0, len(lines), _CHUNK):
                    fh.write(b"\n".join(lines[a : a + _CHUNK]) + b"\n")
    paths["manifest"].write_bytes(orjson.dumps(scenario.manifest(), option=orjson.OPT_INDENT_2) + b"\n")
    return paths
