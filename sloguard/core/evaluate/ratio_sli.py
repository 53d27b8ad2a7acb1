"""Good and total counts of the configurable ratio SLIs, `ratio` and `threshold`, over a batch.

`threshold_quantile: {field: ..., quantile: 0.95}` carries the field's values instead (NaN where an
event has none), which the shard sketches per slice like latency.

`ratio: {good: <expr>, total: <expr>}` counts events matching `good` among those matching `total`
(every event when absent); `threshold: {field: attributes.cost_usd, max: 0.02}` counts events whose
numeric value is within [min, max] among those with a numeric value. Expressions are parsed by
`expr.py`; here they are compiled once per source text and run on an `InferenceColumns` batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from sloguard.core.messages.batch import InferenceColumns
from sloguard.core.messages.events import STATUSES
from sloguard.core.spec.expr import as_numbers, compile_expression, parse_expression
from sloguard.core.spec.model import Slo

_STATUS_NAMES = np.array(STATUSES, dtype=object)


@lru_cache(maxsize=256)
def compiled(source: str) -> Callable[[Callable[[str], Any], int], np.ndarray]:
    """The compiled form of an expression (checked already by the config loader)."""
    return compile_expression(parse_expression(source))


def column_lookup(cols: InferenceColumns, segments: tuple[str, ...]) -> Callable[[str], Any]:
    """field path -> the batch's values of it (numpy for numbers, lists otherwise), memoised."""
    cache: dict[str, Any] = {}

    def lookup(path: str) -> Any:
        if path not in cache:
            cache[path] = _values(cols, segments, path)
        return cache[path]

    return lookup


def _values(cols: InferenceColumns, segments: tuple[str, ...], path: str) -> Any:
    head, _, name = path.partition(".")
    if head == "features":
        return cols.feature(name)
    if head == "segment":
        return cols.segments[segments.index(name)]
    if head == "attributes":
        return [a.get(name) for a in cols.attributes] if cols.attributes else [None] * len(cols)
    simple = {"latency_ms": cols.latency_ms, "score": cols.score, "prediction": cols.predictions,
              "version": cols.versions, "variant": cols.variants, "id": cols.ids}
    return _STATUS_NAMES[cols.status] if path == "status" else simple[path]


def ratio_flags(slos: Sequence[Slo], cols: InferenceColumns, segments: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per ratio/threshold SLO, its good and total flags per event: computed in the parse step,
    where the whole event is at hand, and carried to the shard as `"<slo>:good"`, `"<slo>:total"`."""
    out: dict[str, np.ndarray] = {}
    for slo in slos:
        if slo.sli.kind in ("ratio", "threshold"):
            out[f"{slo.name}:good"], out[f"{slo.name}:total"] = ratio_counts(slo.sli.kind, slo.sli.params, cols,
                                                                             segments)
        elif slo.sli.kind == "threshold_quantile":  # the values themselves, for the slice's sketch
            out[f"{slo.name}:value"] = as_numbers(column_lookup(cols, segments)(slo.sli.params["field"]))
    return out


def ratio_counts(kind: str, params: dict[str, Any], cols: InferenceColumns, segments: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(good, total) as bool arrays, one entry per event, for a `ratio` or `threshold` SLI."""
    n = len(cols)
    lookup = column_lookup(cols, segments)
    if kind == "threshold":
        values = as_numbers(lookup(params["field"]))
        total = ~np.isnan(values)
        good = total.copy()
        if "max" in params:
            good &= values <= params["max"]
        if "min" in params:
            good &= values >= params["min"]
        return good, total
    total = compiled(params["total"])(lookup, n) if params.get("total") else np.ones(n, bool)
    return compiled(params["good"])(lookup, n) & total, total
