"""The two scenarios, fraud and recsys, as data, and their incidents laid out in time.

Each `Definition` names its columns, segments, healthy rates and `IncidentSpec` list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sloguard.core.synth.contract import BURST_RATE, LEAD_S, MIN_GAP_S, MIN_TAIL_S, SCENARIOS


@dataclass(frozen=True)
class Column:
    """One feature column: values (numbers, or codes into `vocab` for strings)."""

    name: str
    data: np.ndarray
    vocab: np.ndarray | None = None

    def values(self, idx: np.ndarray) -> list[Any]:
        if self.vocab is not None:
            return self.vocab[self.data[idx]].tolist()
        return self.data[idx].tolist()


@dataclass(frozen=True)
class IncidentSpec:
    """One planned incident, in minutes; placed on the timeline by `layout_incidents`."""

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


Draw = tuple[list[Column], np.ndarray, np.ndarray, np.ndarray]  # features, label, score, prediction


@dataclass(frozen=True)
class Definition:
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
    draw: Callable[[np.random.Generator, np.ndarray, np.ndarray, np.ndarray], Draw]
    prediction_prefix: str | None  # predictions written as f"{prefix}{n}" when set
    incidents: tuple[IncidentSpec, ...]


def _fraud(rng: np.random.Generator, t: np.ndarray, region: np.ndarray, second: np.ndarray) -> Draw:
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
        Column("amount", amount),
        Column("merchant_risk", risk),
        Column("txn_count_1h", txn),
        Column("account_age_days", age),
        Column("card_present", card, np.array(["no", "yes"], dtype=object)),
    ]
    score = np.round(np.where(fraud, rng.beta(8.0, 1.5, n), rng.beta(1.2, 14.0, n)), 4)
    return cols, y, score, (score >= 0.5).astype(np.int64)


_RECSYS_UTC_OFFSET_H = np.array([1, -5, 8])  # eu, us, apac


def _recsys(rng: np.random.Generator, t: np.ndarray, region: np.ndarray, second: np.ndarray) -> Draw:
    """Recommendation requests: hour_of_day is the local hour; the score is the predicted click
    probability, the label a click drawn from it (CTR ~20 %), the prediction an item id."""
    n = t.size
    hour = (np.floor(t / 3600.0).astype(np.int64) + _RECSYS_UTC_OFFSET_H[region]) % 24
    popularity = np.round(rng.beta(2.0, 5.0, n), 4)
    cols = [
        Column("user_embedding_norm", np.round(rng.normal(1.0, 0.12, n), 4)),
        Column("item_popularity", popularity),
        Column("session_length", rng.poisson(6.0, n).astype(np.int64) + 1),
        Column("hour_of_day", hour),
        Column(
            "device",
            rng.choice(3, n, p=[0.4, 0.4, 0.2]).astype(np.int8),
            np.array(["ios", "android", "web"], dtype=object),
        ),
    ]
    score = np.round(np.clip(rng.beta(2.0, 8.0, n) * (0.4 + 2.1 * popularity), 0.0, 1.0), 4)
    y = (rng.random(n) < score).astype(np.int64)
    return cols, y, score, rng.integers(1, 500_000, n)


_DEFS: dict[str, Definition] = {
    "fraud": Definition(
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
            IncidentSpec(
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
            IncidentSpec(
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
            IncidentSpec(
                "us-latency-spike",
                "latency_spike",
                25,
                "us",
                0.85,
                ("fraud-latency", "fraud-latency-p99"),
                "infrastructure",
                description="85 % of us requests take 300-800 ms",
            ),
            IncidentSpec(
                "latam-stale-features",
                "stale_features",
                25,
                "latam",
                1.0,
                ("fraud-stale-features", "fraud-data-quality"),
                description="latam features computed ~26 h earlier (feature_ts and ml.features)",
            ),
            IncidentSpec(
                "eu-missing-features",
                "missing_features",
                20,
                "eu",
                0.35,
                ("fraud-feature-completeness", "fraud-data-quality"),
                description="35 % of eu feature values null or absent",
            ),
            IncidentSpec(
                "malformed-burst",
                "malformed_burst",
                20,
                None,
                BURST_RATE,
                ("fraud-schema",),
                description="bad messages at 15 % of the model's traffic",
            ),
            IncidentSpec(
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
            IncidentSpec(
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
            IncidentSpec(
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
            IncidentSpec(
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
    "recsys": Definition(
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
            IncidentSpec(
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
            IncidentSpec(
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
            IncidentSpec(
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
            IncidentSpec(
                "eu-missing-features",
                "missing_features",
                20,
                "eu",
                0.30,
                ("recsys-feature-completeness",),
                description="30 % of eu feature values null or absent",
            ),
            IncidentSpec(
                "malformed-burst",
                "malformed_burst",
                20,
                None,
                BURST_RATE,
                ("recsys-schema",),
                description="bad messages at 15 % of the model's traffic",
            ),
            IncidentSpec(
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
            IncidentSpec(
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
            IncidentSpec(
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


def incident_segment(s: IncidentSpec) -> dict[str, str]:
    """The segment an incident's alert should name: the canary's, a region's or the whole model."""
    if s.kind == "canary_regression":
        return {"variant": "canary"}
    return {} if s.region is None else {"region": s.region}


FLAGGED = (0.5, 0.95)  # scores of wrongly flagged legitimate events in quality incidents


ML_KINDS = ("quality_drop", "ctr_drop", "feature_drift", "fairness_regression")


def min_duration_s(scenario: str) -> float:
    """Shortest timeline that fits the scenario's incidents with their clean gaps."""
    specs = [s for s in definition(scenario).incidents if s.at_minute is None]
    busy = sum(s.minutes * 60 for s in specs)
    return LEAD_S + busy + (len(specs) - 1) * MIN_GAP_S + MIN_TAIL_S


def definition(scenario: str) -> Definition:
    try:
        return _DEFS[scenario]
    except KeyError:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})") from None


def layout_incidents(d: Definition, start: float, duration_s: float) -> list[tuple[IncidentSpec, float, float]]:
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
    at = start + LEAD_S
    for s in rest:
        end = at + s.minutes * 60
        out.append((s, float(round(at)), float(round(end))))
        at = end + MIN_GAP_S + extra
    return out
