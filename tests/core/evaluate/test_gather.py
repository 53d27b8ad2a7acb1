"""Where the judge's parts meet (sloguard/core/evaluate/gather.py): whole ticks, in one order."""

from __future__ import annotations

import pickle

import msgspec
from factories import make_alert, make_budget
from hypothesis import given
from hypothesis import strategies as st
from msgspec import UNSET

from sloguard.core.evaluate.gather import (
    KEYS,
    LABEL_STORE,
    NO_DATA,
    RETIRED,
    WHOLE_MODEL_RANK,
    Gather,
    GatherState,
    TickPart,
    assemble,
)
from sloguard.core.messages.outputs import Alert, Budget
from sloguard.core.stats.budget import health_score

EU = (0, "eu")


def budget(slo: str, dimension: str, remaining: float) -> tuple[str, Budget]:
    return ("budget", make_budget(slo=slo, dimension=dimension, budget_remaining=remaining))


def alert(alert_id: str) -> tuple[str, Alert]:
    return ("alert", make_alert(id=alert_id))


def test_a_tick_is_assembled_in_the_order_one_judge_writes_it_with_the_health_of_every_slo() -> None:
    part0 = [((RETIRED,), [alert("gone")]),
             ((KEYS, WHOLE_MODEL_RANK, 0), [budget("avail", "infrastructure", 0.9), alert("a0")]),
             ((KEYS, EU, 0), [budget("avail", "infrastructure", 0.5)]),
             ((NO_DATA,), [alert("silent")]),
             ((LABEL_STORE,), [("label_store", {"pending": 3})])]
    part1 = [((KEYS, WHOLE_MODEL_RANK, 1), [budget("acc", "quality", 0.2)]),
             ((KEYS, EU, 1), [budget("acc", "quality", -1.0)])]
    out = assemble(part1 + part0, {"quality": 2.0})
    order = [m.id if k == "alert" else m.slo if k == "budget" else k for k, m in out]
    assert order == ["gone", "avail", "a0", "acc", "avail", "acc", "silent", "label_store"]
    expected = health_score([("infrastructure", 0.9), ("quality", 0.2)], {"quality": 2.0})
    assert [m.health for k, m in out if k == "budget"] == [expected, expected, UNSET, UNSET]


def tick(t: float, part: int, *slos: int) -> tuple[str, TickPart]:
    return ("tick", TickPart("m", t, part, [((KEYS, WHOLE_MODEL_RANK, i), [budget(f"s{i}", "d", 1.0)])
                                            for i in slos]))


def test_a_tick_waits_for_every_part_and_ticks_leave_in_order() -> None:
    gather = Gather(2, {})
    assert gather.add([tick(60, 0, 0), tick(120, 0, 0)]) == []  # part 1 has not reported yet
    out = gather.add([tick(60, 1, 1)])
    assert [m.slo for _, m in out] == ["s0", "s1"]  # tick 60 only: part 1 has not passed 120
    out = gather.add([tick(120, 1, 1), tick(180, 1, 1)])
    assert [m.slo for _, m in out] == ["s0", "s1"]
    assert [m.slo for _, m in gather.finish()] == ["s1"]  # end of input: part 0 will never pass 180


def test_a_tick_one_part_skipped_is_released_once_every_part_is_past_it() -> None:
    """A part that skipped a silent stretch reports a later tick: the earlier one is complete."""
    gather = Gather(2, {})
    gather.add([tick(60, 0, 0)])
    out = gather.add([tick(600, 1, 1)])
    assert [m.slo for _, m in out] == ["s0"]
    out = gather.add([tick(600, 0, 0)])
    assert [m.slo for _, m in out] == ["s0", "s1"]
    assert gather.finish() == []


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 6)), max_size=30), st.integers(0, 10_000))
def test_any_interleaving_of_the_parts_gives_the_ticks_one_judge_gives(calls, seed) -> None:
    """Each part hands over ticks 1..n in order in any chunks, interleaved any way; with a snapshot
    and restore midway, the outputs equal assembling each tick from all parts."""
    import random

    rng = random.Random(seed)
    parts, n = 3, 8
    ticks = {p: [tick(60.0 * k, p, p, p + 3) for k in range(1, n + 1)] for p in range(parts)}
    gather, out, sent = Gather(parts, {}), [], {p: 0 for p in range(parts)}
    schedule = [(p, k) for p, k in calls] + [(p, n) for p in range(parts)]
    for step, (p, k) in enumerate(schedule):
        chunk = ticks[p][sent[p]: sent[p] + k]
        sent[p] += len(chunk)
        out += gather.add(chunk)
        if step == len(schedule) // 2 and rng.random() < 0.5:
            gather = Gather(parts, {}, pickle.loads(pickle.dumps(gather.state)))
    out += gather.finish()
    expected = []
    for k in range(n):
        expected += assemble([e for p in range(parts) for e in ticks[p][k][1].entries], {})
    assert out == expected


def test_a_state_written_while_outputs_were_dicts_hands_on_their_structs() -> None:
    """Recovery state of a gather step from before the flow carried Structs holds the waiting ticks'
    budgets and alerts as dicts: restored, they come out as the Structs the part wrote."""
    written = [((KEYS, WHOLE_MODEL_RANK, 0), [budget("s0", "quality", 1.0), alert("a0")])]
    old = GatherState(waiting={60.0: [(tag, [(k, msgspec.to_builtins(m)) for k, m in outs])
                                      for tag, outs in written]}, done={0: 60.0})
    gather = Gather(2, {}, pickle.loads(pickle.dumps(old)))
    out = gather.add([tick(60, 1, 1)])
    assert [type(m) for _, m in out] == [Budget, Alert, Budget]
    assert out == assemble([*written, *tick(60, 1, 1)[1].entries], {})
