"""Composite steps of the sloguard dataflow, so `slo_flow.build_flow` stays one screen long.

The keyed steps hold the core's stage objects: `ShardLogic` a `Shard` per (model, shard) key,
`JudgeLogic` a `Judge` per (model, part) (or per model, with one part), `GatherLogic` a `Gather`
per model where the parts meet. Their snapshots are the pickled state (bytes: an immutable
copy taken in one pass, no deep copy of object graphs), and nothing at all without recovery.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from sloguard.core.evaluate.evaluator import Output, pieces_of, split_by_model
from sloguard.core.evaluate.gather import Gather, GatherState
from sloguard.core.evaluate.judge import Judge
from sloguard.core.evaluate.judge_state import segment_key
from sloguard.core.evaluate.pieces import Piece
from sloguard.core.evaluate.plan import ModelPlan
from sloguard.core.evaluate.shard import Shard
from sloguard.core.evaluate.state import migrate_judge, migrate_shard, plan_migration
from sloguard.core.evaluate.summary import Summary
from sloguard.core.messages.batch import ParsedBatch
from sloguard.core.spec.model import StateMismatch
from sloguard.flows.routing import shard_key

Keyed = tuple[str, Any]  # (Kafka message key, an output Struct: budget, alert, incident or dead letter)


#: Asked at the end of the input: is it really over (replay, a drained run: judge the last ticks,
#: dead-letter the labels still held), or was the run stopped (keep everything for the resume)?
InputEnds = Callable[[], bool]


def _always() -> bool:
    return True


def input_ends_of(finish_at_eof: bool | InputEnds) -> InputEnds:
    """`finish_at_eof` as the question asked at the end of input (a bool: the same answer always)."""
    return finish_at_eof if callable(finish_at_eof) else partial(bool, finish_at_eof)


def route_batch(plans: dict[str, ModelPlan], parsed: ParsedBatch) -> list[tuple[str, Piece]]:
    """Every model's pieces of a parsed batch, keyed `model#shard` (silent models get progress too)."""
    out = []
    for model, batch in split_by_model(parsed, list(plans)):
        out += [(shard_key(model, p.shard), p) for p in pieces_of(plans[model], batch)]
    return out


def _snapshot(state: Any, recovery: bool) -> bytes | None:
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL) if recovery else None


class ShardLogic(StatefulLogic[Piece, tuple[str, Any], bytes | None]):
    """Bytewax state of one (model, shard): dedupe, label join (sloguard/core/evaluate/shard.py).

    Bytewax builds a logic before it sees the key, so the shard is made from the first piece (which
    names its model and shard) or from the resume state (which records them).
    """

    def __init__(self, plans: dict[str, ModelPlan], sources: tuple[str, ...], recovery: bool,
                 state: dict | None, reset: frozenset[str] = frozenset(), input_ends: InputEnds = _always) -> None:
        self.plans, self.sources, self.recovery, self.input_ends = plans, sources, recovery, input_ends
        self.shard = None
        if state is not None:
            plan, migration = _plan_of(plans, state, reset)
            shard_state = state["state"] if migration is None else migrate_shard(state["state"], migration)
            self.shard = Shard(plan, state["shard"], shard_state, sources)

    @classmethod
    def build(cls, plans: dict[str, ModelPlan], sources: tuple[str, ...], recovery: bool,
              resume: bytes | None, reset: frozenset[str] = frozenset(), input_ends: InputEnds = _always
              ) -> ShardLogic:
        return cls(plans, sources, recovery, None if resume is None else pickle.loads(resume), reset, input_ends)

    def on_item(self, value: Piece) -> tuple[Iterable[tuple[str, Any]], bool]:
        if self.shard is None:
            self.shard = Shard(self.plans[value.model], value.shard, None, self.sources)
        summary, dead = self.shard.ingest(value)
        return [("summary", summary), *dead], StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[tuple[str, Any]], bool]:
        if self.shard is None or not self.input_ends():  # a stopped run: held labels wait for the resume
            return (), StatefulLogic.RETAIN
        return self.shard.finish(), StatefulLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if self.shard is None:
            return None
        plan = self.shard.plan
        return _snapshot({"model": plan.name, "shard": self.shard.shard, "state": self.shard.state,
                          "fingerprint": plan.fingerprint}, self.recovery)


class JudgeLogic(StatefulLogic[tuple[int | None, Summary], list[Output], bytes | None]):
    """Bytewax state of one model's judge, or of one part of it (`(part, summary)` items, part None:
    the whole judge): merges the shards' summaries, judges ticks (judge.py). Everything one call
    writes is one item (whole ticks, or the part's `TickPart`s for the gather step)."""

    def __init__(self, plans: dict[str, ModelPlan], sources: tuple[str, ...], recovery: bool, state: dict | None,
                 reset: frozenset[str] = frozenset(), input_ends: InputEnds = _always) -> None:
        self.plans, self.sources, self.recovery, self.input_ends = plans, sources, recovery, input_ends
        self.judge = None
        if state is not None:
            plan, migration = _plan_of(plans, state, reset)
            judge_state = state["state"] if migration is None else migrate_judge(state["state"], migration)
            self.judge = Judge(plan, judge_state, sources, state.get("part"))

    @classmethod
    def build(cls, plans: dict[str, ModelPlan], sources: tuple[str, ...], recovery: bool, resume: bytes | None,
              reset: frozenset[str] = frozenset(), input_ends: InputEnds = _always) -> JudgeLogic:
        return cls(plans, sources, recovery, None if resume is None else pickle.loads(resume), reset, input_ends)

    def on_item(self, value: tuple[int | None, Summary]) -> tuple[Iterable[list[Output]], bool]:
        part, summary = value
        if self.judge is None:
            self.judge = Judge(self.plans[summary.model], None, self.sources, part)
        return _whole(self.judge.merge(summary)), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[list[Output]], bool]:
        if self.judge is None or not self.input_ends():  # a live run leaves them to the next events
            return (), StatefulLogic.RETAIN
        return _whole(self.judge.finish()), StatefulLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if self.judge is None:
            return None
        plan = self.judge.plan
        return _snapshot({"model": plan.name, "part": self.judge.part, "state": self.judge.state,
                          "fingerprint": plan.fingerprint}, self.recovery)


def judge_parts(plans: dict[str, ModelPlan], item: tuple[str, Summary]) -> list[tuple[str, tuple[int | None, Summary]]]:
    """A summary for every part of its model's judge, keyed `model/judge#part` (spread over workers
    as the shards are, routing.py); one model-keyed item where the judge is one part."""
    model, summary = item
    parts = plans[model].parts
    if parts == 1:
        return [(model, (None, summary))]
    return [(shard_key(f"{model}/judge", p), (p, summary)) for p in range(parts)]


class GatherLogic(StatefulLogic[list[Output], list[Output], bytes | None]):
    """Bytewax state where one model's judge parts meet (gather.py): whole ticks, in order."""

    def __init__(self, plans: dict[str, ModelPlan], recovery: bool, state: dict | None,
                 input_ends: InputEnds = _always) -> None:
        self.plans, self.recovery, self.input_ends = plans, recovery, input_ends
        self.model: str | None = None
        self.gather: Gather | None = None
        if state is not None:
            self._build(state["model"], state["state"])

    def _build(self, model: str, state: GatherState | None) -> Gather:
        self.model = model
        self.gather = Gather(self.plans[model].parts, self.plans[model].model.health_weights, state)
        return self.gather

    @classmethod
    def build(cls, plans: dict[str, ModelPlan], recovery: bool, resume: bytes | None,
              input_ends: InputEnds = _always) -> GatherLogic:
        return cls(plans, recovery, None if resume is None else pickle.loads(resume), input_ends)

    def on_item(self, value: list[Output]) -> tuple[Iterable[list[Output]], bool]:
        gather = self.gather or self._build(value[0][1].model, None)
        return _whole(gather.add(value)), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[list[Output]], bool]:
        if self.gather is None or not self.input_ends():  # a stopped run: ticks some parts have not passed wait
            return (), StatefulLogic.RETAIN
        return _whole(self.gather.finish()), StatefulLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if self.gather is None:
            return None
        return _snapshot({"model": self.model, "state": self.gather.state}, self.recovery)


def by_model(item: tuple[str, list[Output]]) -> tuple[str, list[Output]]:
    """A judge part's items keyed by their model again, for the gather step."""
    return item[1][0][1].model, item[1]


def _whole(outputs: list[Output]) -> list[list[Output]]:
    return [outputs] if outputs else []


def _plan_of(plans: dict[str, ModelPlan], state: dict, reset: frozenset[str]) -> tuple[ModelPlan, Any]:
    """The plan a resumed state belongs to, and how to carry the state over to it (None: as it is);
    `StateMismatch` when it cannot be (sloguard/core/evaluate/state.py)."""
    plan = plans.get(state["model"])
    if plan is None:
        raise StateMismatch(f"the recovery state holds model {state['model']!r}, which the config no longer has; "
                            "start with a new --recovery-dir, or resume with the config that wrote it")
    migration = plan_migration(state.get("fingerprint"), plan, reset)
    if migration is not None and (plan.name, migration.describe()) not in _ANNOUNCED:
        _ANNOUNCED.add((plan.name, migration.describe()))
        print(f"sloguard: resuming model {plan.name!r} with a changed SLO list ({migration.describe()}): "
              "state carried over by SLO name", file=sys.stderr)
    return plan, migration


_ANNOUNCED: set[tuple[str, str]] = set()  # one note per model and change, not one per shard


def only(kind: str, item: tuple, by_model: bool = False) -> tuple | None:
    """The items of one kind; summaries re-keyed by their model for the judge."""
    key, (k, msg) = item
    if k != kind:
        return None
    return (msg.model, msg) if by_model else (key, msg)


def message_key(output: Output) -> str:
    """The Kafka key of an output: one SLO key's events stay in order on one partition."""
    kind, msg = output
    if kind == "dead_letter":
        return msg.model or msg.topic
    if kind == "label_store":  # a dict, for the metrics only: written to no topic
        return msg["model"]
    if kind == "incident":  # one incident's messages in order on one partition
        return f"{msg.model}|incident|{msg.id}"
    return "|".join((msg.model, msg.slo or "", segment_key(msg.segment)))


def dead_letters(parsed: ParsedBatch) -> list[Keyed]:
    """The parser's dead letters as keyed messages."""
    return [(d.model or d.topic, d) for d in parsed.dead_letters]


@dataclass(frozen=True)
class Outputs:
    """The three output streams of the flow, keyed for Kafka partitioning."""

    budget: Stream[Keyed]
    alerts: Stream[Keyed]
    dead_letter: Stream[Keyed]
