"""Tests for sloguard.core.synth.scenarios: determinism, the event contract, and that the incidents are real.

The burn-rate checks re-derive, from the generated events alone, when the SRE-workbook fast-burn
rule (burn >= 14.4 over 1 h and 5 m, 30-day window) would fire for each SLO of the example config
and key ({}, each region and the canary variant): every incident must be detected within its
`detect_within_s`, and nothing may fire outside the incidents, least of all for the control segment.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

from sloguard.core.spec.timeutil import parse_duration
from sloguard.core.synth.contract import (
    BAD_KINDS,
    CONTROL,
    DEFAULT_DURATION_S,
    DEFAULT_START,
    MAX_MESSAGE_BYTES,
    SCENARIOS,
    Incident,
    Scenario,
    incidents_from_manifest,
)
from sloguard.core.synth.definitions import min_duration_s
from sloguard.core.synth.scenarios import generate, plan, write_scenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
N = 60_000
SEED = 11
FAST_BURN = 14.4
MIN_EVENTS = 100


def _ts(value: Any) -> float:
    """Epoch seconds of a wire timestamp (float or RFC 3339 with Z)."""
    if type(value) is str:
        return datetime.fromisoformat(value).timestamp()
    return float(value)


def _slos(name: str) -> dict[str, dict]:
    cfg = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return {s["name"]: s for s in cfg["slos"]}


def _features_of(name: str) -> list[str]:
    cfg = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return cfg["models"][name]["features"]


def _classify(line: bytes, seen: set[str], start: float, end: float) -> str | None:
    """Which kind of bad message `line` is, or None for a healthy inference event."""
    if len(line) > MAX_MESSAGE_BYTES:
        return "oversized"
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "nan_token" if b"NaN" in line else "malformed_json"
    required = ("id", "model", "version", "ts", "status", "latency_ms", "segment", "features",
                "feature_ts", "variant", "prediction", "score")
    if any(k not in d for k in required):
        return "missing_fields"
    types_ok = (
        type(d["id"]) is str and type(d["model"]) is str and type(d["version"]) is str
        and type(d["ts"]) in (float, int, str) and d["status"] in ("ok", "error", "timeout")
        and type(d["latency_ms"]) in (float, int) and type(d["segment"]) is dict
        and type(d["features"]) is dict and type(d["feature_ts"]) in (float, int, str)
        and d["variant"] in ("stable", "canary")
        and (d["score"] is None or type(d["score"]) in (float, int))
        and all(type(v) is str for v in d["segment"].values())
        and all(v is None or type(v) in (float, int, str) for v in d["features"].values())
    )
    if not types_ok:
        return "wrong_types"
    if not start <= _ts(d["ts"]) <= end:
        return "absurd_timestamp"
    if d["id"] in seen:
        return "duplicate_id"
    seen.add(d["id"])
    return None


@dataclass
class Parsed:
    """Columns of a generated scenario, read back from its bytes."""

    sc: Scenario
    ts: np.ndarray  # healthy inference events
    region: np.ndarray
    variant: np.ndarray
    status: np.ndarray
    latency: np.ndarray
    n_missing: np.ndarray
    lag: np.ndarray
    events: list[dict]
    bad: Counter
    all_ts: np.ndarray  # every inference line, bad ones at the time of the line before them
    all_bad: np.ndarray
    f_ts: np.ndarray  # ml.features
    f_lag: np.ndarray
    f_region: np.ndarray
    labels: list[dict]


def _parse(sc: Scenario) -> Parsed:
    names = _features_of(sc.name)
    seen: set[str] = set()
    events, bad, all_ts, all_bad = [], Counter(), [], []
    last = sc.start
    for line in sc.inference:
        kind = _classify(line, seen, sc.start, sc.end)
        if kind is None:
            d = orjson.loads(line)
            events.append(d)
            last = _ts(d["ts"])
        else:
            bad[kind] += 1
        all_ts.append(last)
        all_bad.append(kind is not None)
    feats = [orjson.loads(x) for x in sc.features]
    ts = np.array([_ts(d["ts"]) for d in events])
    return Parsed(
        sc=sc, ts=ts, region=np.array([d["segment"]["region"] for d in events]),
        variant=np.array([d["variant"] for d in events]),
        status=np.array([d["status"] for d in events]),
        latency=np.array([d["latency_ms"] for d in events]),
        n_missing=np.array([sum(d["features"].get(k) is None for k in names) for d in events]),
        lag=ts - np.array([_ts(d["feature_ts"]) for d in events]), events=events, bad=bad,
        all_ts=np.array(all_ts), all_bad=np.array(all_bad),
        f_ts=np.array([_ts(d["ts"]) for d in feats]),
        f_lag=np.array([_ts(d["ts"]) - _ts(d["event_ts"]) for d in feats]),
        f_region=np.array([d["segment"]["region"] for d in feats]),
        labels=[orjson.loads(x) for x in sc.labels],
    )


@pytest.fixture(scope="module", params=SCENARIOS)
def parsed(request: pytest.FixtureRequest) -> Parsed:
    return _parse(generate(request.param, events=N, seed=SEED))


# --- burn-rate oracle -----------------------------------------------------------------------


def _ratio_fires(ts: np.ndarray, bad: np.ndarray, total: np.ndarray, objective: float,
                 start: float, end: float) -> np.ndarray:
    """Minute ticks at which fast-burn holds: bad/total >= 14.4 x budget over 1 h and 5 m."""
    ticks = np.arange(start + 60.0, end + 60.0, 60.0)
    cb = np.concatenate([[0.0], np.cumsum(bad)])
    ct = np.concatenate([[0.0], np.cumsum(total)])
    hi = np.searchsorted(ts, ticks, side="right")
    ok = np.ones(ticks.size, bool)
    for window, min_n in ((3600.0, MIN_EVENTS), (300.0, 1)):
        lo = np.searchsorted(ts, ticks - window, side="right")
        n = ct[hi] - ct[lo]
        frac = np.divide(cb[hi] - cb[lo], n, out=np.zeros(ticks.size), where=n > 0)
        ok &= (frac >= FAST_BURN * (1 - objective)) & (hi - lo >= min_n)
    return ticks[ok]


def _slice_fires(ts: np.ndarray, values: np.ndarray, metric: str, objective: float,
                 target: float, min_samples: int, start: float, end: float) -> np.ndarray:
    """Slice ends at which fast-burn holds for a 5-minute time-slice SLI."""
    edges = np.arange(start, end + 300.0, 300.0)
    which = np.searchsorted(edges, ts, side="right") - 1
    bad = np.zeros(edges.size - 1, bool)
    for s in range(edges.size - 1):
        v = values[which == s]
        if v.size < min_samples:
            continue
        if metric == "p99":
            bad[s] = np.quantile(v, 0.99) > objective
        elif metric == "p95":
            bad[s] = np.quantile(v, 0.95) > objective
        else:  # data quality: v holds min(1-missing, 1-stale) contributions as (missing, stale)
            bad[s] = min(1 - v[:, 0].mean(), 1 - v[:, 1].mean()) < objective
    fires = []
    for s in range(bad.size):
        last_hour = bad[max(0, s - 11): s + 1]
        if bad[s] and last_hour.sum() / 12 >= FAST_BURN * (1 - target):
            fires.append(edges[s + 1])
    return np.array(fires)


def _fires(p: Parsed, slo: dict, key: dict[str, str]) -> np.ndarray:
    """Fast-burn fire times of one SLO of the example config for one key ({} or a region)."""
    sc, sli = p.sc, slo["sli"]
    name, params = (sli, {}) if isinstance(sli, str) else next(iter(sli.items()))
    sel = np.ones(p.ts.size, bool) if not key else _where(p, key)
    start, end = sc.start, sc.end
    if name == "availability":
        return _ratio_fires(p.ts[sel], p.status[sel] != "ok", np.ones(sel.sum()),
                            slo["objective"], start, end)
    served = sel & (p.status != "error")
    if name == "latency":
        return _ratio_fires(p.ts[served], p.latency[served] > params["threshold_ms"],
                            np.ones(served.sum()), slo["objective"], start, end)
    if name == "completeness":
        n_feat = len(_features_of(sc.name))
        return _ratio_fires(p.ts[sel], p.n_missing[sel], np.full(sel.sum(), n_feat),
                            slo["objective"], start, end)
    if name == "freshness":
        max_age = parse_duration(params["max_age"])
        if params.get("source") == "features":
            if "variant" in key:  # ml.features events are not served by a version
                return np.zeros(0)
            fsel = np.ones(p.f_ts.size, bool) if not key else p.f_region == key["region"]
            return _ratio_fires(p.f_ts[fsel], p.f_lag[fsel] > max_age, np.ones(fsel.sum()),
                                slo["objective"], start, end)
        return _ratio_fires(p.ts[sel], p.lag[sel] > max_age, np.ones(sel.sum()),
                            slo["objective"], start, end)
    if name == "schema_violations":
        if key:  # bad messages of a burst are attributed to the whole model only
            return np.zeros(0)
        return _ratio_fires(p.all_ts, p.all_bad, np.ones(p.all_ts.size), slo["objective"],
                            start, end)
    b = slo["budgeting"]
    args = (b["target"], b["min_samples"], start, end)
    if name == "latency_quantile":
        return _slice_fires(p.ts[served], p.latency[served], "p99", slo["objective"], *args)
    if name == "freshness_quantile":
        return _slice_fires(p.ts[sel], p.lag[sel], "p95", slo["objective"], *args)
    if name == "data_quality":
        max_age = parse_duration(params["max_age"])
        n_feat = len(_features_of(sc.name))
        v = np.stack([p.n_missing[sel] / n_feat, p.lag[sel] > max_age], axis=1)
        return _slice_fires(p.ts[sel], v, "dq", slo["objective"], *args)
    raise AssertionError(f"no oracle for SLI {name}")


# --- determinism, counts, layout --------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = generate("fraud", events=5_000, seed=3)
    b = generate("fraud", events=5_000, seed=3)
    c = generate("fraud", events=5_000, seed=4)
    assert (a.inference, a.labels, a.features) == (b.inference, b.labels, b.features)
    assert a.manifest() == b.manifest()
    assert a.inference != c.inference


def test_streamed_plan_writes_the_same_bytes(tmp_path: Path) -> None:
    sc = generate("recsys", events=8_000, seed=5)
    mem = write_scenario(sc, tmp_path / "mem")
    streamed = write_scenario(plan("recsys", events=8_000, seed=5), tmp_path / "stream")
    assert set(mem) == {"inference", "labels", "features", "manifest"}
    for kind, path in mem.items():
        assert path.read_bytes() == streamed[kind].read_bytes(), kind
    assert mem["inference"].read_bytes().splitlines() == sc.inference


def test_chunk_size_never_changes_the_bytes() -> None:
    whole = plan("fraud", events=6_000, seed=9).materialise()
    small = plan("fraud", events=6_000, seed=9, chunk_size=97).materialise()
    assert (whole.inference, whole.labels, whole.features) == (
        small.inference, small.labels, small.features)
    assert sum(whole.bad_messages.values()) > 0


def test_merged_stream_is_in_event_time_order() -> None:
    p = plan("fraud", events=4_000, seed=2)
    rows = list(p.merged())
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    assert Counter(r[0] for r in rows) == Counter(p.counts())


def test_events_respected(parsed: Parsed) -> None:
    sc = parsed.sc
    assert len(parsed.events) == N == sc.events
    assert abs(len(sc.inference) - N) <= 0.01 * N
    assert sc.manifest()["counts"]["inference"] == len(sc.inference)


def test_incident_layout(parsed: Parsed) -> None:
    sc = parsed.sc
    incs = sorted(sc.incidents, key=lambda i: i.start)
    assert {i.kind for i in incs} == {"error_outage", "latency_spike", "stale_features",
                                      "missing_features", "malformed_burst", "silent_model",
                                      "feature_drift"} | (
        {"canary_regression", "quality_drop", "fairness_regression"} if sc.name == "fraud" else {"ctr_drop"})
    assert incs[0].start >= sc.start + (20 if sc.name == "fraud" else 80) * 60  # the canary regression comes first
    for a, b in itertools.pairwise(incs):
        assert b.start - a.end >= 45 * 60
    assert sc.end - incs[-1].end >= 20 * 60
    slos = _slos(sc.name)
    for i in incs:
        assert 15 * 60 <= i.end - i.start <= 90 * 60
        assert i.model == sc.name and set(i.slos) <= set(slos)
        assert i.segment in ({}, {"variant": "canary"}) or (set(i.segment) == {"region"} and i.segment != CONTROL)
        assert (i.segment == {"variant": "canary"}) == (i.kind == "canary_regression")
        assert (i.segment == {}) == (
            i.kind in ("malformed_burst", "silent_model", "quality_drop", "ctr_drop", "fairness_regression")
        )
        assert bool(i.group) == (i.kind == "fairness_regression") and bool(i.feature) == (i.kind == "feature_drift")
        assert i.rule == ("no-data" if i.kind == "silent_model" else "fast-burn")
        assert all(slos[s]["dimension"] == i.dimension or i.kind == "silent_model" for s in i.slos)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        generate("ads", events=100)
    with pytest.raises(ValueError, match="too short"):
        generate("fraud", events=100, duration_s=6 * 3600)
    assert max(min_duration_s(s) for s in SCENARIOS) <= DEFAULT_DURATION_S


def test_manifest_round_trips(parsed: Parsed, tmp_path: Path) -> None:
    sc = parsed.sc
    paths = write_scenario(sc, tmp_path)
    m = orjson.loads(paths["manifest"].read_bytes())
    assert (m["scenario"], m["seed"], m["events"]) == (sc.name, SEED, N)
    assert (m["start"], m["end"]) == (DEFAULT_START, DEFAULT_START + DEFAULT_DURATION_S)
    assert m["control"] == {"region": "apac"}
    assert incidents_from_manifest(m) == sc.incidents
    assert all(isinstance(i, Incident) for i in incidents_from_manifest(m))
    burst = next(i for i in m["incidents"] if i["kind"] == "malformed_burst")
    assert burst["bad_messages"] == m["bad_messages"]
    assert m["counts"] == {k: len(paths[k].read_bytes().splitlines())
                           for k in ("inference", "labels", "features")}


# --- the event contract -----------------------------------------------------------------------


def test_healthy_inference_events_follow_the_contract(parsed: Parsed) -> None:
    sc, names = parsed.sc, set(_features_of(parsed.sc.name))
    segs = {"fraud": {"region": {"eu", "us", "latam", "apac"},
                      "merchant_type": {"online", "pos", "atm"}},
            "recsys": {"region": {"eu", "us", "apac"}, "surface": {"home", "search", "email"}}}
    for d in parsed.events:
        assert d["model"] == sc.name
        assert set(d["features"]) <= names
        assert {k: {v} for k, v in d["segment"].items()}.keys() == segs[sc.name].keys()
        assert all(v in segs[sc.name][k] for k, v in d["segment"].items())
        assert d["latency_ms"] >= 0
        if d["status"] == "ok":
            assert 0.0 <= d["score"] <= 1.0 and d["prediction"] is not None
        else:
            assert d["score"] is None and d["prediction"] is None
    rfc = np.mean([type(d["ts"]) is str for d in parsed.events])
    canary = np.mean([d["variant"] == "canary" for d in parsed.events])
    assert 0.08 < rfc < 0.12 and 0.08 < canary < 0.12
    assert {type(d["card_present"]) for d in (e["features"] for e in parsed.events)
            if "card_present" in d} <= {str, type(None)}


def test_ids_unique_and_timestamps_sorted(parsed: Parsed) -> None:
    ids = [d["id"] for d in parsed.events]
    assert len(set(ids)) == len(ids)
    assert np.all(np.diff(parsed.ts) >= 0)
    assert parsed.ts.min() >= parsed.sc.start and parsed.ts.max() < parsed.sc.end
    lts = [_ts(d["ts"]) for d in parsed.labels]
    assert lts == sorted(lts) and max(lts) <= parsed.sc.end
    assert np.all(np.diff(parsed.f_ts) >= 0)
    every: Counter = Counter()
    for line in parsed.sc.inference:  # the only repeated ids are the injected duplicates
        try:
            d = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if type(d.get("id")) is str:
            every[d["id"]] += 1
    assert sum(n - 1 for n in every.values()) == parsed.sc.bad_messages["duplicate_id"]


def test_bad_messages_match_the_manifest(parsed: Parsed) -> None:
    sc = parsed.sc
    assert dict(parsed.bad) == {k: v for k, v in sc.bad_messages.items() if v}
    assert set(sc.bad_messages) == set(BAD_KINDS) and all(sc.bad_messages.values())
    burst = next(i for i in sc.incidents if i.kind == "malformed_burst")
    bad_ts = parsed.all_ts[parsed.all_bad]
    assert bad_ts.min() >= burst.start and bad_ts.max() < burst.end
    model = b'"model":"' + sc.name.encode() + b'"'
    for line, is_bad in zip(sc.inference, parsed.all_bad, strict=True):
        assert b"\n" not in line
        if is_bad:  # every bad message can still be attributed to its model
            assert model in line


def test_the_project_validator_agrees() -> None:
    events = pytest.importorskip("sloguard.core.messages.events")
    sc = generate("fraud", events=20_000, seed=SEED)
    seen: set[str] = set()
    for line in sc.inference:
        kind = _classify(line, seen, sc.start, sc.end)
        reason = events.validate_message("inference", line, frozenset({"fraud"}))
        assert (reason is None) == (kind in (None, "duplicate_id")), (kind, reason, line[:200])
    for kind in ("labels", "features"):
        assert all(events.validate_message(kind, x) is None for x in getattr(sc, kind))


def test_labels(parsed: Parsed) -> None:
    sc = parsed.sc
    by_id = {d["id"]: d for d in parsed.events}
    delays = []
    for lab in parsed.labels:
        pred = by_id[lab["id"]]
        assert pred["status"] == "ok" and lab["model"] == sc.name and lab["label"] in (0, 1)
        delays.append(_ts(lab["ts"]) - _ts(pred["ts"]))
    assert min(delays) >= 60 and max(delays) <= 6 * 3600
    early = [d for d in parsed.events
             if d["status"] == "ok" and _ts(d["ts"]) < sc.start + 3600]
    labelled = {lab["id"] for lab in parsed.labels}
    share = np.mean([d["id"] in labelled for d in early])
    assert 0.85 < share < 0.95
    y = np.array([lab["label"] for lab in parsed.labels])
    score = np.array([by_id[lab["id"]]["score"] for lab in parsed.labels])
    lo, hi = (0.012, 0.03) if sc.name == "fraud" else (0.15, 0.25)
    assert lo < y.mean() < hi
    assert score[y == 1].mean() > score[y == 0].mean() + (0.4 if sc.name == "fraud" else 0.02)


def test_feature_events(parsed: Parsed) -> None:
    sc = parsed.sc
    names = set(_features_of(sc.name))
    for line in sc.features[:2000]:
        d = orjson.loads(line)
        assert d["model"] == sc.name and isinstance(d["entity"], str)
        assert set(d["features"]) == names and set(d["segment"]) == {"region"}
    assert len(sc.features) == N // 2


# --- healthy baseline and incidents -----------------------------------------------------------


def _outside(p: Parsed, ts: np.ndarray, kinds: tuple[str, ...] = ()) -> np.ndarray:
    """Mask of `ts` outside every incident (or only those of `kinds`)."""
    keep = np.ones(ts.size, bool)
    for i in p.sc.incidents:
        if not kinds or i.kind in kinds:
            keep &= ~((ts >= i.start) & (ts < i.end))
    return keep


def test_healthy_baseline_spends_little_budget(parsed: Parsed) -> None:
    p, name = parsed, parsed.sc.name
    calm = _outside(p, p.ts)
    served = calm & (p.status != "error")
    n_feat = len(_features_of(name))
    assert (p.status[calm] != "ok").mean() <= (2e-4 if name == "fraud" else 5e-4)
    assert p.n_missing[calm].sum() / (calm.sum() * n_feat) < 0.001
    if name == "fraud":
        assert (p.latency[served] > 100).mean() < 0.003
        assert np.quantile(p.latency[served], 0.99) < 120
        assert p.lag[calm].max() < 12 * 3600
    else:
        assert (p.latency[served] > 150).mean() < 0.015
        assert np.quantile(p.lag[calm], 0.95) < 450
        f_calm = _outside(p, p.f_ts)
        assert (p.f_lag[f_calm] > 900).mean() < 0.01


def test_control_segment_stays_clean(parsed: Parsed) -> None:
    p, name = parsed, parsed.sc.name
    c = p.region == CONTROL["region"]
    assert c.sum() > 0.15 * N
    assert (p.status[c] != "ok").mean() < 5e-4
    assert (p.latency[c & (p.status != "error")] > (100 if name == "fraud" else 150)).mean() < 0.015
    assert p.n_missing[c].mean() < 0.005
    if name == "fraud":
        assert p.lag[c].max() < 12 * 3600
    else:
        assert np.quantile(p.lag[c], 0.95) < 450
        fc = p.f_region == CONTROL["region"]
        assert (p.f_lag[fc] > 900).mean() < 0.01
    silent = next(i for i in p.sc.incidents if i.kind == "silent_model")
    assert not np.any((p.ts >= silent.start) & (p.ts < silent.end))


def test_incidents_change_the_traffic(parsed: Parsed) -> None:
    p = parsed
    for inc in p.sc.incidents:
        during = (p.ts >= inc.start) & (p.ts < inc.end)
        where = during & _where(p, inc.segment) if inc.segment else during
        rest = ~during & _where(p, inc.segment) if inc.segment else ~during
        if inc.kind == "canary_regression":  # the canary fails outside the control; stable does not
            control = p.region == CONTROL["region"]
            assert 0.15 <= (p.status[where & ~control] == "error").mean() <= 0.35
            assert (p.status[where & control] != "ok").mean() < 1e-3
            assert (p.status[during & ~where] != "ok").mean() < 1e-3
        elif inc.kind == "error_outage":
            assert (p.status[where] == "error").mean() >= 0.45
            assert (p.status[rest & _outside(p, p.ts)] != "ok").mean() < 1e-3
            assert (p.status[during & ~where] != "ok").mean() < 1e-3
        elif inc.kind == "latency_spike":
            ok = p.status == "ok"
            assert (p.latency[where & ok] >= 300).mean() > 0.8
            assert (p.latency[during & ~where & ok] >= 300).mean() < 0.01
        elif inc.kind == "stale_features":
            assert p.lag[where].min() > (24 * 3600 if p.sc.name == "fraud" else 1800)
            fw = ((p.f_ts >= inc.start) & (p.f_ts < inc.end)
                  & (p.f_region == inc.segment["region"]))
            assert p.f_lag[fw].min() > (24 * 3600 if p.sc.name == "fraud" else 1800)
        elif inc.kind == "missing_features":
            share = p.n_missing[where].mean() / len(_features_of(p.sc.name))
            assert 0.2 <= share <= 0.5
        elif inc.kind in ("quality_drop", "fairness_regression", "ctr_drop"):
            _check_ml_incident(p, inc, during & (p.region != CONTROL["region"]), ~during)
        elif inc.kind == "feature_drift":
            value = np.array([d["features"].get(inc.feature) for d in p.events], dtype=float)
            ratio = np.nanmedian(value[where]) / np.nanmedian(value[rest & _outside(p, p.ts)])
            assert ratio > 20 if inc.feature == "amount" else ratio > 1.4
            assert np.nanmedian(value[during & ~where]) == pytest.approx(np.nanmedian(value[~during]), rel=0.1)
        elif inc.kind == "silent_model":
            assert not during.any()
            assert any(inc.start <= _ts(orjson.loads(x)["ts"]) < inc.end for x in p.sc.features)


def _check_ml_incident(p: Parsed, inc: Incident, hit: np.ndarray, calm: np.ndarray) -> None:
    """Quality, fairness and CTR incidents change predictions or labels, outside the control only."""
    truth = {lab["id"]: lab["label"] for lab in p.labels}
    ids = np.array([d["id"] for d in p.events])
    y = np.array([truth.get(i, -1) for i in ids])
    flagged = np.array([d.get("prediction") == 1 for d in p.events])
    control_during = (p.region == CONTROL["region"]) & ~calm
    if inc.kind == "quality_drop":  # frauds missed
        assert flagged[hit & (y == 1)].mean() < 0.6 < flagged[calm & (y == 1)].mean()
        assert flagged[control_during & (y == 1)].mean() > 0.9
    elif inc.kind == "fairness_regression":  # legitimate transactions of one group flagged
        (attr, value), = inc.group.items()
        group = np.array([d["segment"][attr] == value for d in p.events])
        assert 0.04 < flagged[hit & group & (y == 0)].mean() < 0.12
        assert flagged[hit & ~group & (y == 0)].mean() < 0.005
        assert flagged[calm & group & (y == 0)].mean() < 0.005
    else:  # fewer clicks
        assert y[hit & (y >= 0)].mean() < 0.8 * y[calm & (y >= 0)].mean()


def _keys(p: Parsed) -> list[dict[str, str]]:
    return [{}, *({"region": r} for r in sorted(set(p.region.tolist()))), {"variant": "canary"}]


def _where(p: Parsed, key: dict[str, str]) -> np.ndarray:
    """Mask of the healthy inference events in the segment `key` (one attribute)."""
    ((attr, value),) = key.items()
    return (p.variant if attr == "variant" else p.region) == value


def _touches(i: Incident, key: dict[str, str]) -> bool:
    """Whether incident `i` may make `key` burn: the whole model, its own segment, or a segment of
    another attribute that overlaps it (a region outage hits the canary's traffic there too, a
    canary regression every region but the control)."""
    return not i.segment or not key or i.segment == key or (set(i.segment) != set(key) and key != CONTROL)


def test_fast_burn_fires_only_for_the_incidents(parsed: Parsed) -> None:
    for key in _keys(parsed):
        _check_fast_burn(parsed, key)


#: SLIs this oracle does not model: labelled, drift and fairness SLOs are checked against
#: independent computations in test_quality_slos.py / test_drift_slos.py and end to end in test_replay.py.
_NOT_MODELLED = {"precision", "recall", "fpr", "label_rate", "drift", "fpr_gap"}


def _check_fast_burn(p: Parsed, key: dict[str, str]) -> None:
    for slo_name, slo in _slos(p.sc.name).items():
        sli = slo["sli"] if isinstance(slo["sli"], str) else next(iter(slo["sli"]))
        if sli in _NOT_MODELLED:
            continue
        fires = _fires(p, slo, key)
        mine = [i for i in p.sc.incidents if slo_name in i.slos and i.rule == "fast-burn"]
        allowed = [i for i in mine if _touches(i, key)]
        for t in fires:  # within an incident, or while its hour still fills the long window
            assert any(i.start <= t <= i.end + 3600 for i in allowed), (
                f"{slo_name} {key} fires at +{(t - p.sc.start) / 60:.0f} min outside incidents")
        for i in allowed:  # and the alert resolves once the incident is over
            after = np.arange(i.end + 60.0, i.end + 960.0, 60.0)
            assert not np.isin(after, fires).all(), f"{slo_name} {key}: {i.name} never resolves"
        if key == CONTROL:
            assert fires.size == 0, slo_name
        for i in mine:
            if i.segment == key:
                hit = fires[(fires >= i.start) & (fires <= i.start + i.detect_within_s)]
                assert hit.size, f"{slo_name} {key}: {i.name} not detected within bound"


def test_silent_model_would_raise_no_data(parsed: Parsed) -> None:
    p = parsed
    silent = next(i for i in p.sc.incidents if i.kind == "silent_model")
    before = p.ts[p.ts < silent.start].max()
    after = p.ts[p.ts >= silent.start].min()
    assert after - before >= 30 * 60 - 1
    assert before + 10 * 60 <= silent.start + silent.detect_within_s
    assert math.isclose(after, silent.end, abs_tol=60)


@pytest.mark.slow
def test_a_million_fraud_events(tmp_path: Path) -> None:
    paths = write_scenario(plan("fraud", events=1_000_000, seed=1), tmp_path)
    m = orjson.loads(paths["manifest"].read_bytes())
    with paths["inference"].open("rb") as fh:
        lines = sum(1 for _ in fh)
    assert lines == m["counts"]["inference"] == 1_000_000 + sum(m["bad_messages"].values())
