"""`ratio` and `threshold` SLIs: config checks with paths, and hand counts over a replay."""

from __future__ import annotations

import pytest
from factories import T0, event, make_config, of, run

from sloguard.config import ConfigError


def _slo(sli: dict) -> dict:
    return {"name": "s", "dimension": "infrastructure", "sli": sli, "objective": 0.99}


@pytest.mark.parametrize(
    ("sli", "words"),
    [
        ({"ratio": {"good": "lateny_ms < 5"}}, "slos[0].sli.ratio.good: unknown field 'lateny_ms'"),
        ({"ratio": {"good": "latency_ms < 5 and"}}, "slos[0].sli.ratio.good: expected a comparison"),
        ({"ratio": {"good": 'status == "ok"', "total": "status < 1"}},
         "slos[0].sli.ratio.total: status is a string field"),
        ({"ratio": {"good": 'segment.tier == "a"'}}, "'tier' is not a segment attribute"),
        ({"ratio": {}}, "slos[0].sli.ratio.good: required"),
        ({"threshold": {"field": "status", "max": 1}}, "slos[0].sli.threshold.field: status is not a numeric field"),
        ({"threshold": {"field": "attrs.cost", "max": 1}}, "slos[0].sli.threshold.field: unknown field 'attrs.cost'"),
        ({"threshold": {"field": "attributes.cost_usd"}}, "slos[0].sli.threshold: needs max"),
    ],
)
def test_bad_ratio_slis_name_the_path(sli: dict, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_config([_slo(sli)])
    assert words in str(e.value)


def _counts(sli: dict, events: list[dict]) -> tuple[float, float]:
    config = make_config([_slo(sli)])
    out, _ = run(config, events)
    budgets = [b for b in of(out, "budget", slo="s") if b["segment"] == {}]
    assert budgets
    return budgets[-1]["good"], budgets[-1]["total"]


def _events() -> list[dict]:
    """12 events: attributes.cost_usd 0.00 .. 0.11 by 0.01, safety pass except every 3rd, one without attributes."""
    out = []
    for i in range(12):
        e = event(i, T0 + 5 * i, status="error" if i % 4 == 0 else "ok", region="eu" if i < 6 else "us")
        e["attributes"] = {"cost_usd": i / 100, "safety": "fail" if i % 3 == 0 else "pass"}
        out.append(e)
    out[11]["attributes"] = {}
    return out


def test_ratio_hand_counts() -> None:
    # good: status ok (i not in 0,4,8) and safety pass (i not in 0,3,6,9; 11 has no attributes) -> 1,2,5,7,10
    # total: region eu -> i in 0..5; good & total -> 1, 2, 5
    assert _counts({"ratio": {"good": 'status == "ok" and attributes.safety == "pass"'}}, _events()) == (5, 12)
    assert _counts({"ratio": {"good": 'status == "ok" and attributes.safety == "pass"',
                              "total": 'segment.region == "eu"'}}, _events()) == (3, 6)
    assert _counts({"ratio": {"good": "not attributes.safety == null"}}, _events()) == (11, 12)


def test_threshold_hand_counts() -> None:
    # cost_usd 0.00 .. 0.10 known (11 has none): <= 0.02 -> 0, 1, 2; >= 0.05 -> 5..10
    assert _counts({"threshold": {"field": "attributes.cost_usd", "max": 0.02}}, _events()) == (3, 11)
    assert _counts({"threshold": {"field": "attributes.cost_usd", "min": 0.05}}, _events()) == (6, 11)
    assert _counts({"threshold": {"field": "attributes.cost_usd", "min": 0.03, "max": 0.04}}, _events()) == (2, 11)
