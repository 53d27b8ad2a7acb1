"""Composite steps of the sloguard dataflow, so `slo_flow.build_flow` stays one screen long."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

from sloguard.batch import ParsedBatch
from sloguard.config import Config
from sloguard.evaluator import ModelBatch, ModelEvaluator, Output, segment_key

Keyed = tuple[str, dict[str, Any]]  # (Kafka message key, message)


class EvaluateLogic(StatefulLogic[ModelBatch, Output, dict]):
    """Bytewax state of one model: a `ModelEvaluator`, snapshotted for recovery.

    Bytewax builds the logic before it sees the key, so the evaluator is made from the first
    batch (which names its model) or from the resume state (which records it).
    """

    def __init__(self, config: Config, resume: dict | None, finish_at_eof: bool, sources: tuple[str, ...] = ()) -> None:
        self.config = config
        self.finish_at_eof = finish_at_eof
        self.sources = sources
        self.evaluator = None if resume is None else ModelEvaluator(config, resume["model"], resume["state"])

    def on_item(self, value: ModelBatch) -> tuple[Iterable[Output], bool]:
        if self.evaluator is None:
            self.evaluator = ModelEvaluator(self.config, value.model, sources=self.sources)
        return self.evaluator.process(value), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        if self.evaluator is None or not self.finish_at_eof:
            return (), StatefulLogic.RETAIN
        return self.evaluator.finish(), StatefulLogic.RETAIN

    def snapshot(self) -> dict:
        assert self.evaluator is not None, "snapshot before the first item"
        return {"model": self.evaluator.model, "state": self.evaluator.snapshot()}


def message_key(output: Output) -> str:
    """The Kafka key of an output: one SLO key's events stay in order on one partition."""
    kind, msg = output
    if kind == "dead_letter":
        return msg.get("model") or msg["topic"]
    return "|".join((msg["model"], msg.get("slo") or "", segment_key(msg["segment"])))


def dead_letters(parsed: ParsedBatch) -> list[Keyed]:
    """The parser's dead letters as keyed messages."""
    return [(d.model or d.topic, d.to_dict()) for d in parsed.dead_letters]


@dataclass(frozen=True)
class Outputs:
    """The three output streams of the flow, keyed for Kafka partitioning."""

    budget: Stream[Keyed]
    alerts: Stream[Keyed]
    dead_letter: Stream[Keyed]
