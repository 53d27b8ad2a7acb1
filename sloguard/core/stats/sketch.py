"""A mergeable quantile sketch with a relative-error guarantee (DDSketch, Masson et al., VLDB 2019).

Values are counted in logarithmic buckets: bucket i holds (gamma^(i-1), gamma^i] with
gamma = (1 + alpha) / (1 - alpha). Returning the bucket's midpoint 2 gamma^i / (gamma + 1) for a
quantile is within a relative error `alpha` of the exact order statistic of the same rank. Two
sketches merge by adding counts, so per-interval sketches combine into any window, and a whole
numpy column is inserted with one `bincount`. Values at or below `min_value` share bucket 0
(reported as `min_value`); for latency in ms and lag in seconds that floor is far below interest.
"""

from __future__ import annotations

import math

import numpy as np


class LogHistogram:
    """Quantile sketch for non-negative values; relative error `alpha` on every quantile.

    >>> h = LogHistogram()
    >>> h.add(np.array([1.0, 10.0, 100.0, 1000.0]))
    >>> round(h.quantile(0.5), 0)
    10.0
    """

    __slots__ = ("_log_gamma", "alpha", "counts", "min_value", "n_buckets", "offset")

    def __init__(self, alpha: float = 0.01, min_value: float = 1e-3, max_value: float = 1e7) -> None:
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        self.alpha = alpha
        self.min_value = min_value
        self._log_gamma = math.log((1 + alpha) / (1 - alpha))
        self.offset = math.floor(math.log(min_value) / self._log_gamma)
        self.n_buckets = math.ceil(math.log(max_value) / self._log_gamma) - self.offset + 1
        self.counts = np.zeros(self.n_buckets, np.int64)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Count every finite value of `values` (NaN is skipped; values past max_value clamp)."""
        v = values[~np.isnan(values)]
        if v.size == 0:
            return
        self.counts += np.bincount(self.bucket_index(v), minlength=self.n_buckets)

    def bucket_index(self, values: np.ndarray) -> np.ndarray:
        """The bucket of each (non-NaN) value: what `add` counts, for sketches built elsewhere."""
        idx = np.ceil(np.log(np.maximum(values, self.min_value)) / self._log_gamma).astype(np.int64)
        np.clip(idx - self.offset, 0, self.n_buckets - 1, out=idx)
        return idx

    def add_counts(self, index: np.ndarray, counts: np.ndarray) -> None:
        """Add sparse bucket counts (from `bucket_index` and a count per bucket)."""
        np.add.at(self.counts, index, counts)

    def merge(self, other: LogHistogram) -> None:
        """Add `other`'s counts into this sketch (both must share alpha and range)."""
        if other.n_buckets != self.n_buckets or other.alpha != self.alpha:
            raise ValueError("cannot merge sketches with different alpha or range")
        self.counts += other.counts

    def quantile(self, q: float) -> float:
        """The value at rank q (0 <= q <= 1) within relative error alpha; NaN when empty.

        The rank convention is numpy's "lower" interpolation: the element at index floor(q (n-1)).
        """
        n = self.count
        if n == 0:
            return math.nan
        rank = math.floor(q * (n - 1))
        i = int(np.searchsorted(np.cumsum(self.counts), rank, side="right"))
        if i == 0:
            return self.min_value
        gamma = math.exp(self._log_gamma)
        return 2 * gamma ** (i + self.offset) / (gamma + 1)

    def copy(self) -> LogHistogram:
        clone = LogHistogram.__new__(LogHistogram)
        for slot in self.__slots__:
            setattr(clone, slot, getattr(self, slot))
        clone.counts = self.counts.copy()
        return clone

    def __getstate__(self) -> dict:
        """Pickle only the non-zero buckets: open slices are sparse."""
        nz = np.flatnonzero(self.counts)
        return {
            "alpha": self.alpha,
            "min_value": self.min_value,
            "n_buckets": self.n_buckets,
            "offset": self.offset,
            "idx": nz.astype(np.int32),
            "cnt": self.counts[nz],
        }

    def __setstate__(self, state: dict) -> None:
        self.alpha = state["alpha"]
        self.min_value = state["min_value"]
        self.n_buckets = state["n_buckets"]
        self.offset = state["offset"]
        self._log_gamma = math.log((1 + self.alpha) / (1 - self.alpha))
        self.counts = np.zeros(self.n_buckets, np.int64)
        self.counts[state["idx"]] = state["cnt"]
