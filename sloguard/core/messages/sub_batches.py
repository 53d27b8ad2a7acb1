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

from dataclasses import fields, replace
from itertools import chain
from typing import Any

import numpy as np

from sloguard.core.messages.batch import ParsedBatch, ParseSpec, parse_batch
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
        inference=_joined([p.inference for p in parts]),
        labels=_joined([p.labels for p in parts]),
        features=_joined([p.features for p in parts]),
        rejections=_joined([p.rejections for p in parts]),
        dead_letters=[d for p in parts for d in p.dead_letters],
        max_ts=max(p.max_ts for p in parts),
    )
    last = parts[-1]  # the batch's own progress, the same in every part
    out.watermark, out.source, out.caught_up, out.clock, out.arrival = (
        last.watermark, last.source, last.caught_up, last.clock, last.arrival)
    return out


def _joined(per_part: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model, its columns of every part that has any, joined in part order."""
    models = dict.fromkeys(m for part in per_part for m in part)
    out = {}
    for m in models:
        cols = [part[m] for part in per_part if m in part]
        out[m] = cols[0] if len(cols) == 1 else _join(cols)
    return out


def _join(cols: list[Any]) -> Any:
    """One columns object (InferenceColumns, LabelColumns, FeatureColumns, Rejections) of several,
    field by field, so a field added to one of them is joined too: arrays and per-event lists
    concatenated, `segments` per attribute, `feature_values` per feature, the rest (model, topic,
    partition) the same in every part."""
    joined = {}
    for f in fields(cols[0]):
        values = [getattr(c, f.name) for c in cols]
        first = values[0]
        if isinstance(first, np.ndarray):
            joined[f.name] = np.concatenate(values)
        elif f.name == "segments":  # per segment attribute, per event
            joined[f.name] = [list(chain.from_iterable(v[a] for v in values)) for a in range(len(first))]
        elif isinstance(first, dict):  # feature name -> value per event
            joined[f.name] = {k: list(chain.from_iterable(v[k] for v in values)) for k in first}
        elif isinstance(first, list):
            joined[f.name] = list(chain.from_iterable(values))
        else:
            joined[f.name] = first
    return type(cols[0])(**joined)
