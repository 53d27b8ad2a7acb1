"""A large batch parsed a few thousand messages at a time, its columns then joined.

Building the columns reads every decoded event (a msgspec Struct holding dicts) once per column.
For 10,000 messages those no longer fit the CPU caches. The flow reads batches of up to 10,000
because the stages after parsing pay a fixed cost per batch; parsing them in parts of 2,500 took
`python benchmarks/stage_costs.py` from 3.40-3.56 to 2.63-2.66 us a message for parse (all stages
9.09-9.32 -> 8.32-8.43), alternated twice. So `parse_in_parts` parses `SUB_BATCH` messages at a
time (each part's events are freed before the next is decoded) and joins their columns into one
`ParsedBatch`, in the batch's order.

Within a part the parser's batch-wide rules see only that part: a rejected message without a readable
time is dated by the part's newest time before it, else left to the shard (parse_batch says why that
does not depend on how the input was cut), and "older than every window" is measured from the part's
10th percentile of event times, as it is from a smaller batch's.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import chain

import numpy as np

from sloguard.core.messages.batch import (
    FeatureColumns,
    InferenceColumns,
    LabelColumns,
    ParsedBatch,
    ParseSpec,
    Rejections,
    parse_batch,
)
from sloguard.core.messages.events import RawBatch

#: Messages parsed at a time (see the module docstring).
SUB_BATCH = 2500


def parse_in_parts(raw: RawBatch, spec: ParseSpec, now: float | None = None, size: int = SUB_BATCH) -> ParsedBatch:
    """`parse_batch(raw, spec, now)`, `size` messages at a time, its columns joined."""
    n = len(raw.values)
    if n <= size:
        return parse_batch(raw, spec, now)
    parts = [parse_batch(replace(raw, values=raw.values[i : i + size], offsets=raw.offsets[i : i + size]), spec, now)
             for i in range(0, n, size)]
    out = ParsedBatch(
        inference=_joined([p.inference for p in parts], _inference),
        labels=_joined([p.labels for p in parts], _labels),
        features=_joined([p.features for p in parts], _features),
        rejections=_joined([p.rejections for p in parts], _rejections),
        dead_letters=[d for p in parts for d in p.dead_letters],
        max_ts=max(p.max_ts for p in parts),
    )
    last = parts[-1]  # the batch's own progress, the same in every part
    out.watermark, out.source, out.caught_up, out.clock, out.arrival = (
        last.watermark, last.source, last.caught_up, last.clock, last.arrival)
    return out


def _joined(per_part: list[dict], join: object) -> dict:
    """Per model, its columns of every part that has any, joined in part order."""
    models = dict.fromkeys(m for part in per_part for m in part)
    out = {}
    for m in models:
        cols = [part[m] for part in per_part if m in part]
        out[m] = cols[0] if len(cols) == 1 else join(cols)  # type: ignore[operator]
    return out


def _cat(cols: list, name: str) -> np.ndarray:
    return np.concatenate([getattr(c, name) for c in cols])


def _list(cols: list, name: str) -> list:
    return list(chain.from_iterable(getattr(c, name) for c in cols))


def _per_attribute(cols: list) -> list[list]:
    return [list(chain.from_iterable(c.segments[a] for c in cols)) for a in range(len(cols[0].segments))]


def _inference(cols: list[InferenceColumns]) -> InferenceColumns:
    first = cols[0]
    return InferenceColumns(
        model=first.model, ts=_cat(cols, "ts"), status=_cat(cols, "status"), latency_ms=_cat(cols, "latency_ms"),
        lag_s=_cat(cols, "lag_s"), n_missing=_cat(cols, "n_missing"), score=_cat(cols, "score"),
        ids=_list(cols, "ids"), versions=_list(cols, "versions"), variants=_list(cols, "variants"),
        predictions=_list(cols, "predictions"), segments=_per_attribute(cols), features=_list(cols, "features"),
        raw=_list(cols, "raw"), offsets=_list(cols, "offsets"), topic=first.topic, partition=first.partition,
        feature_values={name: list(chain.from_iterable(c.feature_values[name] for c in cols))
                        for name in first.feature_values},
        attributes=_list(cols, "attributes"),
    )


def _labels(cols: list[LabelColumns]) -> LabelColumns:
    first = cols[0]
    return LabelColumns(model=first.model, ts=_cat(cols, "ts"), ids=_list(cols, "ids"), labels=_list(cols, "labels"),
                        raw=_list(cols, "raw"), offsets=_list(cols, "offsets"), topic=first.topic,
                        partition=first.partition)


def _features(cols: list[FeatureColumns]) -> FeatureColumns:
    return FeatureColumns(model=cols[0].model, ts=_cat(cols, "ts"), lag_s=_cat(cols, "lag_s"),
                          n_missing=_cat(cols, "n_missing"), segments=_per_attribute(cols))


def _rejections(cols: list[Rejections]) -> Rejections:
    return Rejections(cols[0].model, _list(cols, "ts"), _list(cols, "offsets"))
