"""Drift references per segment key (issue 12): a feature that differs by segment by design
(card-present share by merchant type, amounts by region) must not "drift" in every segment.

`sloguard baseline` stores, for each segment key with at least `min_values` values of a feature
in the known-good history, that segment's shares **on the model reference's bins** (the same
quantile edges or categories), its sample size and (numbers) its standard deviation:

    "segment_references": {"merchant_type=atm": {"card_present": {"probs": [...], "n": 5210}}, ...}

Drift SLOs compare a segment key's slices with its own reference where there is one, else with
the model's. Sharing the model's bins keeps every key's slice counts in one layout, so the flow
counts each value once, whatever reference it is later compared with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sloguard.core.messages.batch import as_numbers
from sloguard.core.stats.drift_bins import NumericReference, Reference

DEFAULT_MIN_VALUES = 1000  # values of a feature a segment key needs in the history for its own reference


def segment_shares(ref: Reference, values: list[Any]) -> dict[str, Any] | None:
    """A segment's reference on the model reference's bins, or None when it has no values."""
    if isinstance(ref, NumericReference):
        numbers = as_numbers(values)
        numbers = numbers[~np.isnan(numbers)]
        counts = ref.count(numbers)
        extra = {"std": float(np.std(numbers))} if numbers.size else {}
    else:
        counts, extra = ref.count(values), {}
    n = int(counts.sum())
    if not n:
        return None
    return {"probs": [float(x) for x in counts / n], "n": n, **extra}


def segment_reference(ref: Reference, d: dict[str, Any]) -> Reference:
    """The model reference with a segment's shares, size and spread (ValueError when they do not fit)."""
    probs = np.asarray(d["probs"], dtype=np.float64)
    if probs.shape != (ref.bins(),):
        raise ValueError(f"{probs.size} shares for a reference of {ref.bins()} bins")
    changes: dict[str, Any] = {"probs": probs, "n": int(d["n"])}
    if isinstance(ref, NumericReference):
        changes["std"] = float(d.get("std", ref.std))
    return dataclasses.replace(ref, **changes)


def segment_references(model_refs: dict[str, Reference], raw: dict[str, dict[str, dict[str, Any]]]
                       ) -> dict[str, dict[str, Reference]]:
    """Segment key -> feature -> reference, for the features the model has a reference of."""
    return {key: {f: segment_reference(model_refs[f], d) for f, d in features.items() if f in model_refs}
            for key, features in raw.items()}
