"""The label join: pairs, expiry, eviction, held labels and their dead-letter reasons."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.evaluate.idhash import id_hashes
from sloguard.core.evaluate.labels import LabelRefs, LabelStore
from sloguard.core.evaluate.pieces import RaggedBytes
from sloguard.core.messages.batch import LabelColumns


class LabelJoin(LabelStore):
    """The store with the tests' older call shape: ids as strings, label values as one column `v`."""

    def add_predictions(self, ids, cols):  # type: ignore[override]
        joined, self.last_rejected = super().add_predictions(id_hashes(ids), cols)
        return joined

    def add_labels(self, cols: LabelColumns):  # type: ignore[override]
        refs = LabelRefs(cols.ts, RaggedBytes.of(cols.raw), cols.topic, cols.partition, np.asarray(cols.offsets))
        joined, rejected = super().add_labels(id_hashes(cols.ids), cols.ts, {"v": np.array(cols.labels)}, refs)
        return _Empty() if joined is None else joined, rejected


class _Empty:
    def __len__(self) -> int:
        return 0


def labels(ids: list[str], ts: list[float], values: list | None = None) -> LabelColumns:
    values = values if values is not None else [1] * len(ids)
    raw = [f'{{"id":"{i}"}}'.encode() for i in ids]
    return LabelColumns("m", np.array(ts, float), list(ids), values, raw, list(range(len(ids))), "ml.labels", 0)


def predict(join: LabelJoin, ids: list[str], ts: list[float]):
    return join.add_predictions(ids, {"ts": np.array(ts, float), "p": np.arange(len(ids))})


def test_a_label_joins_its_prediction_and_carries_the_predictions_columns() -> None:
    join = LabelJoin(delay_s=3600, cap=100, hold_s=60)
    predict(join, ["a", "b", "c"], [10, 20, 30])
    joined, rejected = join.add_labels(labels(["c", "a"], [100, 200], ["x", "y"]))
    assert rejected == []
    assert joined.pred["ts"].tolist() == [30, 10] and joined.pred["p"].tolist() == [2, 0]
    assert joined.truth["v"].tolist() == ["x", "y"] and joined.label_ts.tolist() == [100, 200]
    assert join.pending == 1 and join.counters["joined"] == 2


def test_unmatched_predictions_expire_with_a_counter_and_late_labels_say_why() -> None:
    join = LabelJoin(delay_s=3600, cap=100, hold_s=60)
    predict(join, ["a", "b"], [0, 10])
    assert join.expire(3000) == []
    assert join.pending == 2
    join.expire(3611)
    assert join.pending == 0 and join.counters["expired"] == 2
    joined, rejected = join.add_labels(labels(["a"], [3700]))
    assert len(joined) == 0
    assert len(rejected) == 1 and "expired" in rejected[0][1] and "'a'" in rejected[0][1]
    assert rejected[0][0].raw == b'{"id":"a"}' and rejected[0][0].topic == "ml.labels"


def test_a_label_later_than_the_delay_is_rejected_even_before_expiry_runs() -> None:
    join = LabelJoin(delay_s=100, cap=100, hold_s=60)
    predict(join, ["a"], [0])
    joined, rejected = join.add_labels(labels(["a"], [500]))
    assert len(joined) == 0 and "beyond the label delay" in rejected[0][1]


def test_unknown_ids_are_held_then_dead_lettered_and_a_late_prediction_still_joins() -> None:
    join = LabelJoin(delay_s=3600, cap=100, hold_s=60)
    joined, rejected = join.add_labels(labels(["early", "nobody"], [100, 100]))
    assert len(joined) == 0 and rejected == [] and len(join.held) == 2
    pair = predict(join, ["early"], [90])
    assert pair is not None and pair.pred["ts"].tolist() == [90]
    assert join.expire(150) == []  # still within the hold
    out = join.expire(161)
    assert [m.raw for m, _ in out] == [b'{"id":"nobody"}'] and "unknown prediction id 'nobody'" in out[0][1]
    assert len(join.held) == 0


def test_the_cap_evicts_the_oldest_batches_and_counts_them() -> None:
    join = LabelJoin(delay_s=10**6, cap=5, hold_s=60)
    predict(join, ["a", "b", "c"], [1, 2, 3])
    predict(join, ["d", "e", "f"], [4, 5, 6])
    assert join.pending == 3 and join.counters["evicted"] == 3
    _, rejected = join.add_labels(labels(["a"], [10]))
    assert "evicted" in rejected[0][1]
    joined, _ = join.add_labels(labels(["e"], [10]))
    assert joined.pred["ts"].tolist() == [5]


def test_held_labels_are_capped_too() -> None:
    join = LabelJoin(delay_s=100, cap=3, hold_s=60)
    _, rejected = join.add_labels(labels([f"x{i}" for i in range(5)], [1] * 5))
    assert len(join.held) == 3 and len(rejected) == 2


def test_joined_batches_free_their_memory() -> None:
    join = LabelJoin(delay_s=10**6, cap=10**6, hold_s=60)
    ids = [f"p{i}" for i in range(1000)]
    predict(join, ids, list(range(1000)))
    before = join.memory_bytes()
    join.add_labels(labels(ids[:900], [2000] * 900))
    assert join.pending == 100 and join.memory_bytes() < before / 3
    joined, _ = join.add_labels(labels(ids[900:], [2000] * 100))
    assert sorted(joined.pred["p"].tolist()) == list(range(900, 1000))
    assert not join.blocks and join.pending == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=8),  # batch sizes of predictions
    st.lists(st.integers(0, 60), max_size=60),  # label order: prediction numbers (some unknown)
    st.integers(1, 30),  # label batch size
)
def test_every_label_either_joins_its_own_prediction_once_or_is_explained(
    sizes: list[int], order: list[int], step: int
) -> None:
    join = LabelJoin(delay_s=10**6, cap=10**6, hold_s=0)
    n = 0
    for size in sizes:
        predict(join, [f"p{i}" for i in range(n, n + size)], [float(i) for i in range(n, n + size)])
        n += size
    seen_pairs: list[int] = []
    rejected_ids: list[str] = []
    for k in range(0, len(order), step):
        chunk = order[k : k + step]
        ids = [f"p{i}" for i in chunk]
        joined, rejected = join.add_labels(labels(ids, [1e5] * len(chunk), ids))
        if len(joined):  # each pair is the label's own prediction
            assert [f"p{int(t)}" for t in joined.pred["ts"]] == joined.truth["v"].tolist()
            seen_pairs += joined.pred["ts"].astype(int).tolist()
        rejected_ids += [m.raw.decode() for m, _ in rejected]
    rejected_ids += [m.raw.decode() for m, _ in join.expire(2e6)]
    first = {}
    for i in order:
        first.setdefault(i, True)
    expected_pairs = sorted(i for i in first if i < n)
    assert len(seen_pairs) == len(set(seen_pairs))  # nothing joins twice
    assert sorted(seen_pairs) == expected_pairs
    assert len(rejected_ids) == len(order) - len(expected_pairs)  # every other label is explained
    assert join.pending == 0  # the rest expired


def test_a_second_label_for_a_joined_id_never_joins_another_prediction() -> None:
    """Found by the property above: once a block was compacted, a repeated label's stale sequence number
    landed on a neighbour's row and joined the wrong prediction."""
    join = LabelJoin(delay_s=10**6, cap=10**6, hold_s=0)
    predict(join, [f"p{i}" for i in range(5)], [float(i) for i in range(5)])
    for i in (0, 2, 3, 1):
        joined, _ = join.add_labels(labels([f"p{i}"], [1e5], [f"p{i}"]))
        assert joined.truth["v"].tolist() == [f"p{i}"] and joined.pred["ts"].tolist() == [float(i)]
    again, _ = join.add_labels(labels(["p1"], [1e5], ["p1"]))
    assert len(again) == 0 and join.pending == 1
    last, _ = join.add_labels(labels(["p4"], [1e5], ["p4"]))
    assert last.pred["ts"].tolist() == [4.0]


def test_a_repeated_label_for_a_block_compacted_to_nothing_is_explained_not_a_crash() -> None:
    """Found by a differential run against the dict-based held store: a block whose every prediction
    joined is compacted to no rows but stays behind an older waiting block; a second label for one
    of its ids looked up a row of an empty array (IndexError)."""
    join = LabelJoin(delay_s=1600, cap=10**6, hold_s=0)
    predict(join, [f"old{i}" for i in range(10)], [0.0] * 10)  # an older block waiting (and the index unmerged)
    predict(join, [f"p{i}" for i in range(4)], [1000.0] * 4)  # a block of its own (> delay / 16 later)
    joined, _ = join.add_labels(labels([f"p{i}" for i in range(4)], [1100.0] * 4))
    assert len(joined) == 4 and len(join.blocks) == 2
    again, rejected = join.add_labels(labels(["p2"], [1200.0]))
    assert len(again) == 0 and rejected == [] and len(join.held) == 1  # held: its prediction may come again
    assert "unknown prediction id 'p2'" in join.expire(1300.0)[0][1]


def test_a_held_label_leaves_at_its_own_time_not_at_an_earlier_label_of_the_same_id() -> None:
    """The dict + heap store kept a stale heap entry when a held label joined; a later label of the
    same id, held again, was released at the first one's time."""
    join = LabelJoin(delay_s=10**6, cap=100, hold_s=60)
    join.add_labels(labels(["x"], [100.0]))
    assert len(predict(join, ["x"], [90.0])) == 1
    join.add_labels(labels(["x"], [200.0]))  # a second label for x: held, its prediction may repeat
    assert join.expire(170.0) == [] and len(join.held) == 1  # 100 + 60 has passed, 200 + 60 has not
    out = join.expire(261.0)
    assert [m.ts for m, _ in out] == [200.0] and len(join.held) == 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 15), min_size=1, max_size=6)), max_size=14),
       st.integers(1, 8))
def test_labels_before_or_after_their_predictions_join_once_or_are_explained(
    steps: list[tuple[bool, list[int]]], cap: int
) -> None:
    """Predictions and labels interleaved in any order (Kafka reads both topics at once): every label
    joins its own prediction, at most one label per prediction, or is dead-lettered with a reason."""
    join = LabelJoin(delay_s=10**6, cap=cap, hold_s=10**5)
    predicted: set[int] = set()
    n_labels, pairs, explained = 0, [], 0
    for is_prediction, ids in steps:
        if is_prediction:
            fresh = list(dict.fromkeys(i for i in ids if i not in predicted))
            predicted |= set(fresh)
            got = predict(join, [f"p{i}" for i in fresh], [float(i) for i in fresh])
            explained += len(join.last_rejected)
        else:
            n_labels += len(ids)
            got, rejected = join.add_labels(labels([f"p{i}" for i in ids], [1e3] * len(ids),
                                                   [f"p{i}" for i in ids]))
            explained += len(rejected)
        if got is not None and len(got):
            assert [f"p{int(t)}" for t in got.pred["ts"]] == got.truth["v"].tolist()  # its own prediction
            pairs += got.pred["ts"].astype(int).tolist()
    explained += len(join.release_held())
    assert len(pairs) == len(set(pairs))  # a prediction joins at most once
    assert len(pairs) + explained == n_labels  # every label is paired or explained
    assert len(join.held) == 0


def test_why_ids_are_gone_is_found_for_a_whole_batch_as_for_each_id_alone() -> None:
    """Released held labels and late labels come in bursts, so their reasons are looked up for all
    of them at once: each id keeps its own reason (evicted, expired, or none: joined, waiting, never
    seen), in its own place."""
    join = LabelJoin(delay_s=1000, cap=5, hold_s=60)
    predict(join, ["e1", "e2", "e3"], [1, 2, 3])
    predict(join, ["x1", "x2", "x3"], [600, 600, 600])  # over the cap: e1-e3 are evicted
    predict(join, ["j1", "w1"], [700, 700])
    join.add_labels(labels(["j1"], [710]))  # joined
    join.expire(1650)  # x1-x3 (600) expire; j1 and w1 (700) wait on
    join.index.merge(join._keep)  # as a later batch would: these gone ids move to their own memory
    predict(join, ["y1"], [1700])
    join.expire(1750)  # w1 expires after the merge: still in the index, below the head
    predict(join, [f"z{i}" for i in range(5)], [1760] * 5)  # over the cap: y1 is evicted, also after it
    ids = ["nobody", "e2", "x1", "j1", "w1", "e3", "x3", "y1", "e1", "x2", "z0"]
    reasons = join._gone_reasons(id_hashes(ids))
    assert reasons == [join._gone_reasons(id_hashes([i]))[0] for i in ids]
    assert reasons == [None, "evicted", "expired", None, "expired", "evicted", "expired", "evicted", "evicted",
                       "expired", None]


def test_held_labels_released_together_each_say_why_with_their_own_id() -> None:
    join = LabelJoin(delay_s=3600, cap=100, hold_s=60)
    ids = [f"u{i}" for i in range(40)]
    join.add_labels(labels(ids, [100.0] * 40))
    out = join.expire(161)
    assert [m.raw for m, _ in out] == [f'{{"id":"{i}"}}'.encode() for i in ids]
    assert all(f"unknown prediction id '{i}'" in why for i, (_, why) in zip(ids, out, strict=True))
