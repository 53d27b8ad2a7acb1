"""`ratio` and `threshold` SLIs: config checks with paths, and hand counts over a replay."""

from __future__ import annotations

import pytest
from factories import T0, batches, event, make_config, of, run, spec_of
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.evaluate.ratio_sli import ratio_counts, ratio_flags
from sloguard.core.messages.batch import parse_batch
from sloguard.core.spec.expr import evaluate_event, parse_expression
from sloguard.core.spec.model import ConfigError


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
        ({"threshold": {"field": "score", "min": 0.9, "max": 0.1}}, "slos[0].sli.threshold.min: must be <= max"),
        ({"threshold": {"field": "score", "max": "low"}}, "slos[0].sli.threshold.max: "),
        ({"ratio": {"good": 3}}, "slos[0].sli.ratio.good: must be an expression in quotes"),
    ],
)
def test_bad_ratio_slis_name_the_path(sli: dict, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_config([_slo(sli)])
    assert words in str(e.value)


def _counts(sli: dict, events: list[dict]) -> tuple[float, float]:
    config = make_config([_slo(sli)])
    out, _ = run(config, events)
    budgets = [b for b in of(out, "budget", slo="s") if b.segment == {}]
    assert budgets
    return budgets[-1].good, budgets[-1].total


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


def test_duplicates_are_taken_back_and_shards_do_not_change_the_counts() -> None:
    from test_sharding import _outputs

    config = make_config([_slo({"ratio": {"good": 'attributes.safety == "pass"'}}),
                          {**_slo({"threshold": {"field": "attributes.cost_usd", "max": 0.05}}), "name": "c"}])
    events = _events()  # the same 12, and a redelivered copy of two of them
    events = [*events, dict(events[1]), dict(events[9])]
    one = _outputs(config, {"inference": events}, 1, 5)
    assert one == _outputs(config, {"inference": events}, 4, 3)
    last = {m.slo: m for k, m in one if k == "budget" and m.segment == {}}
    assert (last["s"].good, last["s"].total) == (7, 12)  # safety pass: 12 - {0, 3, 6, 9} - {11}
    assert (last["c"].good, last["c"].total) == (6, 11)  # cost <= 0.05: 0 .. 5


# --- property: the parse-step counts equal the per-event meaning on the raw events -------------

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.5, 1.5]),
                    st.sampled_from(["a", "ok", "eu"]))


@st.composite
def _raw_events(draw: st.DrawFn) -> list[dict]:
    out = []
    for i in range(draw(st.integers(1, 15))):
        e = event(i, T0 + i, status=draw(st.sampled_from(["ok", "error", "timeout"])),
                  latency_ms=float(draw(st.integers(0, 4))), region=draw(st.sampled_from(["eu", "us"])),
                  features=draw(st.dictionaries(st.sampled_from(["a", "x"]), _scalar)))
        if draw(st.booleans()):
            e["attributes"] = draw(st.dictionaries(st.sampled_from(["y", "z"]), _scalar))
        if draw(st.booleans()):
            e["score"] = draw(st.sampled_from([0.0, 0.5, 1.0]))
        e["prediction"] = draw(_scalar)
        out.append(e)
    return out


_sources = st.sampled_from([
    'status == "ok"', "latency_ms <= 2", "score > 0.25", "score == null", "prediction == 1",
    'prediction != "a"', "features.a >= 0", "features.x == true", 'segment.region == "eu"',
    "attributes.y < 1.5", 'attributes.z != "ok"', "attributes.y == null", 'version == "v1"',
])


@settings(max_examples=150, deadline=None)
@given(raw=_raw_events(), a=_sources, b=_sources, op=st.sampled_from(["and", "or"]), negate=st.booleans())
def test_parse_step_counts_match_the_per_event_meaning(raw: list[dict], a: str, b: str, op: str,
                                                        negate: bool) -> None:
    source = f"{'not ' if negate else ''}({a}) {op} {b}"
    config = make_config([_slo({"ratio": {"good": source}})])
    parsed = parse_batch(batches(raw, len(raw))[0], spec_of(config))
    cols = parsed.inference["m"]
    good, total = ratio_counts("ratio", config.slos[0].sli.params, cols, ("region",))
    tree = parse_expression(source)
    assert good.tolist() == [evaluate_event(tree, e) for e in raw], source
    assert total.all()
    flags = ratio_flags(config.slos, cols, ("region",))
    assert flags["s:good"].tolist() == good.tolist()
