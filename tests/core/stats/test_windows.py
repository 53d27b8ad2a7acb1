"""Tests for sloguard.core.stats.windows: tiered rings of counter vectors serving 5-minute to 30-day windows.

The oracle is a brute-force sum over the raw events. The module's contract (its docstring): a
window w read from a tier of bucket b, evaluated at T (exclusive, a multiple of the base interval),
covers exactly the events with ts in [ceil((T - w) / b) * b, T). Buckets are never overwritten
until the owner calls `release(t)`; after that, windows evaluated at t or later are still exact.
"""

from __future__ import annotations

import copy
import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.stats.windows import WindowLayout, Windows

BASE_S = 60
WINDOWS_S = {300, 1800, 3600, 21_600, 259_200, 2_592_000}  # 5m 30m 1h 6h 3d 30d
LONGEST_S = max(WINDOWS_S)
NCOLS = 3
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, a multiple of every bucket size

LAYOUT = WindowLayout.for_windows(BASE_S, WINDOWS_S)
CAPACITIES = [t.capacity for t in LAYOUT.tiers]


def _ceil_to(x: float, b: int) -> int:
    """ceil(x / b) * b, exact for whole x."""
    return -(-int(x) // b) * b if float(x).is_integer() else int(np.ceil(x / b)) * b


def _brute_sum(ts: np.ndarray, vecs: np.ndarray, window_s: int, end_s: int) -> np.ndarray:
    b = LAYOUT.window_bucket_s(window_s)
    lo = _ceil_to(end_s - window_s, b)
    return vecs[(ts >= lo) & (ts < end_s)].sum(axis=0)


def _assert_sums(win: Windows, ts: np.ndarray, vecs: np.ndarray, end_s: int) -> None:
    got = win.sums(end_s)
    assert set(got) == WINDOWS_S
    for w in WINDOWS_S:
        want = _brute_sum(ts, vecs, w, end_s)
        np.testing.assert_array_equal(got[w], want, err_msg=f"window {w}s at T={end_s}")
        np.testing.assert_array_equal(win.window_sum(w, end_s), want)


def _buckets(win: Windows) -> list[dict[int, tuple[float, ...]]]:
    """Per tier: bucket index -> vector, independent of ring size and slot order."""
    return [{int(i): tuple(c) for i, c in zip(idx, cnt, strict=True) if i >= 0}
            for idx, cnt in zip(win.index, win.counts, strict=True)]


def _fill(events, releases=(), rnd=None) -> Windows:
    """A Windows fed `events` [(ts, vec)] and `release(t)` calls, shuffled together if rnd is given."""
    ops = [("add", t, v) for t, v in events] + [("release", r, None) for r in releases]
    if rnd is not None:
        rnd.shuffle(ops)
    win = Windows(LAYOUT, NCOLS)
    for op, t, v in ops:
        if op == "add":
            win.add(float(t), np.asarray(v, np.float64))
        else:
            win.release(float(t))
    return win


# Events: offsets from a reference time, biased towards the bucket edges of every tier so that the
# [ceil((T - w) / b) * b, T) boundaries are exercised.
_edge_offsets = st.builds(
    lambda k, b, d: k * b + d,
    st.integers(min_value=-20, max_value=130),
    st.sampled_from([60, 300, 3600, 21_600]),
    st.sampled_from([0.0, 0.5, -0.5, 1.0]),
)
_offsets = st.one_of(
    st.integers(min_value=-6 * 3600, max_value=LONGEST_S + 6 * 3600).map(float),
    st.integers(min_value=-3600, max_value=4 * 3600).map(float),  # dense recent traffic
    st.floats(min_value=-3600.0, max_value=float(LONGEST_S + 3600), allow_nan=False),
    _edge_offsets,
)
_vectors = st.lists(st.integers(min_value=0, max_value=9), min_size=NCOLS, max_size=NCOLS)


@st.composite
def scenarios(draw: st.DrawFn, with_releases: bool = True):
    """(ts, vectors, releases, evaluation times): each evaluation time is >= every release."""
    ref = T0 + 60 * draw(st.integers(min_value=0, max_value=24 * 60))
    raw = draw(st.lists(st.tuples(_offsets, _vectors), min_size=1, max_size=250))
    ts = np.array([ref - off for off, _ in raw], dtype=np.float64)
    vecs = np.array([v for _, v in raw], dtype=np.float64)
    releases = []
    if with_releases:
        minutes = draw(st.lists(st.integers(min_value=-LONGEST_S // 60, max_value=6 * 60), max_size=5))
        releases = [ref + 60 * m for m in minutes]
    first = max([ref, *releases])
    later = draw(st.lists(st.integers(min_value=0, max_value=8 * 60), min_size=1, max_size=4))
    ends = sorted({first, *(first + 60 * k for k in later)})
    return ts, vecs, releases, ends


# ------------------------------------------------------------------------------------------- layout


def test_layout_picks_the_documented_bucket_sizes() -> None:
    expected = {300: 60, 1800: 60, 3600: 60, 21_600: 300, 259_200: 3600, 2_592_000: 21_600}
    assert {w: LAYOUT.window_bucket_s(w) for w in WINDOWS_S} == expected


def test_layout_tiers_are_a_chain_of_divisors_with_enough_capacity() -> None:
    sizes = [t.bucket_s for t in LAYOUT.tiers]
    assert sizes == sorted(sizes) and sizes[0] == BASE_S
    assert all(coarse % fine == 0 for fine, coarse in itertools.pairwise(sizes))
    for w in WINDOWS_S:
        tier = LAYOUT.tiers[LAYOUT.tier_of[w]]
        assert tier.capacity * tier.bucket_s > w  # the ring holds a whole window plus its edge
        assert w // tier.bucket_s >= 60 or tier.bucket_s == BASE_S
    # fixed memory: about 330 buckets for the default SLO windows (module docstring)
    assert sum(CAPACITIES) <= 340


def test_layout_rejects_window_not_multiple_of_base() -> None:
    with pytest.raises(ValueError, match="90s"):
        WindowLayout.for_windows(60, {90, 3600})


def test_layout_min_base_span() -> None:
    layout = WindowLayout.for_windows(60, {300}, min_base_span_s=7200)
    assert layout.tiers[0].capacity * 60 >= 7200


# ------------------------------------------------------------------------------------------- sums


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_sums_equal_brute_force_over_the_documented_range(scn, rnd) -> None:
    """Any order of adds and releases: windows evaluated at or after every release are exact."""
    ts, vecs, releases, ends = scn
    win = _fill(list(zip(ts, vecs, strict=True)), releases, rnd)
    for end in ends:
        _assert_sums(win, ts, vecs, end)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_sums_at_many_ends_equals_sums_at_each(scn, rnd) -> None:
    """The matrix-product path the judge uses gives exactly the per-window sums."""
    ts, vecs, releases, ends = scn
    win = _fill(list(zip(ts, vecs, strict=True)), releases, rnd)
    many = win.sums_at(ends)
    for end in ends:
        assert {w: v.tolist() for w, v in many[end].items()} == {w: v.tolist() for w, v in win.sums(end).items()}


def test_sums_hand_counted_example() -> None:
    end = T0
    events = [
        (end - 1, [1, 0, 0]),  # in every window
        (end - 300, [0, 1, 0]),  # first second of the 5m window
        (end - 300.5, [0, 0, 1]),  # just before it: 30m and up
        (end - 21_600, [1, 1, 0]),  # first second of the 6h window
        (end - 21_600 - 1, [0, 0, 5]),  # outside 6h: 3d and 30d
        (end, [7, 7, 7]),  # at T: exclusive, in none
        (end - 2_592_000, [2, 0, 0]),  # first second of 30d
    ]
    got = _fill(events).sums(end)
    np.testing.assert_array_equal(got[300], [1, 1, 0])
    np.testing.assert_array_equal(got[1800], [1, 1, 1])
    np.testing.assert_array_equal(got[3600], [1, 1, 1])
    np.testing.assert_array_equal(got[21_600], [2, 2, 1])
    np.testing.assert_array_equal(got[259_200], [2, 2, 6])
    np.testing.assert_array_equal(got[2_592_000], [4, 2, 6])


def test_long_window_edge_moves_in_whole_buckets() -> None:
    # 30d reads 6h buckets: at T = T0 + 1h the window starts at ceil((T - 30d) / 6h) * 6h,
    # i.e. T0 - 30d + 6h; an event at T0 - 30d + 1h (inside [T - 30d, T)) is not counted.
    end = T0 + 3600
    win = _fill([(T0 - 2_592_000 + 3600, [1, 0, 0]), (T0 - 2_592_000 + 21_600, [0, 1, 0])])
    np.testing.assert_array_equal(win.window_sum(2_592_000, end), [0, 1, 0])


def _stream(n: int, lateness_s: int, seed: int):
    """An evaluator-like run: events arrive up to `lateness_s` out of order; tick t is released
    (then evaluated) once an event at t + lateness_s or later has arrived."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.uniform(0, 100, n))  # ~58 days at n = 1e5
    arrival = np.argsort(ts + rng.uniform(0, lateness_s, n), kind="stable")
    ts = ts[arrival]
    vecs = rng.integers(0, 4, size=(n, NCOLS)).astype(np.float64)
    return ts, vecs


def _run_stream(ts, vecs, lateness_s: int, check_every: int = 0):
    win = Windows(LAYOUT, NCOLS)
    tick = T0 + 60
    sizes_seen = set()
    checked = 0
    for t, v in zip(ts.tolist(), vecs, strict=True):
        while t >= tick + lateness_s:
            win.release(tick)
            if check_every and (tick // 60) % check_every == 0:
                _assert_sums(win, ts, vecs, tick)
                checked += 1
            tick += 60
        win.add(t, v)
        sizes_seen.add(tuple(len(i) for i in win.index))
    return win, tick, sizes_seen, checked


def test_ring_memory_is_bounded_and_sums_stay_exact_after_many_adds() -> None:
    ts, vecs = _stream(100_000, 0, seed=11)
    win, tick, sizes_seen, _ = _run_stream(ts, vecs, 0)
    # the rings never grow: memory is fixed by the layout, whatever the length of the stream
    assert sizes_seen == {tuple(CAPACITIES)}
    assert [c.shape for c in win.counts] == [(c, NCOLS) for c in CAPACITIES]
    assert win.dropped == 0
    win.release(tick)
    for k in (0, 1, 7, 61):
        _assert_sums(win, ts, vecs, tick + 60 * k)


def test_ring_memory_stays_at_the_layout_with_one_interval_of_lateness() -> None:
    """The examples' `allowed_lateness: 1m`: events run one interval ahead of the released tick.

    The module docstring promises memory "fixed by the layout (about 330 buckets ...)" and growth
    only when events run past the watermark; one interval of allowed lateness is not that.
    """
    ts, vecs = _stream(20_000, 60, seed=5)
    win, _, sizes_seen, checked = _run_stream(ts, vecs, 60, check_every=997)
    assert checked > 0 and win.dropped == 0
    assert sizes_seen == {tuple(CAPACITIES)}, sorted(sizes_seen)


def test_unreleased_buckets_are_never_overwritten() -> None:
    # two events one base-ring turn apart share a slot; with nothing released both are kept
    win = Windows(LAYOUT, NCOLS)
    turn = CAPACITIES[0] * BASE_S
    win.add(float(T0), np.array([1.0, 0, 0]))
    win.add(float(T0 - turn), np.array([0, 5.0, 0]))
    assert win.dropped == 0
    np.testing.assert_array_equal(win.window_sum(3600, T0 - turn + 3600), [0, 5, 0])
    np.testing.assert_array_equal(win.window_sum(3600, T0 + 60), [1, 0, 0])
    np.testing.assert_array_equal(win.span(T0 - turn, T0 + 60), [1, 5, 0])


def test_get_finds_kept_buckets_after_the_ring_grew() -> None:
    win = Windows(LAYOUT, NCOLS)
    turn = CAPACITIES[0] * BASE_S
    win.add(float(T0), np.array([1.0, 0, 0]))
    win.add(float(T0 - turn), np.array([0, 5.0, 0]))  # same slot, nothing released: the ring grows
    np.testing.assert_array_equal(win.get(float(T0) + 30), [1, 0, 0])
    np.testing.assert_array_equal(win.get(float(T0 - turn)), [0, 5, 0])


def test_released_data_is_dropped_and_counted() -> None:
    win = Windows(LAYOUT, NCOLS)
    win.add(float(T0), np.array([1.0, 1.0, 0.0]))
    win.release(float(T0 + 7200))  # from now on no base-tier window reaches back to T0
    win.add(float(T0 + 10), np.array([5.0, 0.0, 0.0]))
    assert win.dropped == 5.0
    assert win.get(float(T0 + 10)) is None or win.get(float(T0 + 10))[0] == 1.0
    end = T0 + 7200
    # the late event still counts in the long windows, which read coarser tiers
    np.testing.assert_array_equal(win.window_sum(21_600, end), [6, 1, 0])
    np.testing.assert_array_equal(win.window_sum(2_592_000, end), [6, 1, 0])
    np.testing.assert_array_equal(win.window_sum(3600, end), [0, 0, 0])


def test_span_and_get() -> None:
    events = [(T0 + 10.0, [1, 0, 0]), (T0 + 70.0, [0, 1, 0]), (T0 + 130.0, [0, 0, 1]),
              (T0 + 179.9, [2, 0, 0])]
    win = _fill(events)
    np.testing.assert_array_equal(win.get(T0 + 150.0), [2, 0, 1])
    assert win.get(T0 + 200.0) is None
    # buckets starting in [start, end): start T0+1 -> first bucket T0+60
    np.testing.assert_array_equal(win.span(T0 + 1, T0 + 180), [2, 1, 1])
    np.testing.assert_array_equal(win.span(T0, T0 + 120), [1, 1, 0])
    np.testing.assert_array_equal(win.span(T0, T0 + 121), [3, 1, 1])


# ------------------------------------------------------------------------------ merge and snapshot


@settings(max_examples=60, deadline=None)
@given(scenarios(with_releases=False), st.lists(st.integers(min_value=0, max_value=2), min_size=250,
                                                 max_size=250))
def test_merge_of_disjoint_parts_equals_one_window_of_all(scn, parts) -> None:
    ts, vecs, _, ends = scn
    events = list(zip(ts, vecs, strict=True))
    groups = [[e for e, p in zip(events, parts, strict=False) if p == k] for k in range(3)]
    a, b, c = (_fill(g) for g in groups)
    whole = _fill(events)

    ab_c = copy.deepcopy(a)
    ab_c.merge(b)
    ab_c.merge(c)
    bc = copy.deepcopy(b)
    bc.merge(c)
    a_bc = copy.deepcopy(a)
    a_bc.merge(bc)
    cba = copy.deepcopy(c)
    cba.merge(b)
    cba.merge(a)

    for merged in (ab_c, a_bc, cba):
        assert _buckets(merged) == _buckets(whole)
        for end in ends:
            _assert_sums(merged, ts, vecs, end)
    # merging left the operands alone
    assert _buckets(b) == _buckets(_fill(groups[1]))


@settings(max_examples=40, deadline=None)
@given(scenarios(), st.lists(st.integers(min_value=0, max_value=1), min_size=250, max_size=250),
       st.randoms(use_true_random=False))
def test_merge_after_releases_stays_exact(scn, parts, rnd) -> None:
    ts, vecs, releases, ends = scn
    events = list(zip(ts, vecs, strict=True))
    a = _fill([e for e, p in zip(events, parts, strict=False) if p == 0], releases, rnd)
    b = _fill([e for e, p in zip(events, parts, strict=False) if p == 1], releases, rnd)
    a.merge(b)
    for end in ends:
        _assert_sums(a, ts, vecs, end)


@settings(max_examples=30, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_pickle_round_trip(scn, rnd) -> None:
    ts, vecs, releases, ends = scn
    win = _fill(list(zip(ts, vecs, strict=True)), releases, rnd)
    back = pickle.loads(pickle.dumps(win))
    assert back.layout == win.layout
    assert back.dropped == win.dropped
    assert _buckets(back) == _buckets(win)
    for end in ends:
        _assert_sums(back, ts, vecs, end)
    # a restored window keeps counting (and releasing) like the original, and shares no state
    late = (float(ends[0] - 7200), np.ones(NCOLS))  # may already be released in both, or not
    for w in (back, win):
        w.release(float(ends[0]))
        w.add(*late)
        w.add(float(ends[0]), np.ones(NCOLS))
    assert back.dropped == win.dropped
    assert _buckets(back) == _buckets(win)
    back.add(float(ends[0]), np.ones(NCOLS))
    assert not np.array_equal(back.window_sum(300, ends[0] + 60), win.window_sum(300, ends[0] + 60))


@pytest.mark.parametrize("gap_buckets", [31 * 2**18, 2**25, 62 * 2**19 + 1, 10**9])
def test_a_bucket_years_away_costs_one_row_not_an_allocation_sized_by_the_gap(gap_buckets) -> None:
    """Issue 15: one bucket 15 years after the others used to grow the ring until the gap fit
    (1.4 GB for 31 * 2**18 minutes); now it gets one spilled row, and every read still sees it."""
    w = Windows(LAYOUT, NCOLS)
    for m in range(120):  # two hours of unreleased buckets, then one far away
        w.add(T0 + 60 * m, np.ones(NCOLS))
    far = T0 + 60 * gap_buckets
    w.add(far, np.array([5.0, 0.0, 1.0]))
    w.add(far, np.array([5.0, 0.0, 1.0]))
    assert sum(c.nbytes for c in w.counts) < 50 * sum(CAPACITIES) * NCOLS * 8
    assert w.get(far).tolist() == [10.0, 0.0, 2.0]
    assert w.span(far - 60, far + 120).tolist() == [10.0, 0.0, 2.0]
    assert w.span(T0, T0 + 7200).tolist() == [120.0] * NCOLS
    assert w.sums(T0 + 7200)[3600].tolist() == [60.0] * NCOLS
    assert w.sums(far + 60)[300].tolist() == [10.0, 0.0, 2.0]
    again = pickle.loads(pickle.dumps(w))
    assert again.get(far).tolist() == [10.0, 0.0, 2.0] and again.slots == w.slots
    w.release(far)  # the far bucket becomes the present: the old ones are released, it stays
    assert w.get(far).tolist() == [10.0, 0.0, 2.0]
    w.add(far + 60, np.ones(NCOLS))  # and the ring goes on from there
    assert w.sums(far + 120)[300].tolist() == [11.0, 1.0, 3.0]


def test_a_spilled_row_is_reused_once_released() -> None:
    w = Windows(LAYOUT, NCOLS)
    for m in range(60):
        w.add(T0 + 60 * m, np.ones(NCOLS))
    w.add(T0 + 60 * 10**7, np.ones(NCOLS))
    rows = len(w.index[0])
    w.release(T0 + 60 * 10**7 + 86_400 * 40)  # everything so far is released
    w.add(T0 + 60 * 2 * 10**7, np.ones(NCOLS))
    assert len(w.index[0]) <= rows
