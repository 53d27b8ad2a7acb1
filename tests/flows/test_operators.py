"""The keyed steps at the end of their input: a drained input or a replay is over (judge the last
ticks, dead-letter the labels still held); a run stopped by a signal is not (keep all for the resume).
The same on the real broker: tests/flows/test_kafka_runtime.py (SIGTERM mid-run, then a resume)."""

from __future__ import annotations

import dataclasses

import orjson
from factories import T0, batches, make_config, spec_of, steady
from test_quality_slos import quality_config

from sloguard.core.evaluate.evaluator import pieces_of, split_by_model
from sloguard.core.evaluate.gather import KEYS, TickPart
from sloguard.core.evaluate.plan import ModelPlan
from sloguard.core.messages.batch import parse_batch
from sloguard.core.messages.events import RawBatch
from sloguard.core.messages.outputs import DeadLetter
from sloguard.flows.operators import GatherLogic, JudgeLogic, ShardLogic

SLO = {"name": "q", "sli": {"accuracy": {"positive": 1}}, "objective": 0.5}


def plans_of(**scale: int) -> dict[str, ModelPlan]:
    return {"m": ModelPlan(dataclasses.replace(quality_config([SLO]), **scale), "m")}


def shard_holding_a_label(ended: bool) -> ShardLogic:
    """A shard that read a label whose prediction has not come (it is held, waiting for it)."""
    plans = plans_of(shards=1)
    logic = ShardLogic(plans, ("labels#0",), False, None, input_ends=lambda: ended)
    label = orjson.dumps({"id": "ghost", "model": "m", "label": 1, "ts": T0})
    raw = RawBatch("labels", "ml.labels", 0, [0], [label], source="labels#0")
    for _, batch in split_by_model(parse_batch(raw, spec_of(plans["m"].config)), ["m"]):
        for piece in pieces_of(plans["m"], batch):
            logic.on_item(piece)
    assert logic.shard.state.labels.report()["held_labels"] == 1
    return logic


def test_a_shard_dead_letters_its_held_labels_only_when_the_input_really_ended() -> None:
    over, _ = shard_holding_a_label(ended=True).on_eof()
    (kind, letter), = list(over)
    assert kind == "dead_letter" and isinstance(letter, DeadLetter) and "'ghost'" in letter.error
    stopped = shard_holding_a_label(ended=False)
    out, _ = stopped.on_eof()
    assert list(out) == [] and stopped.shard.state.labels.report()["held_labels"] == 1


def test_the_gather_step_keeps_a_tick_some_parts_have_not_passed_when_the_run_was_stopped() -> None:
    plans = plans_of(judge_parts=2)
    for ended in (True, False):
        logic = GatherLogic(plans, False, None, input_ends=lambda ended=ended: ended)
        tick = TickPart("m", T0 + 60, 0, [((KEYS, (-1, ""), 0), [("label_store", {"model": "m"})])])
        assert list(logic.on_item([("tick", tick)])[0]) == []  # part 1 has not passed it yet
        out, _ = logic.on_eof()
        assert list(out) == ([[("label_store", {"model": "m"})]] if ended else [])
        assert bool(logic.gather.state.waiting) is not ended


def judge_with_ticks_pending(ended: bool) -> JudgeLogic:
    """A judge that merged three minutes of predictions: the ticks event time passed are judged, the
    one after the last prediction is not (only the end of the input can tell that no more come)."""
    config = make_config([{"name": "avail", "dimension": "infrastructure", "sli": "availability",
                           "objective": 0.999}], scale={"shards": 1})
    plans = {"m": ModelPlan(config, "m")}
    shard = ShardLogic(plans, ("inference#0",), False, None)
    judge = JudgeLogic(plans, ("inference#0",), False, None, input_ends=lambda: ended)
    for raw in batches(steady(T0, T0 + 180, 2)):
        raw.source = "inference#0"
        for _, batch in split_by_model(parse_batch(raw, spec_of(config)), ["m"]):
            for piece in pieces_of(plans["m"], batch):
                (_, summary), = [item for item in shard.on_item(piece)[0] if item[0] == "summary"]
                judge.on_item((None, summary))
    return judge


def test_the_judge_judges_the_pending_ticks_at_the_end_of_its_input_only_when_it_really_ended() -> None:
    over, _ = judge_with_ticks_pending(ended=True).on_eof()
    assert [kind for tick in over for kind, _ in tick].count("budget") >= 1  # the last minute's tick
    stopped, _ = judge_with_ticks_pending(ended=False).on_eof()
    assert list(stopped) == []
    asked = {"stopped": False}
    logic = JudgeLogic(plans_of(), (), False, None, input_ends=lambda: not asked["stopped"])
    asked["stopped"] = True  # asked at the end, not when the step was built
    assert not logic.input_ends()
