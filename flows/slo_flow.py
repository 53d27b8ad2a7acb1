"""The sloguard dataflow: raw batches in; budgets, alerts and dead letters out.

`build_flow` is a factory: tests pass `TestingSource`/`TestingSink`, `sloguard replay` passes
JSONL files, `sloguard run` passes Kafka. The same steps run in every case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.metrics import FlowMetrics
from flows.operators import dead_letters, message_key
from sloguard.batch import ParsedBatch, ParseSpec, parse_batch
from sloguard.config import Config
from sloguard.evaluator import split_by_model
from sloguard.events import RawBatch


@dataclass(frozen=True)
class Sinks:
    """Where the three outputs go; each receives `(message key, message dict)` items."""

    budget: Sink
    alerts: Sink
    dead_letter: Sink


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
    finish_at_eof: bool = True,
    flow_id: str = "sloguard",
    sources: tuple[str, ...] = (),
    metrics: FlowMetrics | None = None,
    clock: Callable[[], float] | None = None,
) -> Dataflow:
    """The dataflow over `source` (batches of raw messages) into `sinks`.

    `finish_at_eof` evaluates the ticks still pending when the input ends (replay); a live run
    leaves them to the next events or clock ticks. `sources` names every input source (topic
    partitions, files) so that event time waits for each of them (sloguard/frontier.py);
    `metrics`, when given, is fed by `inspect` steps at the flow's edges. `clock` (a live run's
    wall clock) rejects events stamped more than `limits.max_future_skew` ahead of it, which a
    small live batch cannot judge from its own timestamps.
    """
    models = list(config.models)
    flow = Dataflow(flow_id)
    raw = op.input("input", flow, source)  # RawBatch
    parsed = op.map("parse", raw, partial(_parse, spec=parse_spec(config), metrics=metrics, clock=clock))
    # ParsedBatch
    rejected = op.flat_map("dead_letters", parsed, dead_letters)  # (key, dead letter)
    per_model = op.flat_map("split_by_model", parsed, partial(split_by_model, models=models))
    # (model, ModelBatch)
    evaluated = op.stateful("evaluate", per_model, partial(_logic, config, finish_at_eof, tuple(sources)))
    # (model, ("budget" | "alert" | "dead_letter", message))
    keyed = op.map("key_outputs", evaluated, lambda kv: (message_key(kv[1]), kv[1]))
    # (message key, (kind, message))
    budget = op.filter_map("budgets", keyed, partial(_only, "budget"))
    alerts = op.filter_map("alerts", keyed, partial(_only, "alert"))
    duplicates = op.filter_map("duplicates", keyed, partial(_only, "dead_letter"))
    if metrics is not None:
        op.inspect("metrics", keyed, lambda _step, item: metrics.observe_output(item[1][0], item[1][1]))
    op.output("budget_out", budget, sinks.budget)
    op.output("alerts_out", alerts, sinks.alerts)
    op.output("dead_letter_out", op.merge("all_dead_letters", rejected, duplicates), sinks.dead_letter)
    return flow


def _parse(raw: RawBatch, spec: ParseSpec, metrics: FlowMetrics | None,
           clock: Callable[[], float] | None) -> ParsedBatch:
    parsed = parse_batch(raw, spec, now=clock() if clock is not None else None)
    if metrics is not None:
        metrics.observe_parsed(parsed, raw.topic, len(raw.values))
    return parsed


def _logic(config: Config, finish_at_eof: bool, sources: tuple[str, ...], resume: dict | None) -> op.StatefulLogic:
    from flows.operators import EvaluateLogic

    return EvaluateLogic(config, resume, finish_at_eof, sources)


def _only(kind: str, item: tuple) -> tuple | None:
    key, (k, msg) = item
    return (key, msg) if k == kind else None
