"""Where a model's judge parts meet: one tick's outputs, whole, in one order, with the health score.

The judge runs as `scale.judge_parts` parts (judge.py), each judging the SLOs whose name hashes to it
over the same summaries, so its per-tick work spreads over workers. Every part judges the same ticks
and hands each one over as a `TickPart`: its outputs in entries tagged with where they go in the
tick (`(phase, key rank, SLO index)`). `assemble` puts one tick's entries in that order, which is the
order a single judge writes them in (retired alerts, then per key in report order each SLO's budget
event and alerts, then no-data, then the label store), and attaches the composite health score to the
whole model's budget events (it reads every SLO's budget). `Gather` holds each part's ticks until
every part has passed them, so the incidents step downstream sees each tick whole and in tick order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sloguard.core.messages.outputs import Output, upgraded
from sloguard.core.stats.budget import health_score

Entry = tuple[tuple, list[Output]]  # ((phase, ...), outputs) of one tick

RETIRED, KEYS, NO_DATA, LABEL_STORE = 0, 1, 2, 3  # phases of a tick, in output order
WHOLE_MODEL_RANK = (-1, "")  # judge_state: the whole model's key is reported first


@dataclass(frozen=True)
class TickPart:
    """What one judge part wrote at one tick."""

    model: str
    t: float
    part: int
    entries: list[Entry]


def assemble(entries: list[Entry], health_weights: dict[str, float]) -> list[Output]:
    """One tick's entries (any parts, each part's in its own order) as the tick's outputs, in output
    order; the whole model's budget events get the health score of all of them (budget.health_score)."""
    entries = sorted(entries, key=lambda e: e[0])  # stable: a part's outputs of one (key, SLO) stay in order
    whole = [m for tag, outs in entries if tag[0] == KEYS and tag[1] == WHOLE_MODEL_RANK
             for kind, m in outs if kind == "budget"]
    if whole:
        health = health_score([(e.dimension, e.budget_remaining) for e in whole], health_weights)
        for e in whole:
            e.health = health
    return [o for _, outs in entries for o in outs]


@dataclass
class GatherState:
    """Ticks some parts have handed over and others not yet; how far each part has got."""

    waiting: dict[float, list[Entry]] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)  # part -> its newest tick handed over

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Recovery state written while outputs were dicts: the waiting budgets and alerts become Structs."""
        state["waiting"] = {t: [(tag, [(k, upgraded(k, m)) for k, m in outs]) for tag, outs in entries]
                            for t, entries in state["waiting"].items()}
        self.__dict__.update(state)


class Gather:
    """Joins the `parts` judge parts of one model, tick by tick (see the module docstring)."""

    def __init__(self, parts: int, health_weights: dict[str, float], state: GatherState | None = None
                 ) -> None:
        self.parts = parts
        self.health_weights = health_weights
        self.state = state or GatherState()

    def add(self, ticks: list[tuple[str, TickPart]]) -> list[Output]:
        """One part's `("tick", TickPart)` items, in tick order; the outputs of every tick all parts
        have now passed.

        A part may skip ticks another judged (a long silence is skipped once event time is past every
        window, and parts see the shards' reports in their own interleaving), so a tick is released
        once every part has handed over that tick or a later one."""
        st = self.state
        for _, tick in ticks:
            st.waiting.setdefault(tick.t, []).extend(tick.entries)
            st.done[tick.part] = max(st.done.get(tick.part, -math.inf), tick.t)
        if len(st.done) < self.parts:
            return []
        return self._release(min(st.done.values()))

    def finish(self) -> list[Output]:
        """End of input: every tick still waiting."""
        return self._release(math.inf)

    def _release(self, upto: float) -> list[Output]:
        out: list[Output] = []
        for t in sorted(t for t in self.state.waiting if t <= upto):
            out += assemble(self.state.waiting.pop(t), self.health_weights)
        return out
