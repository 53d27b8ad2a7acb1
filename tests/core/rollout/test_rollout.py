"""Tests for sloguard.core.rollout.policy: the error-budget policy, overrides, canary checks and the state fold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from rollout_factories import NOW, alert, budget, canary_pair, healthy, make_config, make_spec, variant

from sloguard.core.rollout.decision import Decision
from sloguard.core.rollout.policy import RolloutState, replay_decisions
from sloguard.core.rollout.spec import HOLD, PROMOTE, ROLLBACK, InvalidEvent, RolloutSpec, parse_rollout
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.timeutil import to_rfc3339

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "schemas" / "rollout_decision.schema.json").read_text())
H = 3600


def fold(spec: RolloutSpec, *events: dict[str, Any] | list[dict[str, Any]]) -> RolloutState:
    state = RolloutState(spec)
    for e in events:
        for one in e if isinstance(e, list) else [e]:
            state.apply(one)
    return state


def ready(model: str = "fraud", version: str = "v2", stable: str = "v1", **canary: Any) -> list[dict[str, Any]]:
    """Healthy budgets for the candidate and stable, and a healthy canary comparison."""
    return healthy(model, version) + healthy(model, stable) + canary_pair(model, version, stable, **canary)


def codes(d: Decision) -> list[str]:
    return [r.code.split(":")[0] for r in d.reasons]


def check_schema(d: Decision) -> dict[str, Any]:
    msg = orjson.loads(orjson.dumps(d.to_message()))  # strict JSON: NaN would not round-trip
    jsonschema.validate(msg, SCHEMA, format_checker=jsonschema.FormatChecker())
    return msg


# -- budgets ---------------------------------------------------------------------------------


def test_healthy_budgets_and_canary_promote() -> None:
    d = fold(make_spec(), ready()).decide("fraud", "v2", NOW)
    assert d.decision == PROMOTE and d.reasons == () and d.result == 1 and d.allowed
    assert set(d.budgets) == {"fraud-availability", "fraud-latency", "fraud-freshness"}
    assert d.budgets["fraud-availability"] == {
        "dimension": "infrastructure",
        "min_budget_remaining": 0.5,
        "budget_remaining": 0.9,
        "sli": 1.0,
        "objective": 0.999,
        "window": "30d",
        "ts": to_rfc3339(NOW),
        "version": "v2",
        "status": "ok",
    }
    assert [c.verdict for c in d.canary] == ["pass"] * 3
    assert d.stable_version == "v1"
    msg = check_schema(d)
    assert msg["decision"] == "promote" and msg["result"] == 1 and msg["reasons"] == []


def test_missing_budget_data_is_never_a_pass() -> None:
    events = [e for e in ready() if not (e["slo"] == "fraud-latency" and e["segment"] == {})]
    d = fold(make_spec(), events).decide("fraud", "v2", NOW)
    assert d.decision == HOLD
    assert [r.code for r in d.reasons] == ["no-data:fraud-latency"]
    assert "missing data is never a pass" in d.reasons[0].message
    assert d.budgets["fraud-latency"]["status"] == "no-data"
    # a version nobody has heard of: everything is missing
    d = fold(make_spec(), ready()).decide("fraud", "v9", NOW)
    assert d.decision == HOLD and codes(d).count("no-data") == 3
    # a null SLI value is no data either
    state = fold(make_spec(), ready(), budget("fraud", "v2", "latency", remaining=None, ts=NOW + 1))
    assert [r.code for r in state.decide("fraud", "v2", NOW + 1).reasons] == ["no-data:fraud-latency"]


def test_stale_budget_data_holds() -> None:
    state = fold(make_spec({"policy": {"max_staleness": "15m"}}), ready())
    assert state.decide("fraud", "v2", NOW + 14 * 60).decision == PROMOTE
    d = state.decide("fraud", "v2", NOW + 16 * 60)
    assert d.decision == HOLD and set(codes(d)) == {"stale", "canary-no-data"}
    state = fold(make_spec({"policy": {"max_staleness": 0}}), ready())
    assert state.decide("fraud", "v2", NOW + 30 * 86_400).decision == PROMOTE


def test_budget_below_its_floor_holds_per_dimension_and_per_slo() -> None:
    low = budget("fraud", "v2", "availability", remaining=0.4)  # infrastructure floor 0.5
    d = fold(make_spec(), ready(), low).decide("fraud", "v2", NOW)
    assert d.decision == HOLD and [r.code for r in d.reasons] == ["budget-low:fraud-availability"]
    assert "40% of its error budget left, below the 50%" in d.reasons[0].message
    assert d.budgets["fraud-availability"]["status"] == "low"
    # data has no floor by default; a per-SLO floor wins over its dimension's
    spec = make_spec({"policy": {"min_budget_remaining": {"infrastructure": 0.5, "fraud-availability": 0.3}}})
    assert fold(spec, ready(), low).decide("fraud", "v2", NOW).decision == PROMOTE
    fresh_low = budget("fraud", "v2", "freshness", remaining=0.05)
    assert fold(make_spec(), ready(), fresh_low).decide("fraud", "v2", NOW).decision == PROMOTE


def test_exhausted_budget_freezes_promotions_until_it_recovers() -> None:
    spent = budget("fraud", "v2", "freshness", remaining=-0.2, ts=NOW)
    state = fold(make_spec(), ready(), spent)
    d = state.decide("fraud", "v2", NOW)
    assert d.decision == HOLD and [r.code for r in d.reasons] == ["exhausted:fraud-freshness"]
    assert "promotions are frozen until it recovers" in d.reasons[0].message
    state.apply(budget("fraud", "v2", "freshness", remaining=0.01, ts=NOW + 60))
    assert state.decide("fraud", "v2", NOW + 60).decision == PROMOTE


def test_an_exhausted_stable_budget_freezes_promotions_too() -> None:
    state = fold(make_spec(), ready(), budget("fraud", "v1", "availability", remaining=-1.5))
    d = state.decide("fraud", "v2", NOW)
    assert d.decision == HOLD and "stable-exhausted:fraud-availability" in [r.code for r in d.reasons]
    assert "stable version v1" in d.reasons[0].message


def test_a_seen_version_reads_the_freshest_whole_model_budget_whatever_its_label() -> None:
    # the flow labels the whole-model key with the version of its newest event: mostly stable's
    events = healthy("fraud", "v1") + canary_pair("fraud", "v2", "v1")
    d = fold(make_spec(), events).decide("fraud", "v2", NOW)
    assert d.decision == PROMOTE and {b["version"] for b in d.budgets.values()} == {"v1"}
    # the freshest label wins: an older whole-model event labelled v2 is not the model's budget now
    old = budget("fraud", "v2", "availability", remaining=0.9, ts=NOW - 300)
    spent = budget("fraud", "v1", "availability", remaining=-0.1, ts=NOW)
    d = fold(make_spec(), events, old, spent).decide("fraud", "v2", NOW)
    assert d.decision == HOLD and "exhausted:fraud-availability" in [r.code for r in d.reasons]
    # a tie goes to the version's own label; a version never seen has no budget at all
    own = budget("fraud", "v2", "availability", remaining=0.4, ts=NOW)
    assert fold(make_spec(), events, own).decide("fraud", "v2", NOW).budgets["fraud-availability"]["version"] == "v2"
    assert codes(fold(make_spec(), events).decide("fraud", "v9", NOW)).count("no-data") == 3


def test_worst_segment_policy_reads_the_segment_with_least_budget() -> None:
    eu = budget("fraud", "v2", "availability", remaining=0.1, segment={"region": "eu"})
    assert fold(make_spec(), ready(), eu).decide("fraud", "v2", NOW).decision == PROMOTE
    spec = make_spec({"policy": {"segments": "worst"}})
    d = fold(spec, ready(), eu).decide("fraud", "v2", NOW)
    assert d.decision == HOLD and d.budgets["fraud-availability"]["segment"] == "region=eu"
    assert "(infrastructure, region=eu)" in d.reasons[0].message


def test_model_wide_budgets_with_a_null_version_count_for_every_version() -> None:
    events = [e for e in ready() if not (e["slo"] == "fraud-freshness" and e["segment"] == {})]
    events.append(budget("fraud", None, "freshness", remaining=0.8))
    assert fold(make_spec(), events).decide("fraud", "v2", NOW).decision == PROMOTE


# -- alerts ----------------------------------------------------------------------------------


def test_a_firing_fairness_page_forces_rollback_even_with_healthy_budgets() -> None:
    state = fold(make_spec(), ready(), alert("fraud", "v2", dimension="fairness"))
    d = state.decide("fraud", "v2", NOW)
    assert d.decision == ROLLBACK and d.result == -1
    assert [r.code.split(":")[0] for r in d.reasons] == ["page"]
    assert "fairness is a hard stop: roll back" in d.reasons[0].message
    assert all(b["status"] == "ok" for b in d.budgets.values())
    check_schema(d)
    state.apply(alert("fraud", "v2", dimension="fairness", state="resolved", ts=NOW + 60))
    assert state.decide("fraud", "v2", NOW + 60).decision == PROMOTE


def test_soft_stop_pages_hold_tickets_do_not_block_and_other_versions_do_not_count() -> None:
    quality = alert("fraud", "v2", dimension="quality")
    d = fold(make_spec(), ready(), quality).decide("fraud", "v2", NOW)
    assert d.decision == HOLD and "quality is a soft stop: hold" in d.reasons[0].message
    ticket = alert("fraud", "v2", dimension="infrastructure", severity="ticket", rule="slow-burn")
    assert fold(make_spec(), ready(), ticket).decide("fraud", "v2", NOW).decision == PROMOTE
    other = alert("fraud", "v0", dimension="infrastructure")
    assert fold(make_spec(), ready(), other).decide("fraud", "v2", NOW).decision == PROMOTE
    model_wide = alert("fraud", None, dimension="infrastructure", rule="no-data")
    assert fold(make_spec(), ready(), model_wide).decide("fraud", "v2", NOW).decision == ROLLBACK


def test_a_page_on_the_stable_version_holds_promotions() -> None:
    d = fold(make_spec(), ready(), alert("fraud", "v1", dimension="infrastructure")).decide("fraud", "v2", NOW)
    assert d.decision == HOLD and d.reasons[0].code.startswith("stable-page:")
    assert "production is paging" in d.reasons[0].message


def test_a_hard_stop_page_where_the_canary_is_no_worse_than_stable_holds_instead_of_rolling_back() -> None:
    page = alert("fraud", "v2", dimension="infrastructure", slo="fraud-availability", segment={"variant": "canary"})
    # a region outage both versions serve: the canary's segment pages, but stable is as bad
    shared = fold(make_spec(), ready(), page).decide("fraud", "v2", NOW)
    assert shared.decision == HOLD and codes(shared) == ["shared-page"]
    assert "no worse than stable v1 on it (one-sided p = " in shared.reasons[0].message
    assert "production shares the incident" in shared.reasons[0].message
    # a canary worse than stable is rolled back, on the page and on the comparison
    worse = fold(make_spec(), ready(canary_bad=60), page).decide("fraud", "v2", NOW)
    assert worse.decision == ROLLBACK and sorted(codes(worse)) == ["canary-worse"] * 3 + ["page"]
    # too little canary traffic for a verdict: nothing says stable shares it, the page rolls back
    few = fold(make_spec(), ready(canary_bad=0, canary_total=50), page).decide("fraud", "v2", NOW)
    assert few.decision == ROLLBACK and "page" in codes(few)
    # stable's own segment pages on the same SLO: shared, whatever the comparison says
    stable_page = alert("fraud", "v1", dimension="infrastructure", slo="fraud-availability",
                        segment={"variant": "stable"}, ident="stable-own")
    both = fold(make_spec(), ready(canary_bad=0, canary_total=50), page, stable_page).decide("fraud", "v2", NOW)
    assert both.decision == HOLD and sorted(codes(both)) == ["canary-inconclusive"] * 3 + ["shared-page", "stable-page"]
    assert "stable v1 pages on it too" in next(r.message for r in both.reasons if r.code.startswith("shared"))
    # a page on traffic both versions serve carries its newest event's version, not the one at fault
    region = alert("fraud", "v2", dimension="infrastructure", slo="fraud-availability", segment={"region": "eu"})
    mixed = fold(make_spec(), ready(), region).decide("fraud", "v2", NOW)
    assert mixed.decision == HOLD and codes(mixed) == ["mixed-page"]
    # significantly worse, if by less than min_effect: the comparison passes, but the page is the canary's
    lenient = make_spec({"canary": {"min_effect": 0.01}})
    small = fold(lenient, ready(canary_bad=60), page).decide("fraud", "v2", NOW)
    assert [c.verdict for c in small.canary] == ["pass"] * 3 and "canary-worse" not in codes(small)
    assert small.decision == ROLLBACK and "page" in codes(small) and "shared-page" not in codes(small)


def test_late_alert_transitions_do_not_undo_newer_ones() -> None:
    state = fold(make_spec(), ready())
    state.apply(alert("fraud", "v2", state="resolved", ts=NOW + 120))
    state.apply(alert("fraud", "v2", state="firing", ts=NOW + 60))  # older, arrives later
    assert state.decide("fraud", "v2", NOW + 120).decision == PROMOTE


# -- overrides -------------------------------------------------------------------------------


def test_an_allow_override_waives_budget_floors_is_recorded_and_expires() -> None:
    expires = NOW + H
    spec = make_spec(
        {
            "policy": {"max_staleness": "1d"},
            "overrides": [
                {
                    "model": "fraud",
                    "dimensions": ["infrastructure"],
                    "effect": "allow",
                    "reason": "hotfix for INC-42 approved by the SRE lead",
                    "expires": to_rfc3339(expires),
                    "by": "alice",
                }
            ],
        }
    )
    state = fold(spec, ready(), budget("fraud", "v2", "availability", remaining=0.3))
    d = state.decide("fraud", "v2", NOW)
    assert d.decision == PROMOTE
    (o,) = d.overrides
    assert o["reason"] == "hotfix for INC-42 approved by the SRE lead" and o["expires"] == to_rfc3339(expires)
    assert o["by"] == "alice" and o["dimensions"] == ["infrastructure"]
    assert len(o["waived"]) == 1 and "fraud-availability" in o["waived"][0]
    assert check_schema(d)["overrides"][0]["reason"].startswith("hotfix")
    after = state.decide("fraud", "v2", expires)  # expiry is exclusive
    assert after.decision == HOLD and after.overrides == ()
    assert [r.code for r in after.reasons] == ["budget-low:fraud-availability"]


def test_an_allow_override_never_waives_hard_stops_regressions_or_missing_data() -> None:
    spec = make_spec({"overrides": [{"effect": "allow", "reason": "yolo", "expires": NOW + H}]})
    paged = fold(spec, ready(), alert("fraud", "v2", dimension="fairness")).decide("fraud", "v2", NOW)
    assert paged.decision == ROLLBACK and paged.overrides[0]["waived"] == []
    worse = fold(spec, ready(canary_bad=300)).decide("fraud", "v2", NOW)
    assert worse.decision == ROLLBACK
    missing = fold(spec, healthy("fraud", "v2")).decide("fraud", "v2", NOW)
    assert missing.decision == HOLD


def test_a_freeze_override_holds_for_its_period_only() -> None:
    spec = make_spec(
        {
            "policy": {"max_staleness": 0},
            "overrides": [
                {"effect": "freeze", "reason": "peak traffic: Black Friday", "starts": NOW - H, "expires": NOW + H},
                {"effect": "freeze", "model": "recsys", "reason": "not fraud", "expires": NOW + H},
            ],
        }
    )
    state = fold(spec, ready())
    d = state.decide("fraud", "v2", NOW)
    assert d.decision == HOLD and [r.code for r in d.reasons] == ["freeze:0"]
    assert "peak traffic: Black Friday" in d.reasons[0].message
    assert [o["index"] for o in d.overrides] == [0]
    assert state.decide("fraud", "v2", NOW - 2 * H).decision == PROMOTE  # before it starts
    assert state.decide("fraud", "v2", NOW + H).decision == PROMOTE  # after it expires


def test_an_adjust_override_replaces_floors_while_active() -> None:
    spec = make_spec(
        {
            "policy": {"max_staleness": "1d"},
            "overrides": [
                {
                    "effect": "adjust",
                    "reason": "peak: be stricter",
                    "expires": NOW + H,
                    "min_budget_remaining": {"infrastructure": 0.95},
                }
            ],
        }
    )
    state = fold(spec, ready())
    d = state.decide("fraud", "v2", NOW)
    assert d.decision == HOLD and d.budgets["fraud-availability"]["min_budget_remaining"] == 0.95
    assert state.decide("fraud", "v2", NOW + H).decision == PROMOTE


# -- canary ----------------------------------------------------------------------------------


def test_a_canary_with_a_higher_error_rate_is_rolled_back_with_p_below_005() -> None:
    d = fold(make_spec(), ready(canary_bad=60, canary_total=10_000)).decide("fraud", "v2", NOW)
    assert d.decision == ROLLBACK
    assert {r.code for r in d.reasons} == {
        "canary-worse:fraud-availability",
        "canary-worse:fraud-latency",
        "canary-worse:fraud-freshness",
    }
    for r in d.reasons:
        assert "two-proportion z" in r.message and "< 0.05" in r.message and r.message.endswith("roll back")
    assert all(c.p_value is not None and c.p_value < 0.05 for c in d.canary)
    msg = check_schema(d)
    assert msg["canary"][0]["verdict"] == "fail" and msg["canary"][0]["canary"]["bad_rate"] == 0.006


def test_a_canary_with_too_little_traffic_holds_not_promotes() -> None:
    d = fold(make_spec(), ready(canary_bad=0, canary_total=50)).decide("fraud", "v2", NOW)
    assert d.decision == HOLD
    assert set(codes(d)) == {"canary-inconclusive"}
    assert "only 50 canary events" in d.reasons[0].message


def test_no_variant_data_holds() -> None:
    d = fold(make_spec(), healthy("fraud", "v2") + healthy("fraud", "v1")).decide("fraud", "v2", NOW)
    assert d.decision == HOLD and set(codes(d)) == {"canary-no-data"}
    assert '{"variant": "canary"|"stable"}' in d.reasons[0].message
    off = make_spec({"canary": {"enabled": False}})
    assert fold(off, healthy("fraud", "v2")).decide("fraud", "v2", NOW).decision == PROMOTE


def test_canary_counts_over_the_lookback_come_from_burn_rates() -> None:
    # over 1h: 20,000 canary events burning 5x an error budget of 0.001 -> 100 bad (0.5 %);
    # stable: 200,000 events burning 1x -> 200 bad (0.1 %). Whole-window counts look equal.
    spec = make_spec({"canary": {"slos": ["fraud-availability"]}})
    c = variant("fraud", "v2", "availability", "canary", bad=5, total=10_000, burn_1h=5.0, events_1h=20_000)
    s = variant("fraud", "v1", "availability", "stable", bad=50, total=100_000, burn_1h=1.0, events_1h=200_000)
    d = fold(spec, healthy("fraud", "v2"), healthy("fraud", "v1"), c, s).decide("fraud", "v2", NOW)
    (cmp,) = d.canary
    assert cmp.lookback == "1h"
    assert cmp.canary == {"bad": 100.0, "total": 20_000.0, "bad_rate": 0.005}
    assert cmp.stable == {"bad": 200.0, "total": 200_000.0, "bad_rate": 0.001}
    assert d.decision == ROLLBACK
    whole = make_spec({"canary": {"slos": ["fraud-availability"], "lookback": None}})
    d = fold(whole, healthy("fraud", "v2"), healthy("fraud", "v1"), c, s).decide("fraud", "v2", NOW)
    assert d.decision == PROMOTE and d.canary[0].lookback == "the 30d SLO window"


def test_blast_radius_holds_a_canary_that_would_spend_the_budget_at_full_traffic() -> None:
    spec = make_spec({"canary": {"slos": ["fraud-availability"]}})
    # 0.06 % vs 0.05 %: not significant, but burn 0.6x against 20 % left: gone in 10 days
    events = ready(canary_bad=6, canary_total=10_000, stable_bad=50, stable_total=100_000, slos=("availability",))
    events.append(budget("fraud", "v1", "availability", remaining=0.2))
    d = fold(spec, events).decide("fraud", "v2", NOW)
    assert d.decision == HOLD and [r.code for r in d.reasons] == ["blast-radius:fraud-availability"]
    assert "spend the 20% left in 10 days" in d.reasons[0].message
    off = make_spec({"canary": {"slos": ["fraud-availability"], "blast_radius": False}})
    assert fold(off, events).decide("fraud", "v2", NOW).decision == PROMOTE


def test_histograms_on_variant_events_use_mann_whitney() -> None:
    spec = make_spec({"canary": {"slos": ["fraud-latency"]}})
    edges = [0, 10, 20, 50, 100, 250]
    slow = variant("fraud", "v2", "latency", "canary", bad=0, total=5000, histogram={
        "edges": edges, "counts": [500, 1500, 1500, 1000, 500]})  # fmt: skip
    base = variant("fraud", "v1", "latency", "stable", bad=0, total=50_000, histogram={
        "edges": edges, "counts": [10_000, 20_000, 15_000, 4000, 1000]})  # fmt: skip
    d = fold(spec, healthy("fraud", "v2"), healthy("fraud", "v1"), slow, base).decide("fraud", "v2", NOW)
    assert d.decision == ROLLBACK and d.canary[0].test == "mann-whitney-u"
    assert "Mann-Whitney U" in d.reasons[0].message


# -- state, config and replay ----------------------------------------------------------------


def test_snapshot_round_trip_gives_the_same_decisions() -> None:
    spec = make_spec()
    state = fold(spec, ready(canary_bad=60), alert("fraud", "v2", dimension="quality"))
    snap = orjson.loads(orjson.dumps(state.snapshot()))
    again = RolloutState.from_snapshot(spec, snap)
    a, b = state.decide("fraud", "v2", NOW), again.decide("fraud", "v2", NOW)
    assert a.to_message() == b.to_message()


def test_older_budget_events_do_not_replace_newer_ones() -> None:
    state = fold(make_spec(), ready())
    state.apply(budget("fraud", "v2", "availability", remaining=0.1, ts=NOW - 60))
    assert state.decide("fraud", "v2", NOW).decision == PROMOTE


def test_unneeded_segments_are_not_kept_and_old_versions_are_pruned() -> None:
    state = fold(make_spec(), ready(), budget("fraud", "v2", "availability", segment={"region": "eu"}))
    assert all(k[2] in ("", "variant=canary", "variant=stable") for k in state.budgets["fraud"])
    state.apply(budget("fraud", "v0", "availability", ts=NOW - 10 * 86_400))
    assert state.prune(NOW, keep_s=7 * 86_400) == 1
    assert ("fraud", "v0") not in state.seen and all(k[0] != "v0" for k in state.budgets["fraud"])


@pytest.mark.parametrize(
    "event,field",
    [
        ({"type": "budgets"}, "type"),
        ({**budget("fraud", "v2", "availability"), "model": 3}, "model"),
        ({**budget("fraud", "v2", "availability"), "ts": "yesterday"}, "ts"),
        ({**budget("fraud", "v2", "availability"), "budget_remaining": float("nan")}, "budget_remaining"),
        ({**budget("fraud", "v2", "availability"), "segment": {"region": 1}}, "segment"),
        ({**budget("fraud", "v2", "availability"), "total": -1}, "good/total"),
        ({**budget("fraud", "v2", "availability"), "burn_rates": {"1h": "x"}}, "burn_rates.1h"),
        ({**budget("fraud", "v2", "availability"), "histogram": {"edges": [0, 1], "counts": [1, 2, 3]}}, "histogram"),
        ({**alert("fraud", "v2"), "state": "open"}, "state"),
        ({**alert("fraud", "v2"), "severity": "sms"}, "severity"),
    ],
)
def test_invalid_events_are_rejected_naming_the_field(event: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent, match=f"^{field}"):
        RolloutState(make_spec()).apply(event)


@pytest.mark.parametrize(
    "raw,path",
    [
        ({"policy": {"min_budget_remaining": {"fairness": 75}}}, "rollout.policy.min_budget_remaining.fairness"),
        ({"policy": {"min_budget_remaining": {"speed": 0.5}}}, "rollout.policy.min_budget_remaining.speed"),
        ({"policy": {"hard_stop": ["fairness"], "soft_stop": ["fairness"]}}, "rollout.policy.soft_stop"),
        ({"policy": {"max_staleness": "soon"}}, "rollout.policy.max_staleness"),
        ({"canary": {"alpha": 5}}, "rollout.canary.alpha"),
        ({"canary": {"slos": ["nope"]}}, "rollout.canary.slos"),
        ({"canary": {"min_samples": 0}}, "rollout.canary.min_samples"),
        ({"overrides": [{"expires": NOW}]}, "rollout.overrides[0].reason"),
        ({"overrides": [{"reason": "x"}]}, "rollout.overrides[0].expires"),
        ({"overrides": [{"reason": "x", "expires": "2026-01-01T00:00:00"}]}, "rollout.overrides[0].expires"),
        ({"overrides": [{"reason": "x", "expires": NOW, "effect": "ignore"}]}, "rollout.overrides[0].effect"),
        ({"overrides": [{"reason": "x", "expires": NOW, "effect": "adjust"}]}, "rollout.overrides[0].min_budget"),
        ({"overrides": [{"reason": "x", "expires": NOW, "model": "nope"}]}, "rollout.overrides[0].model"),
        ({"surprise": 1}, "rollout.surprise"),
    ],
)
def test_bad_rollout_config_names_the_field(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_rollout(raw, make_config())
    assert any(p.startswith(path) for p in e.value.problems), e.value.problems


def test_yaml_timestamps_are_accepted_for_overrides() -> None:
    import yaml

    raw = yaml.safe_load("overrides: [{reason: r, starts: 2026-01-01, expires: 2026-01-01T04:00:00Z}]")
    (o,) = parse_rollout(raw, make_config()).overrides
    assert o.starts_s == NOW - 3 * H and o.expires_s == NOW + H


def test_replay_decisions_yields_only_changes() -> None:
    events = ready()
    events.append(alert("fraud", "v2", dimension="fairness", ts=NOW + 60))
    events.append(budget("fraud", "v2", "availability", ts=NOW + 120))
    events.append(alert("fraud", "v2", dimension="fairness", state="resolved", ts=NOW + 180))
    errors: list[str] = []
    out = [
        (d.model, d.version, d.decision)
        for d in replay_decisions(make_spec(), [*events, {"type": "junk"}], errors=errors)
    ]
    assert out == [("fraud", "v2", "promote"), ("fraud", "v2", "rollback"), ("fraud", "v2", "promote")]
    assert errors == ["type: must be budget, alert or incident, got 'junk'"]


def test_unknown_model_holds() -> None:
    d = fold(make_spec(), ready()).decide("nope", "v1", NOW)
    assert d.decision == HOLD and d.reasons[0].code == "unknown-model:nope"
