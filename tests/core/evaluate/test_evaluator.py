"""The evaluator against hand counts, numpy and the SRE workbook's burn-rate behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import T0, epoch, event, make_config, of, roundtrip, run, steady
from msgspec import UNSET

from sloguard.core.evaluate.alerts import alert_id
from sloguard.core.evaluate.evaluator import ModelEvaluator

AVAILABILITY = {"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.999}


def test_full_outage_against_999_pages_within_two_minutes_and_resolves_after_it_ends():
    """SRE workbook, ch. 5: a 100 % outage burns 1000x; the 1h/5m rule must page in < 2 min."""
    config = make_config([AVAILABILITY])
    start, end = T0 + 2 * 3600, T0 + 2 * 3600 + 20 * 60
    events = steady(T0, start, 10) + steady(start, end, 10, status="error") + steady(end, end + 2 * 3600, 10)
    out, _ = run(config, events)
    pages = of(out, "alert", rule="fast-burn", segment={}, slo="avail")
    assert [a.state for a in pages] == ["firing", "resolved"]
    fired, resolved = epoch(pages[0].ts), epoch(pages[1].ts)
    assert start < fired <= start + 120
    # the short window (5m) clears five minutes after the outage, give or take one tick; the page
    # resolves once the rule has stayed false for the resolve hold (default five ticks)
    assert end + 5 * 60 <= epoch(pages[1].cleared_at) <= end + 6 * 60
    assert epoch(pages[1].cleared_at) + 5 * 60 == resolved
    assert not [a for a in of(out, "alert", state="firing") if epoch(a.ts) < start]
    assert pages[0].severity == "page" and pages[0].owner == "sre"
    assert pages[0].actions == ["roll back"]
    assert pages[0].id == pages[1].id == alert_id("avail", "m", "", "fast-burn")


def test_ratio_counts_and_burn_rates_match_hand_counts():
    rng = np.random.default_rng(3)
    config = make_config(
        [
            AVAILABILITY,
            {
                "name": "lat",
                "dimension": "infrastructure",
                "sli": {"latency": {"threshold_ms": 100}},
                "objective": 0.95,
            },
            {
                "name": "fresh",
                "dimension": "data",
                "sli": {"freshness": {"max_age": "15m"}},
                "objective": 0.95,
            },
            {"name": "complete", "dimension": "data", "sli": "completeness", "objective": 0.99},
        ]
    )
    n = 6000
    ts = T0 + np.sort(rng.uniform(0, 3 * 3600, n))
    status = rng.choice(["ok", "error", "timeout"], n, p=[0.9, 0.06, 0.04])
    latency = rng.gamma(2.0, 40.0, n)
    lag = rng.exponential(400.0, n)
    region = rng.choice(["eu", "us"], n)
    missing = rng.random((n, 2)) < 0.02
    events = [
        event(
            i,
            float(ts[i]),
            status=str(status[i]),
            latency_ms=float(latency[i]),
            region=str(region[i]),
            lag_s=float(lag[i]),
            features={"a": None if missing[i, 0] else 1.0, **({} if missing[i, 1] else {"b": "x"})},
        )
        for i in range(n)
    ]
    out, _ = run(config, events)
    tick = of(out, "budget", slo="avail", segment={})[-1].ts
    t = epoch(tick)
    seen = ts < t
    eu = seen & (region == "eu")
    timed = status != "error"
    expect = {
        "avail": (status == "ok", np.ones(n, bool), 1),
        "lat": (timed & (latency <= 100), timed, 1),
        "fresh": (lag <= 900, np.ones(n, bool), 1),
    }
    for name, (good, valid, _) in expect.items():
        for mask, segment in ((seen, {}), (eu, {"region": "eu"})):
            b = of(out, "budget", slo=name, segment=segment, ts=tick)[0]
            assert b.good == np.sum(good & valid & mask), name
            assert b.total == np.sum(valid & mask), name
    b = of(out, "budget", slo="complete", segment={}, ts=tick)[0]
    assert b.total == 2 * seen.sum()
    assert b.good == 2 * seen.sum() - missing[seen].sum()
    # burn over the last hour by hand: (bad / total in [t - 1h, t)) / (1 - objective)
    last_hour = (ts >= t - 3600) & seen
    bad = np.sum((status != "ok") & last_hour)
    b = of(out, "budget", slo="avail", segment={}, ts=tick)[0]
    assert b.burn_rates["1h"] == pytest.approx(bad / last_hour.sum() / 0.001, rel=1e-4)
    assert b.events["1h"] == last_hour.sum()
    total = seen.sum()
    assert b.budget_remaining == pytest.approx(
        1 - np.sum((status != "ok") & seen) / (0.001 * total), rel=1e-5
    )


def test_latency_quantile_slices_match_numpy_within_the_sketch_error():
    rng = np.random.default_rng(11)
    config = make_config(
        [
            {
                "name": "p99",
                "dimension": "infrastructure",
                "sli": {"latency_quantile": {"quantile": 0.99}},
                "objective": 250,
                "budgeting": {"timeslices": "5m", "min_samples": 50, "target": 0.99},
            }
        ]
    )
    n = 20_000
    ts = T0 + np.sort(rng.uniform(0, 3600, n))
    latency = rng.lognormal(3.5, 0.8, n)
    status = rng.choice(["ok", "error", "timeout"], n, p=[0.95, 0.03, 0.02])
    events = [event(i, float(ts[i]), status=str(status[i]), latency_ms=float(latency[i])) for i in range(n)]
    out, _ = run(config, events)
    checked = 0
    for b in of(out, "budget", slo="p99", segment={}):
        t = epoch(b.ts)
        if t % 300:
            continue
        in_slice = (ts >= t - 300) & (ts < t) & (status != "error")
        exact = np.quantile(latency[in_slice], 0.99, method="lower")
        assert b.value == pytest.approx(exact, rel=0.0101), b.ts
        checked += 1
    assert checked >= 10


def test_timeslice_alert_fires_once_and_resolves_once_during_a_sustained_incident():
    config = make_config(
        [
            {
                "name": "p99",
                "dimension": "infrastructure",
                "sli": {"latency_quantile": {"quantile": 0.99}},
                "objective": 250,
                "budgeting": {"timeslices": "5m", "min_samples": 20, "target": 0.99},
            }
        ]
    )
    start, end = T0 + 3600, T0 + 3600 + 40 * 60
    events = steady(T0, start, 2) + steady(start, end, 2, latency_ms=900.0) + steady(end, end + 3600, 2)
    out, _ = run(config, events)
    pages = of(out, "alert", rule="fast-burn", segment={})
    assert [a.state for a in pages] == ["firing", "resolved"]
    assert start < epoch(pages[0].ts) <= start + 15 * 60


def test_low_traffic_guard_blocks_alerts_and_says_so_in_the_budget_event():
    config = make_config([{**AVAILABILITY, "alerting": {"min_events": 1000}}])
    events = steady(T0, T0 + 1800, 0.2) + steady(T0 + 1800, T0 + 2400, 0.2, status="error")
    out, _ = run(config, events)
    assert not of(out, "alert", rule="fast-burn")
    guarded = [b for b in of(out, "budget", slo="avail", segment={}) if b.low_traffic is not UNSET]
    assert guarded
    note = guarded[-1].low_traffic["fast-burn"]
    assert note.min_events == 1000 and note.events < 1000 and note.window == "1h"
    assert set(guarded[-1].low_traffic) == {"fast-burn", "medium-burn", "slow-burn", "budget-exhausted"}
    assert not of(out, "alert")


def test_budget_exhausted_fires_when_nothing_is_left():
    config = make_config([AVAILABILITY])
    events = steady(T0, T0 + 3600, 10) + steady(T0 + 3600, T0 + 3700, 10, status="error")
    out, _ = run(config, events)
    fired = of(out, "alert", rule="budget-exhausted", state="firing", segment={})
    assert len(fired) == 1 and fired[0].budget_remaining <= 0
    before = [b for b in of(out, "budget", slo="avail", segment={}) if epoch(b.ts) < epoch(fired[0].ts)]
    assert all(b.budget_remaining > 0 for b in before)


def test_a_silent_model_raises_no_data_and_resolves_when_it_returns():
    config = make_config([AVAILABILITY])
    events = steady(T0, T0 + 3600, 5) + steady(T0 + 5400, T0 + 7200, 5)
    other = [event(10**9 + k, T0 + 3600 + k * 30, model="n") for k in range(60)]  # time moves on
    config = make_config(
        [AVAILABILITY],
        models={"m": {"segments": ["region"], "features": ["a", "b"], "no_data_after": "10m"}, "n": {}},
    )
    out, _ = run(config, events + other)
    alerts = of(out, "alert", rule="no-data")
    assert [a.state for a in alerts] == ["firing", "resolved"]
    assert epoch(alerts[0].ts) == T0 + 3600 + 600
    assert epoch(alerts[1].ts) == T0 + 5400 + 60 + 5 * 60  # events again, then the resolve hold
    assert alerts[0].severity == "page" and alerts[0].slo is None


def test_silent_segment_does_not_look_healthy_nor_page_forever():
    config = make_config([AVAILABILITY])
    events = steady(T0, T0 + 3600, 5, region="eu") + steady(T0, T0 + 7200, 5, region="us")
    out, _ = run(config, events)
    late = [b for b in of(out, "budget", slo="avail", segment={"region": "eu"}) if epoch(b.ts) > T0 + 5400]
    assert late and all(b.events["5m"] == 0 for b in late)


def test_duplicates_are_dead_lettered_with_the_reason_and_counted_once():
    config = make_config([AVAILABILITY])
    events = steady(T0, T0 + 600, 2)
    dup = dict(events[10])
    out, _ = run(config, [*events, dup], size=100)
    dead = of(out, "dead_letter")
    assert len(dead) == 1 and dead[0].error.startswith("duplicate: id 'e") and dead[0].model == "m"
    assert dead[0].stage == "dedupe" and '"id":"' + dup["id"] + '"' in dead[0].payload
    last = of(out, "budget", slo="avail", segment={})[-1]
    assert last.total == len([e for e in events if e["ts"] < epoch(last.ts)])


@pytest.mark.parametrize("split", [700, 3333, 9000])
def test_snapshot_and_restore_mid_stream_equals_an_uninterrupted_run(split):
    config = make_config(
        [
            AVAILABILITY,
            {
                "name": "p99",
                "dimension": "infrastructure",
                "sli": {"latency_quantile": {"quantile": 0.99}},
                "objective": 100,
                "budgeting": {"timeslices": "5m", "min_samples": 10, "target": 0.99},
            },
            {
                "name": "dq",
                "dimension": "data",
                "sli": {"data_quality": {"max_age": "1h"}},
                "objective": 0.98,
                "budgeting": {"timeslices": "5m", "min_samples": 10, "target": 0.99},
            },
        ]
    )
    rng = np.random.default_rng(split)
    events = [
        event(
            i,
            T0 + i * 0.5,
            status="error" if 4000 < i < 4600 else "ok",
            latency_ms=float(rng.gamma(2, 30)),
            region=("eu", "us")[i % 2],
            lag_s=7200.0 if 6000 < i < 7000 else 30.0,
        )
        for i in range(12_000)
    ]
    whole, _ = run(config, events, size=250)
    first, ev = run(config, events[:split], size=250, finish=False)
    restored = ModelEvaluator.from_snapshot(config, "m", roundtrip(ev.snapshot()))
    second, _ = run(config, events[split:], size=250, evaluator=restored)
    assert first + second == whole
    assert of(whole, "alert", state="firing")  # the comparison covers alerts, not only budgets


def test_snapshot_has_no_side_effects():
    config = make_config([AVAILABILITY])
    _, ev = run(config, steady(T0, T0 + 600, 5), finish=False)
    snap = ev.snapshot()
    run(config, steady(T0 + 600, T0 + 1200, 5), evaluator=ev)
    before = ModelEvaluator.from_snapshot(config, "m", snap)
    assert before.state.watermark < ev.state.watermark
    assert before.state.keys[""].windows.counts[0].sum() < ev.state.keys[""].windows.counts[0].sum()


def test_memory_per_key_does_not_grow_with_events():
    """Rings are sized by the windows plus how far a batch runs ahead of the ticks, not by traffic."""
    config = make_config([{**AVAILABILITY, "window": "1d"}])
    _, ev = run(config, steady(T0, T0 + 2 * 86_400, 0.05), size=50, finish=False)
    shapes = [c.shape for c in ev.state.keys[""].windows.counts]
    run(config, steady(T0 + 2 * 86_400, T0 + 22 * 86_400, 0.05), size=50, evaluator=ev, finish=False)
    assert [c.shape for c in ev.state.keys[""].windows.counts] == shapes
    # ids are forgotten once the dedupe window has passed them
    assert sum(len(s.state.recent) for s in ev.shards) <= 0.05 * 600 + 50


def test_high_cardinality_segment_values_share_an_other_key():
    from sloguard.core.evaluate.evaluator import MAX_VALUES_PER_ATTRIBUTE

    config = make_config([AVAILABILITY])
    events = [event(i, T0 + i, region=f"r{i}") for i in range(MAX_VALUES_PER_ATTRIBUTE + 50)]
    out, ev = run(config, events)
    assert len(ev.state.groups["region"]) == MAX_VALUES_PER_ATTRIBUTE + 1
    assert of(out, "budget", segment={"region": "(other)"})


def test_objective_relative_to_a_baseline_sets_the_slice_threshold(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"metrics": {"p99": 200.0}}')
    from sloguard.core.spec.config import parse_config

    config = parse_config(
        {
            "models": {"m": {"baseline": str(baseline)}},
            "slos": [
                {
                    "name": "p99",
                    "model": "m",
                    "dimension": "infrastructure",
                    "window": "30d",
                    "sli": {"latency_quantile": {"quantile": 0.99}},
                    "objective": {"relative_to_baseline": 1.25},
                    "budgeting": {"timeslices": "5m", "target": 0.99},
                }
            ],
        }
    )
    assert config.slos[0].objective == 250.0 and config.slos[0].baseline == 200.0
    out, _ = run(config, steady(T0, T0 + 1800, 1, latency_ms=240.0))
    b = of(out, "budget", slo="p99", segment={})[-1]
    assert b.baseline == 200.0 and b.sli == 1.0 and math.isclose(b.objective, 250.0)


def test_variant_and_version_can_be_segment_attributes_for_canary_budgets():
    config = make_config([AVAILABILITY], models={"m": {"segments": ["variant", "version"], "features": ["a", "b"]}})
    events = [{**e, "variant": "canary" if i % 10 == 0 else "stable", "version": "v2" if i % 10 == 0 else "v1",
               "status": "error" if i % 10 == 0 and i % 20 == 0 else "ok"}
              for i, e in enumerate(steady(T0, T0 + 1800, 5))]
    out, _ = run(config, events)
    last = {tuple(b.segment.items()): b for b in of(out, "budget", slo="avail")}
    canary, stable = last[(("variant", "canary"),)], last[(("variant", "stable"),)]
    assert canary.total == sum(1 for e in events if e["variant"] == "canary" and e["ts"] < epoch(canary.ts))
    assert canary.good == canary.total / 2 and stable.good == stable.total
    assert last[(("version", "v2"),)].total == canary.total
