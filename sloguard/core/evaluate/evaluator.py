"""One model's evaluation, stage by stage: route, ingest (per shard), judge (per part), gather.

The dataflow (flows/slo_flow.py) runs these stages as separate Bytewax steps so the per-event
work spreads over every worker:

    parse (parsed batch)  ->  route (pieces.py: one Piece per model and shard)
      ->  ingest (shard.py, keyed by model#shard: dedupe, label join, pre-aggregation -> Summary)
      ->  judge (judge.py, keyed by model and part: merge summaries, judge its SLOs' ticks;
                 report.py: budgets, alerts)
      ->  gather (gather.py, keyed by model: the parts' ticks joined, in order, health score)

`ModelEvaluator` chains the same stages in one process: for the tests, `sloguard baseline` and
the benchmarks. Any number of shards and judge parts gives the same outputs (property tests check this).
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sloguard.core.evaluate.gather import Gather
from sloguard.core.evaluate.judge import Judge
from sloguard.core.evaluate.judge_state import MAX_VALUES_PER_ATTRIBUTE, OTHER, JudgeState, segment_key
from sloguard.core.evaluate.pieces import Piece, route
from sloguard.core.evaluate.plan import ModelPlan
from sloguard.core.evaluate.shard import Shard, ShardState
from sloguard.core.evaluate.state import migrate_judge, migrate_shard, plan_migration
from sloguard.core.evaluate.summary import Progress
from sloguard.core.messages.batch import FeatureColumns, InferenceColumns, LabelColumns, ParsedBatch, Rejections
from sloguard.core.messages.outputs import Output  # (kind, message): budgets and alerts as their Structs
from sloguard.core.spec.model import Config


@dataclass
class ModelBatch:
    """What one parsed batch holds for one model, and how far event time has got overall."""

    model: str
    watermark: float  # event time all inputs have passed, when the source knows it (else -inf)
    inference: InferenceColumns | None = None
    labels: LabelColumns | None = None
    features: FeatureColumns | None = None
    rejections: Rejections | None = None
    source: str = ""  # progress report of the source the batch came from (frontier.py)
    newest: float = -math.inf
    caught_up: bool = False
    clock: float | None = None
    arrival: float | None = None

    @property
    def progress(self) -> Progress:
        return Progress(self.source, self.newest, self.caught_up, self.watermark, self.clock, self.arrival)


def split_by_model(parsed: ParsedBatch, models: list[str]) -> list[tuple[str, ModelBatch]]:
    """One `ModelBatch` per configured model: silent models still get the watermark."""
    return [
        (m, ModelBatch(m, parsed.watermark, parsed.inference.get(m), parsed.labels.get(m), parsed.features.get(m),
                       parsed.rejections.get(m), parsed.source, parsed.max_ts, parsed.caught_up, parsed.clock,
                       parsed.arrival))
        for m in models
    ]


def pieces_of(plan: ModelPlan, batch: ModelBatch) -> list[Piece]:
    """Route one model's part of a parsed batch to its shards."""
    rejected = None if batch.rejections is None else np.asarray(batch.rejections.ts, np.float64)
    return route(plan, batch.progress, batch.inference, batch.labels, batch.features, rejected)


def with_scale(config: Config, shards: int | None, judge_parts: int | None = None) -> Config:
    """`config` with its `scale:` section overridden where given."""
    shards = config.shards if shards is None else shards
    parts = config.judge_parts if judge_parts is None else judge_parts
    if (shards, parts) == (config.shards, config.judge_parts):
        return config
    return dataclasses.replace(config, shards=shards, judge_parts=parts)


class ModelEvaluator:
    """Every stage of one model in one process (see the module docstring); snapshot-able."""

    def __init__(self, config: Config, model: str, state: dict[str, Any] | None = None,
                 sources: Iterable[str] = (), shards: int | None = None, reset: frozenset[str] = frozenset(),
                 judge_parts: int | None = None) -> None:
        if state is not None:
            shards, judge_parts = state["shards"], state["judge_parts"]
        self.config = with_scale(config, shards, judge_parts)
        self.plan = ModelPlan(self.config, model)
        parts = self.plan.parts
        judge_states: list[JudgeState] | None = None if state is None else state["judges"]
        if state is not None:  # written for another SLO list: carried over by SLO name, or refused
            migration = plan_migration(state.get("fingerprint"), self.plan, reset)
            if migration is not None:
                judge_states = [migrate_judge(j, migration) for j in judge_states]
                state = {**state, "shard_states": [migrate_shard(s, migration) for s in state["shard_states"]]}
        self.model = model
        self.interval_s = self.plan.interval_s
        sources = tuple(sources) if state is None else state["sources"]
        self.sources = sources
        shard_states: list[ShardState | None] = [None] * self.plan.shards if state is None else state["shard_states"]
        self.shards = [Shard(self.plan, s, st, sources) for s, st in enumerate(shard_states)]
        # one judge, or the judge's parts and where they meet (gather.py), as the flow runs them
        self.judges = [Judge(self.plan, None if judge_states is None else judge_states[p], sources,
                             None if parts == 1 else p) for p in range(parts)]
        self.gather = (Gather(parts, self.plan.model.health_weights, None if state is None else state["gather"])
                       if parts > 1 else None)

    @property
    def judge(self) -> Judge:
        """The judge, or its first part (every part holds the same windows)."""
        return self.judges[0]

    @property
    def slice_log(self) -> dict[tuple[int, float], tuple[float, str]] | None:
        return self.judge.slice_log

    @slice_log.setter
    def slice_log(self, value: dict[tuple[int, float], tuple[float, str]] | None) -> None:
        for judge in self.judges:  # each part logs its own SLOs' slices
            judge.slice_log = value

    @property
    def state(self) -> JudgeState:
        return self.judge.state

    def label_report(self) -> dict[str, int]:
        """The label stores' counters summed over the shards, as they are now."""
        total: dict[str, int] = {}
        for shard in self.shards:
            if shard.state.labels is not None:
                for k, v in shard.state.labels.report().items():
                    total[k] = total.get(k, 0) + v
        return total

    def _judged(self, judge_step: Callable[[Judge], list[Output]]) -> list[Output]:
        """One step of every judge part, joined into whole ticks."""
        if self.gather is None:
            return judge_step(self.judges[0])
        out: list[Output] = []
        for judge in self.judges:
            out += self.gather.add(judge_step(judge))
        return out

    def process(self, batch: ModelBatch) -> list[Output]:
        """Route a batch to the shards, merge their summaries, judge the ticks it passes."""
        out: list[Output] = []
        for piece in pieces_of(self.plan, batch):
            summary, dead = self.shards[piece.shard].ingest(piece)
            out += dead
            out += self._judged(lambda judge, summary=summary: judge.merge(summary))
        return out

    def advance(self, now: float) -> list[Output]:
        """Move event time to `now` (a live runner's clock) and evaluate the ticks it passes."""
        return self._judged(lambda judge: judge.advance(now))

    def finish(self) -> list[Output]:
        """End of input: judge every tick up to the last event time, then dead-letter held labels."""
        out = self._judged(lambda judge: judge.finish())
        if self.gather is not None:
            out += self.gather.finish()
        for shard in self.shards:
            out += shard.finish()
        return out

    def snapshot(self) -> bytes:
        """An independent copy of the whole state, as bytes (no side effects)."""
        return pickle.dumps({"fingerprint": self.plan.fingerprint, "model": self.model, "shards": self.plan.shards,
                             "judge_parts": self.plan.parts, "sources": self.sources,
                             "shard_states": [s.state for s in self.shards],
                             "judges": [j.state for j in self.judges],
                             "gather": None if self.gather is None else self.gather.state},
                            protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_snapshot(cls, config: Config, model: str, snapshot: bytes, reset: frozenset[str] = frozenset()
                      ) -> ModelEvaluator:
        """Rebuild from `snapshot()`; continuing gives the same outputs as never stopping. A snapshot
        of another SLO list is carried over by SLO name (sloguard/core/evaluate/state.py), `reset` SLOs afresh."""
        return cls(config, model, pickle.loads(snapshot), reset=reset)


__all__ = ["MAX_VALUES_PER_ATTRIBUTE", "OTHER", "ModelBatch", "ModelEvaluator", "Output", "segment_key",
           "split_by_model"]
