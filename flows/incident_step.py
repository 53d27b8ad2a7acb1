"""The flow's `incidents` step: one `IncidentBook` per model after the judge (sloguard/core/notify/incidents.py).

The judge step hands on everything it wrote for a model in one call as one item (whole ticks: a
tick is always judged in one call), so the book sees each tick complete and its decisions never
depend on how input was batched. Its snapshot is the pickled book state, nothing without recovery.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from bytewax.operators import StatefulLogic

from sloguard.core.evaluate.evaluator import Output
from sloguard.core.notify.incidents import IncidentBook, IncidentState, slo_burns
from sloguard.core.spec.model import Config


class IncidentLogic(StatefulLogic[list[Output], list[Output], bytes | None]):
    """Bytewax state of one model's incidents; passes the judge's outputs on, alerts annotated."""

    def __init__(self, config: Config, recovery: bool, state: dict | None) -> None:
        self.config, self.recovery = config, recovery
        self.book: IncidentBook | None = None
        if state is not None:
            self._build(state["model"], state["state"])

    def _build(self, model: str, state: IncidentState | None) -> IncidentBook:
        self.model = model
        self.book = IncidentBook(self.config.incidents, slo_burns(self.config, model), state)
        return self.book

    @classmethod
    def build(cls, config: Config, recovery: bool, resume: bytes | None) -> IncidentLogic:
        return cls(config, recovery, None if resume is None else pickle.loads(resume))

    def on_item(self, value: list[Output]) -> tuple[Iterable[list[Output]], bool]:
        if not value:
            return [], StatefulLogic.RETAIN
        book = self.book
        if book is None:
            book = self._build(_model_of(value), None)
        return [book.process(value)], StatefulLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if self.book is None or not self.recovery:
            return None
        return pickle.dumps({"model": self.model, "state": self.book.state}, protocol=pickle.HIGHEST_PROTOCOL)


def _model_of(outputs: list[Output]) -> str:
    message = outputs[0][1]  # a budget or alert Struct, or the label store's dict
    return message["model"] if isinstance(message, dict) else message.model


def explode(item: tuple[str, list[Any]]) -> list[tuple[str, Any]]:
    """(model, [output, ...]) -> (model, output) per output."""
    model, outputs = item
    return [(model, o) for o in outputs]
