"""Resolve hysteresis (sloguard/core/evaluate/alerts.py): a rule that dips under its threshold and comes back is
one alert, not fire-resolve-fire; the hold is event time, configurable, and survives a snapshot."""

from __future__ import annotations

from factories import T0, epoch, make_config, of, roundtrip, run, steady
from msgspec import UNSET

from sloguard.core.evaluate.alerts import AlertBook
from sloguard.core.evaluate.evaluator import ModelEvaluator

AVAILABILITY = {"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.999}
START = T0 + 2 * 3600
END1 = START + 20 * 60  # first burst of errors ends
START2 = END1 + 6 * 60  # six healthy minutes: the 5m window clears for a tick or two, then errors again
END2 = START2 + 10 * 60


def _events() -> list[dict]:
    return (steady(T0, START, 10) + steady(START, END1, 10, status="error") + steady(END1, START2, 10)
            + steady(START2, END2, 10, status="error") + steady(END2, END2 + 3600, 10))


def _pages(out: list) -> list[tuple[str, float]]:
    return [(a.state, epoch(a.ts)) for a in of(out, "alert", rule="fast-burn", segment={}, slo="avail")]


def test_a_dip_shorter_than_the_hold_is_one_alert() -> None:
    out, _ = run(make_config([AVAILABILITY]), _events())
    pages = _pages(out)
    assert [s for s, _ in pages] == ["firing", "resolved"]
    # resolved once the rule stayed false for five ticks after the second burst's short window cleared
    resolved = of(out, "alert", rule="fast-burn", segment={}, state="resolved")[0]
    assert END2 + 5 * 60 <= epoch(resolved.cleared_at) <= END2 + 6 * 60
    assert pages[1][1] == epoch(resolved.cleared_at) + 5 * 60
    # while the rule was false the budget events say the page is still firing, and resolving since when
    dip = [b for b in of(out, "budget", slo="avail", segment={}) if b.resolving is not UNSET]
    first_dip = [b for b in dip if epoch(b.ts) < START2 + 60]
    assert first_dip and all("fast-burn" in b.firing for b in first_dip)
    assert {b.resolving["fast-burn"] for b in first_dip} == {first_dip[0].ts}


def test_without_a_hold_the_same_dip_flaps() -> None:
    out, _ = run(make_config([AVAILABILITY], alerting={"resolve_hold": 0}), _events())
    assert [s for s, _ in _pages(out)] == ["firing", "resolved", "firing", "resolved"]
    per_slo = make_config([{**AVAILABILITY, "alerting": {"resolve_hold": "0s"}}])
    out2, _ = run(per_slo, _events())
    assert _pages(out2) == _pages(out)


def test_hold_config_and_timeslice_minimum() -> None:
    config = make_config([AVAILABILITY, {
        "name": "p99", "dimension": "infrastructure", "sli": {"latency_quantile": {"quantile": 0.99}},
        "objective": 250, "budgeting": {"timeslices": "15m", "min_samples": 10, "target": 0.99}}],
        alerting={"resolve_hold": "3m"})
    avail, p99 = config.slos
    assert config.resolve_hold_s == 180 and avail.resolve_hold_s == 180
    assert p99.resolve_hold_s == 900  # a slice: between two judged slices the rule cannot change
    assert make_config([AVAILABILITY]).slos[0].resolve_hold_s == 300  # default: five 1-minute ticks


def test_hold_survives_a_snapshot_mid_hold() -> None:
    config = make_config([AVAILABILITY])
    events = sorted(_events(), key=lambda e: e["ts"])
    whole, _ = run(config, events)
    cut = END1 + 6 * 60 - 30  # inside the dip, while the page waits out its hold
    first, ev = run(config, [e for e in events if e["ts"] < cut], finish=False)
    assert ev.judge.state.book.clearing  # the snapshot is taken while an alert is resolving
    restored = ModelEvaluator.from_snapshot(config, "m", roundtrip(ev.snapshot()))
    rest, _ = run(config, [e for e in events if e["ts"] >= cut], evaluator=restored)
    assert first + rest == whole


def test_alert_book_hold_unit() -> None:
    book = AlertBook()
    k = ("s", "", "fast-burn")
    assert book.update(k, True, 0, 300) == ("firing", 0)
    assert book.update(k, False, 60, 300) == (None, 0) and book.holding("")
    assert book.update(k, True, 120, 300) == (None, 0) and not book.holding("")  # came back: cancelled
    assert book.update(k, False, 180, 300) == (None, 0)
    assert book.update(k, False, 420, 300) == (None, 0)
    assert book.update(k, False, 480, 300) == ("resolved", 0)
    assert not book.firing and not book.clearing
    old = AlertBook.__new__(AlertBook)
    old.__setstate__({"firing": {k: 5.0}})  # state pickled before the hold existed
    assert old.update(k, False, 10, 0) == ("resolved", 5.0)
