"""Silences and budget adjustments (sloguard/core/spec/adjustments.py): exclude a period from the budget,
scale the budget for a period, silence pages; each with a reason and an end, applied in event time."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import numpy as np
import pytest
import yaml
from factories import T0, epoch, make_config, of, roundtrip, run, steady
from msgspec import UNSET
from test_quality_slos import quality_config, run_mixed, traffic

from sloguard.apps.adjust import appended
from sloguard.apps.cli import main
from sloguard.connectors.notifier_preview import preview_alerts
from sloguard.core.evaluate.evaluator import ModelEvaluator
from sloguard.core.messages.outputs import Budget
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.timeutil import to_rfc3339

AVAILABILITY = {"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.999}
LATENCY = {"name": "lat", "dimension": "infrastructure", "sli": {"latency": {"threshold_ms": 100}}, "objective": 0.99}
OUT_A, OUT_B = T0 + 2 * 3600, T0 + 2 * 3600 + 20 * 60  # an outage: every request fails


def _events(**kw: object) -> list[dict]:
    return steady(T0, OUT_A, 5) + steady(OUT_A, OUT_B, 5, status="error", **kw) + steady(OUT_B, OUT_B + 3600, 5)


def _adjust(effect: str, start: float = OUT_A - 60, end: float = OUT_B + 60, **kw: object) -> dict:
    return {"model": "m", "effect": effect, "start": to_rfc3339(start), "end": to_rfc3339(end),
            "reason": f"test {effect}", **kw}


def _whole(out: list, slo: str = "avail") -> Budget:
    return of(out, "budget", slo=slo, segment={})[-1]


def test_an_excluded_period_spends_no_budget_and_pages_nobody() -> None:
    plain, _ = run(make_config([AVAILABILITY, LATENCY]), _events())
    assert of(plain, "alert", slo="avail", severity="page", state="firing")
    config = make_config([AVAILABILITY, LATENCY], adjustments=[_adjust("exclude", slo="avail")])
    out, _ = run(config, _events())
    assert of(out, "alert", slo="avail") == []
    end = _whole(out)
    # the 22 adjusted minutes (the outage and a minute either side) are left out of the budget
    assert end.budget_remaining == 1.0 and end.total == _whole(plain).total - 5 * 22 * 60
    # only the named SLO: latency (errors are not timed) is untouched either way
    assert _whole(out, "lat").budget_remaining == _whole(plain, "lat").budget_remaining
    during = [b for b in of(out, "budget", slo="avail", segment={}) if OUT_A <= epoch(b.ts) < OUT_B]
    assert during and all(b.adjustments[0].effect == "exclude" for b in during)
    assert during[0].adjustments[0].reason == "test exclude"
    after = [b for b in of(out, "budget", slo="avail", segment={}) if epoch(b.ts) > OUT_B + 120]
    assert after and not any(b.adjustments is not UNSET for b in after)  # ended: it stops applying by itself


def test_a_scaled_budget_makes_each_bad_event_cost_more() -> None:
    errors = steady(OUT_A, OUT_A + 60, 5)
    for e in errors[:3]:
        e["status"] = "error"
    events = steady(T0, OUT_A, 5) + errors + steady(OUT_A + 60, OUT_A + 600, 5)
    plain, _ = run(make_config([AVAILABILITY]), events)
    halved, _ = run(make_config([AVAILABILITY], adjustments=[_adjust("scale", budget_factor=0.5)]), events)
    total = _whole(plain).total
    # occurrences: remaining = 1 - bad / (error budget x total); a halved budget doubles each bad event
    assert _whole(plain).budget_remaining == pytest.approx(1 - 3 / (0.001 * total), abs=1e-6)
    assert _whole(halved).budget_remaining == pytest.approx(1 - 6 / (0.001 * total), abs=1e-6)
    assert _whole(halved).total == total and _whole(halved).good == total - 6


def test_timeslice_slices_in_an_excluded_period_are_not_bad() -> None:
    p99 = {"name": "p99", "dimension": "infrastructure", "sli": {"latency_quantile": {"quantile": 0.99}},
           "objective": 250, "budgeting": {"timeslices": "5m", "min_samples": 10, "target": 0.99}}
    events = steady(T0, OUT_A, 5) + steady(OUT_A, OUT_B, 5, latency_ms=900.0) + steady(OUT_B, OUT_B + 1800, 5)
    plain, _ = run(make_config([p99]), events)
    assert _whole(plain, "p99").total - _whole(plain, "p99").good == 4  # four bad 5-minute slices
    out, _ = run(make_config([p99], adjustments=[_adjust("exclude", start=OUT_A, end=OUT_A + 600)]), events)
    assert _whole(out, "p99").total - _whole(out, "p99").good == 2  # the first two were excluded


def test_a_silence_marks_alerts_the_notifier_skips_and_resends_what_outlives_it() -> None:
    config = make_config([AVAILABILITY], adjustments=[_adjust("silence", end=OUT_A + 600)])
    out, _ = run(config, _events())
    pages = of(out, "alert", slo="avail", segment={}, rule="fast-burn")
    assert [a.state for a in pages] == ["firing", "firing", "resolved"]
    assert pages[0].silenced.reason == "test silence" and pages[1].silenced is UNSET
    assert epoch(pages[1].ts) == OUT_A + 600 and pages[1].silence_ended == pages[0].silenced.id
    assert pages[1].started_at == pages[0].started_at and pages[2].silenced is UNSET
    sent = preview_alerts([msgspec.to_builtins(a) for k, a in out if k == "alert"], out=io.StringIO())  # as read
    posted = [p.alert for b in sent for p in b.items]
    assert not any(a.get("silenced") for a in posted) and msgspec.to_builtins(pages[1]) in posted
    # the budget is untouched by a silence
    plain, _ = run(make_config([AVAILABILITY]), _events())
    assert _whole(out).budget_remaining == _whole(plain).budget_remaining
    # an alert that fires and resolves inside the silence is silenced both ways and never resent; the
    # silence outlasts the input (its end is exclusive, and the input's last tick, OUT_B + 3600, is judged)
    whole, _ = run(make_config([AVAILABILITY], adjustments=[_adjust("silence", end=OUT_B + 7200)]), _events())
    both = of(whole, "alert", slo="avail", segment={})
    assert both and all(a.silenced for a in both)


def test_adjustments_survive_a_snapshot_and_give_the_uninterrupted_result() -> None:
    config = make_config([AVAILABILITY], adjustments=[_adjust("silence", end=OUT_A + 600),
                                                      _adjust("exclude", start=OUT_A + 900, end=OUT_B)])
    events = sorted(_events(), key=lambda e: e["ts"])
    whole, _ = run(config, events)
    cut = OUT_A + 300  # mid-silence, with a silenced page firing
    first, ev = run(config, [e for e in events if e["ts"] < cut], finish=False)
    assert ev.judge.state.book.silenced
    restored = ModelEvaluator.from_snapshot(config, "m", roundtrip(ev.snapshot()))
    rest, _ = run(config, [e for e in events if e["ts"] >= cut], evaluator=restored)
    assert first + rest == whole


@pytest.mark.parametrize(("change", "message"), [
    ({"reason": ""}, r"adjustments\[0\]\.reason: required"),
    ({"end": None}, r"adjustments\[0\]\.end: required: an RFC 3339 time with a zone \(adjustments must end\)"),
    ({"end": to_rfc3339(OUT_A - 3600)}, r"adjustments\[0\]\.end: must be after start"),
    ({"model": "x"}, r"adjustments\[0\]\.model: unknown model 'x'"),
    ({"slo": "nope"}, r"adjustments\[0\]\.slo: 'nope' is not an SLO of model 'm'"),
    ({"segment": {"country": "fr"}}, r"adjustments\[0\]\.segment: 'country' is not a segment attribute"),
    ({"effect": "scale"}, r"adjustments\[0\]\.budget_factor: required for scale"),
    ({"budget_factor": 2}, r"adjustments\[0\]\.budget_factor: only a scale adjustment has a budget_factor"),
    ({"until": "x"}, r"adjustments\[0\]\.until: unknown key"),
])
def test_validate_refuses_an_adjustment_without_what_it_needs(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config([AVAILABILITY], adjustments=[{**_adjust("exclude"), **change}])


def test_sloguard_adjust_appends_a_validated_entry_and_keeps_the_file(tmp_path: Path, capsys) -> None:
    data = {"evaluation_interval": "1m", "models": {"m": {"segments": ["region"]}},
            "slos": [{**AVAILABILITY, "model": "m", "window": "30d"}]}
    path = tmp_path / "c.yaml"
    path.write_text("# my config\n" + yaml.safe_dump(data, sort_keys=False) + "adjustments: []  # none yet\n")
    args = ["adjust", "--config", str(path), "--model", "m", "--slo", "avail", "--segment", "region=eu",
            "--effect", "exclude", "--start", "2026-01-01T02:00:00Z", "--for", "1h", "--reason", "failover drill"]
    assert main(args) == 0
    assert main([*args[:-1], "second one"]) == 0
    text = path.read_text()
    assert text.startswith("# my config\n") and "# none yet" in text
    entries = yaml.safe_load(text)["adjustments"]
    assert [e["reason"] for e in entries] == ["failover drill", "second one"]
    assert entries[0] == {"model": "m", "slo": "avail", "segment": {"region": "eu"}, "effect": "exclude",
                          "start": "2026-01-01T02:00:00.000Z", "end": "2026-01-01T03:00:00.000Z",
                          "reason": "failover drill"}
    before = path.read_text()
    assert main([*args[:-2], "--reason", ""]) == 2  # refused: the file is left as it was
    assert path.read_text() == before
    assert "adjustments[2].reason: required" in capsys.readouterr().err


def test_appended_keeps_indentation_and_places_the_entry_in_its_section() -> None:
    text = "a: 1\nadjustments:\n    - {model: m}\n    # a comment\nslos: []\n"
    out = appended(text, {"model": "n"})
    assert out == "a: 1\nadjustments:\n    - {model: m}\n    - {model: n}\n    # a comment\nslos: []\n"
    assert appended("a: 1", {"model": "n"}).endswith("\nadjustments:   # silences and budget adjustments "
                                                     "(sloguard adjust)\n  - {model: n}\n")
    with pytest.raises(ConfigError, match="written inline"):
        appended("adjustments: [{model: m}]\n", {"model": "n"})


def test_labelled_slices_in_an_excluded_period_do_not_burn() -> None:

    rng = np.random.default_rng(11)
    good, good_labels = traffic(T0, T0 + 3600, 1.0, rng, label_delay=120)
    bad, bad_labels = traffic(T0 + 3600, T0 + 5400, 1.0, rng, accuracy=0.5, label_delay=120, id_prefix="b")
    accuracy = {"name": "q", "sli": {"accuracy": {"positive": 1}}, "objective": 0.9}
    plain, _ = run_mixed(quality_config([accuracy]), good + bad, good_labels + bad_labels)
    assert of(plain, "alert", slo="q", state="firing", severity="page")
    drill = {"model": "m", "slo": "q", "effect": "exclude", "start": to_rfc3339(T0 + 3600),
             "end": to_rfc3339(T0 + 5400), "reason": "labelling vendor backfill"}
    config = make_config([{**accuracy, "dimension": "quality", "budgeting": {"timeslices": "5m", "min_samples": 20,
                                                                             "target": 0.99}}],
                         models={"m": {"segments": ["region"], "features": ["a", "b"], "no_data_after": "1h",
                                       "label_delay": "6h"}}, adjustments=[drill])
    out, _ = run_mixed(config, good + bad, good_labels + bad_labels)
    assert not of(out, "alert", slo="q", severity="page")
    end = of(out, "budget", slo="q", segment={})[-1]
    assert end.burn_rates["1h"] == 0 and end.total - end.good == 0


def test_messages_with_adjustments_holds_and_label_coverage_follow_their_schemas() -> None:
    import json

    jsonschema = pytest.importorskip("jsonschema")
    schemas = Path(__file__).resolve().parents[3] / "schemas"
    config = make_config([AVAILABILITY], adjustments=[_adjust("silence", end=OUT_A + 600),
                                                      _adjust("scale", start=OUT_A + 600, budget_factor=2)])
    out, _ = run(config, _events())
    rng = np.random.default_rng(3)
    preds, labels = traffic(T0, T0 + 1800, 2.0, rng, label_delay=600)
    quality, _ = run_mixed(quality_config([{"name": "q", "sli": {"recall": {"positive": 1}}, "objective": 0.9}]),
                           preds, labels)
    messages = out + quality
    seen: set[str] = set()
    for kind, file in (("budget", "budget"), ("alert", "alert")):
        validator = jsonschema.Draft202012Validator(json.loads((schemas / f"{file}.schema.json").read_text()))
        for m in [msgspec.to_builtins(x[1]) for x in messages if x[0] == kind]:  # as written
            errors = sorted(validator.iter_errors(m), key=str)
            assert not errors, f"{kind}: {errors[0].message} in {m}"
            seen |= {f for f in ("adjustments", "resolving", "label_coverage", "silenced", "silence_ended",
                                 "cleared_at") if f in m}
    assert seen == {"adjustments", "resolving", "label_coverage", "silenced", "silence_ended", "cleared_at"}
