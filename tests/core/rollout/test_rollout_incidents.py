"""The rollout controller and incidents (issue 12 item 3): the deciding reason first, what burned
first in the page's incident named in its reason, and never a rollback of the stable version."""

from __future__ import annotations

from typing import Any

from rollout_factories import NOW, alert, canary_pair, healthy, make_spec, variant

from sloguard.core.rollout.policy import RolloutState, replay_decisions
from sloguard.core.rollout.spec import HOLD, ROLLBACK


def fold(*events: dict[str, Any] | list[dict[str, Any]]) -> RolloutState:
    state = RolloutState(make_spec())
    for e in events:
        for one in e if isinstance(e, list) else [e]:
            state.apply(one)
    return state


def incident(inc: str, state: str = "firing", lead_s: float = 720.0) -> dict[str, Any]:
    summary = "fraud-freshness (data, region=eu) started burning 12m before fraud-fairness-gap"
    return {"type": "incident", "id": inc, "seq": 1, "state": state, "model": "fraud", "ts": NOW,
            "cause": {"slo": "fraud-freshness", "dimension": "data", "segment": {"region": "eu"},
                      "burning_since": NOW - 720, "lead_s": lead_s, "summary": summary}}


def ready() -> list[dict[str, Any]]:
    return healthy("fraud", "v2") + healthy("fraud", "v1") + canary_pair("fraud", "v2", "v1")


def test_the_deciding_reason_comes_first_and_the_page_names_what_burned_first():
    soft = {**alert("fraud", "v2", dimension="quality", ident="q"), "incident_id": "i-q"}
    hard = {**alert("fraud", "v2", dimension="fairness", ident="z"), "incident_id": "i-z"}
    state = fold(ready(), soft, hard, incident("i-z"))
    d = state.decide("fraud", "v2", NOW)
    assert d.decision == ROLLBACK
    assert [r.outcome for r in d.reasons] == [ROLLBACK, HOLD]  # checked in the other order: hold first
    assert d.reasons[0].code == "page:z"
    assert "burned first: fraud-freshness (data, region=eu) started burning 12m before" in d.reasons[0].message
    assert "burned first" not in d.reasons[1].message  # its incident has no cause on record
    assert d.to_message()["reasons"][0] == d.reasons[0].message
    state.apply(incident("i-z", state="resolved"))  # the incident is over: its cause is forgotten
    assert "burned first" not in state.decide("fraud", "v2", NOW).reasons[0].message
    own = fold(ready(), hard, incident("i-z", lead_s=0.0))  # the page's own SLO burned first: nothing to add
    assert "burned first" not in own.decide("fraud", "v2", NOW).reasons[0].message


def test_the_stable_version_is_never_rolled_back():
    """v2 was the canary, was promoted and now serves stable; a hard-stop page on it must not
    publish a rollback of production (its old canary budgets still make it a candidate)."""
    later = NOW + 600
    events = [*ready(), *healthy("fraud", "v2", ts=later),
              variant("fraud", "v2", "availability", "stable", bad=1, total=50_000, ts=later),
              {**alert("fraud", "v2", dimension="fairness", ts=later), "segment": {}}]
    state = fold(events)
    assert state.serving_stable("fraud") == "v2" and ("fraud", "v2") in state.candidates()
    d = state.decide("fraud", "v2", later)
    assert d.decision == HOLD and d.reasons[0].code == "stable-no-rollback"
    assert all(r.outcome == HOLD for r in d.reasons)
    assert any("not applied: v2 is the stable version" in r.message for r in d.reasons)
    # the same page while v2 was only the canary rolls it back
    canary = fold(ready(), alert("fraud", "v2", dimension="fairness"))
    assert canary.decide("fraud", "v2", NOW).decision == ROLLBACK
    published = [d.decision for d in replay_decisions(make_spec(), events)]
    assert published and ROLLBACK not in published


def test_causes_survive_a_snapshot():
    state = fold(ready(), {**alert("fraud", "v2", dimension="fairness", ident="z"), "incident_id": "i-z"},
                 incident("i-z"))
    again = RolloutState.from_snapshot(make_spec(), state.snapshot())
    assert again.decide("fraud", "v2", NOW).reasons[0].message == state.decide("fraud", "v2", NOW).reasons[0].message
