"""The contract every mergeable summary keeps, checked the same way for each (issue 11).

Summaries are built where the data is (shards, batches, workers) and merged where keys meet, and
they are pickled into every snapshot. So for each class in `CONTRACTS`, with hypothesis:

* merging the summaries of the parts of a stream equals the summary of the whole stream;
* merging is associative and commutative;
* a pickle round trip changes nothing, and a summary restored from a snapshot taken mid-stream
  and fed the rest equals one fed everything without interruption.

A new mergeable class joins by adding a `Contract` (how to build one from observations, merge two,
and read what a caller can see of it); the per-class tests (test_sketch.py, test_windows.py, ...)
keep the class-specific oracles.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.stats.sketch import LogHistogram
from sloguard.core.stats.windows import WindowLayout, Windows

T0 = 1_767_225_600
LAYOUT = WindowLayout.for_windows(60, {300, 3600, 21_600, 259_200})
ENDS = [T0 + 3600 * h for h in (1, 6, 30, 80)]


@dataclass(frozen=True)
class Contract:
    """How the suite drives one mergeable class."""

    name: str
    observations: st.SearchStrategy  # one observation
    new: Callable[[], Any]
    add: Callable[[Any, list[Any]], None]  # feed observations in place
    merge: Callable[[Any, Any], None]  # merge the second into the first, in place
    view: Callable[[Any], Any]  # what a reader can see: must be equal for equal summaries


def _sketch_add(s: LogHistogram, values: list[float]) -> None:
    if values:
        s.add(np.array(values, np.float64))


def _windows_add(w: Windows, rows: list[tuple[int, list[int]]]) -> None:
    for offset_s, vector in rows:
        w.add(T0 + offset_s, np.array(vector, np.float64))


def _windows_view(w: Windows) -> list[list[float]]:
    """Every window's sums at several ends (integer-valued counts: sums are exact in any order)."""
    return [w.window_sum(window_s, end).tolist() for end in ENDS for window_s in sorted(LAYOUT.tier_of)]


CONTRACTS = [
    Contract(
        "LogHistogram",
        st.floats(0.0, 1e6, allow_nan=False),
        LogHistogram,
        _sketch_add,
        lambda a, b: a.merge(b),
        lambda s: (s.counts.tolist(), [s.quantile(q) for q in (0.0, 0.5, 0.99, 1.0)]),
    ),
    Contract(
        "Windows",
        st.tuples(st.integers(0, 80 * 3600 - 1), st.lists(st.integers(0, 5), min_size=3, max_size=3)),
        lambda: Windows(LAYOUT, 3),
        _windows_add,
        lambda a, b: a.merge(b),
        _windows_view,
    ),
]
BY_NAME = {c.name: c for c in CONTRACTS}
NAMES = [c.name for c in CONTRACTS]


def built(c: Contract, observations: list[Any]) -> Any:
    s = c.new()
    c.add(s, observations)
    return s


def merged(c: Contract, *parts: Any) -> Any:
    out = copy.deepcopy(parts[0])
    for p in parts[1:]:
        c.merge(out, p)
    return out


def streams(name: str, parts: int) -> st.SearchStrategy:
    return st.lists(st.lists(BY_NAME[name].observations, max_size=40), min_size=parts, max_size=parts)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_merging_the_parts_equals_the_summary_of_the_whole(name: str, data: st.DataObject) -> None:
    c = BY_NAME[name]
    parts = data.draw(streams(name, 3))
    whole = built(c, [o for p in parts for o in p])
    assert c.view(merged(c, *[built(c, p) for p in parts])) == c.view(whole)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_merging_is_associative_and_commutative(name: str, data: st.DataObject) -> None:
    c = BY_NAME[name]
    a, b, d = (built(c, p) for p in data.draw(streams(name, 3)))
    left = merged(c, merged(c, a, b), d)
    right = merged(c, a, merged(c, b, d))
    assert c.view(left) == c.view(right) == c.view(merged(c, d, b, a))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_summary_restored_mid_stream_ends_like_an_uninterrupted_one(name: str, data: st.DataObject) -> None:
    c = BY_NAME[name]
    before, after = data.draw(streams(name, 2))
    half = built(c, before)
    restored = pickle.loads(pickle.dumps(half, protocol=pickle.HIGHEST_PROTOCOL))
    assert c.view(restored) == c.view(half)
    c.add(restored, after)
    assert c.view(restored) == c.view(built(c, before + after))
