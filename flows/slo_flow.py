"""The sloguard dataflow: raw batches in; budgets, alerts and dead letters out.

`build_flow` is a factory: tests pass `TestingSource`/`TestingSink`, `sloguard replay` passes
JSONL files, `sloguard run` passes Kafka. The same steps run in every case. Per-event work runs
where the batch was read and in shards keyed by model and id hash, so it spreads over every
worker; the per-model judge only merges summaries and judges ticks (sloguard/core/evaluate/evaluator.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from sloguard.core.evaluate.plan import ModelPlan
from sloguard.core.messages.batch import ParsedBatch, ParseSpec
from sloguard.core.messages.events import RawBatch
from sloguard.core.messages.sub_batches import parse_in_parts
from sloguard.core.spec.model import Config
from sloguard.flows.incident_step import IncidentLogic, explode
from sloguard.flows.metrics import FlowMetrics
from sloguard.flows.operators import (
    GatherLogic,
    InputEnds,
    JudgeLogic,
    ShardLogic,
    by_model,
    dead_letters,
    input_ends_of,
    judge_parts,
    message_key,
    only,
    route_batch,
)


@dataclass(frozen=True)
class Sinks:
    """Where the outputs go; each receives `(message key, message)` items: budgets, alerts, incidents
    and dead letters as their Structs (`sloguard.core.messages.outputs`). Incident messages
    (sloguard/core/notify/incidents.py) go to `incidents` when it is given."""

    budget: Sink
    alerts: Sink
    dead_letter: Sink
    incidents: Sink | None = None


def parse_spec(config: Config) -> ParseSpec:
    """What the parser needs of the config."""
    return ParseSpec(
        segments={m.name: m.segments for m in config.models.values()},
        features={m.name: m.features for m in config.models.values()},
        max_message_bytes=config.max_message_bytes,
        max_future_skew_s=config.max_future_skew_s,
        max_age_s=config.longest_window_s + config.allowed_lateness_s,
    )


def build_flow(
    config: Config,
    source: Source[RawBatch],
    sinks: Sinks,
    *,
    finish_at_eof: bool | InputEnds = True,
    flow_id: str = "sloguard",
    sources: tuple[str, ...] = (),
    metrics: FlowMetrics | None = None,
    recovery: bool = False,
    reset_state: frozenset[str] = frozenset(),
) -> Dataflow:
    """The dataflow over `source` (batches of raw messages) into `sinks`.

    `finish_at_eof` evaluates the ticks still pending when the input ends (replay) and dead-letters
    the labels still held; a live run leaves them to the next events or clock ticks. A callable is
    asked at the end: a run stopped by a signal ends its input too, but must keep all for its resume.
    `sources` names every input source (topic partitions, files) so that event time waits for each
    of them (sloguard/core/evaluate/frontier.py);
    `metrics`, when given, is fed by `inspect` steps at the flow's edges. Events stamped more than
    `limits.max_future_skew` after the time their batch was read (`RawBatch.not_after`, set by the
    source: the flow itself reads no clock) are dead letters. `recovery` makes the keyed steps hand
    Bytewax their state at each epoch (pickled bytes, no deep copies); without it they hand nothing.
    A resumed state written for another SLO list is carried over by SLO name (sloguard/core/evaluate/state.py);
    the SLOs named in `reset_state` start afresh.
    """
    plans = {m: ModelPlan(config, m) for m in config.models}
    input_ends = input_ends_of(finish_at_eof)
    flow = Dataflow(flow_id)
    raw = op.input("input", flow, source)  # RawBatch
    parsed = op.map("parse", raw, partial(_parse, spec=parse_spec(config), metrics=metrics))
    # ParsedBatch
    rejected = op.flat_map("dead_letters", parsed, dead_letters)  # (key, dead letter)
    pieces = op.flat_map("route", parsed, partial(route_batch, plans))  # ("model#shard", Piece)
    ingested = op.stateful("ingest", pieces, partial(ShardLogic.build, plans, sources, recovery, reset=reset_state,
                                                     input_ends=input_ends))
    # ("model#shard", ("summary", Summary) | ("dead_letter", message))
    summaries = op.filter_map("summaries", ingested, partial(only, "summary", by_model=True))  # (model, Summary)
    duplicates = op.filter_map("shard_dead_letters", ingested, partial(only, "dead_letter"))  # (key, message)
    to_judge = op.flat_map("judge_parts", summaries, partial(judge_parts, plans))
    # ("model/judge#part", (part, Summary)) per part, or (model, (None, Summary)) for a one-part judge
    judged = op.stateful("judge", to_judge, partial(JudgeLogic.build, plans, sources, recovery, reset=reset_state,
                                                       input_ends=input_ends))
    if any(plan.parts > 1 for plan in plans.values()):  # the parts' ticks, joined where they meet
        parts = op.map("by_model", judged, by_model)  # (model, [("tick", TickPart), ...])
        judged = op.stateful("gather", parts, partial(GatherLogic.build, plans, recovery, input_ends=input_ends))
    # (model, [("budget" | "alert" | "label_store", message), ...]): whole ticks
    if config.incidents.enabled:
        judged = op.stateful("incidents", judged, partial(IncidentLogic.build, config, recovery))
        # (model, [("budget" | "alert" | "incident" | "label_store", message), ...]): alerts carry their incident_id
    outputs = op.flat_map("outputs", judged, explode)  # (model, (kind, message))
    keyed = op.map("key_outputs", outputs, lambda kv: (message_key(kv[1]), kv[1]))
    # (message key, (kind, message))
    budget = op.filter_map("budgets", keyed, partial(only, "budget"))  # (message key, Budget)
    alerts = op.filter_map("alerts", keyed, partial(only, "alert"))  # (message key, Alert)
    if metrics is not None:
        op.inspect("metrics", keyed, lambda _step, item: metrics.observe_output(item[1][0], item[1][1]))
        op.inspect("metrics_duplicates", duplicates, lambda _step, item: metrics.observe_output("dead_letter", item[1]))
    op.output("budget_out", budget, sinks.budget)
    op.output("alerts_out", alerts, sinks.alerts)
    if sinks.incidents is not None:
        incidents = op.filter_map("incidents_only", keyed, partial(only, "incident"))
        op.output("incidents_out", incidents, sinks.incidents)
    op.output("dead_letter_out", op.merge("all_dead_letters", rejected, duplicates), sinks.dead_letter)
    return flow


def _parse(raw: RawBatch, spec: ParseSpec, metrics: FlowMetrics | None) -> ParsedBatch:
    parsed = parse_in_parts(raw, spec)  # a large batch a few thousand messages at a time
    if metrics is not None:
        metrics.observe_parsed(parsed, raw.topic, len(raw.values))
    return parsed
