"""A large batch parsed in parts gives the columns of the whole (sloguard/core/messages/sub_batches.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import orjson
from factories import T0, event
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.messages.batch import ParsedBatch, ParseSpec, parse_batch
from sloguard.core.messages.events import RawBatch
from sloguard.core.messages.sub_batches import parse_in_parts
from sloguard.core.spec.timeutil import to_rfc3339

SPEC = ParseSpec({"m": ("region",), "n": ()}, {"m": ("a", "b"), "n": ("a",)}, max_message_bytes=2048)


def _inference_line(i: int, draw_kind: int, ts: float) -> bytes:
    if draw_kind == 0:
        return orjson.dumps(event(i, ts, status="error" if i % 5 == 0 else "ok", region=("eu", "us", "apac")[i % 3],
                                  features={"a": float(i), "b": None if i % 4 == 0 else "x"}))
    if draw_kind == 1:  # RFC 3339 time, another model, no segment
        e = event(i, ts, model="n", features={"a": 1.0})
        e["ts"] = to_rfc3339(ts)
        del e["segment"]
        return orjson.dumps(e)
    if draw_kind == 2:  # invalid, its time readable
        e = event(i, ts)
        del e["latency_ms"]
        return orjson.dumps(e)
    if draw_kind == 3:
        return b"not json"
    return orjson.dumps(event(i, ts, model="unknown"))


def _label_line(i: int, draw_kind: int, ts: float) -> bytes:
    if draw_kind == 2:
        return orjson.dumps({"id": f"e{i}", "model": "m", "ts": ts})  # no label
    return orjson.dumps({"id": f"e{i}", "model": "m" if draw_kind != 1 else "n", "label": i % 2, "ts": ts})


def _feature_line(i: int, draw_kind: int, ts: float) -> bytes:
    segment = {} if draw_kind == 1 else {"region": "eu"}
    return orjson.dumps({"model": "m", "entity": f"u{i}", "features": {"a": 1} if i % 2 else {}, "event_ts": ts - 30,
                         "ts": ts, "segment": segment})


_LINES = {"inference": _inference_line, "labels": _label_line, "features": _feature_line}


def _equal(a: object, b: object) -> None:
    """Two columns objects (or dicts of them) equal field by field; NaN equals NaN."""
    assert type(a) is type(b)
    for f in dataclasses.fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


def _same(parts: ParsedBatch, whole: ParsedBatch, clean: bool) -> None:
    for kind in ("inference", "labels", "features"):
        got, want = getattr(parts, kind), getattr(whole, kind)
        assert set(got) == set(want), kind
        for model in want:
            _equal(got[model], want[model])
    assert [(d.offset, d.error) for d in parts.dead_letters] == [(d.offset, d.error) for d in whole.dead_letters]
    assert set(parts.rejections) == set(whole.rejections)
    for model, want in whole.rejections.items():
        got = parts.rejections[model]
        assert got.offsets == want.offsets
        # a rejection without a readable time is dated by the newest time before it in its part
        # (NaN when the part has none: the shard dates it then); dated ones agree
        assert all(g == w for g, w in zip(got.ts, want.ts, strict=True) if not math.isnan(g))
    if clean:
        assert parts.max_ts == whole.max_ts
    assert (parts.watermark, parts.source, parts.caught_up) == (whole.watermark, whole.source, whole.caught_up)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(_LINES)), kinds=st.lists(st.integers(0, 4), min_size=1, max_size=60),
       size=st.integers(1, 25), dirty=st.booleans())
def test_a_batch_parsed_in_parts_has_the_columns_of_the_whole(kind, kinds, size, dirty):
    """Any part size: the same columns per model, the same dead letters in the same order, the same
    rejections (a time read from the message itself is the same), the batch's progress."""
    if not dirty:
        kinds = [0 if k in (2, 3, 4) else k for k in kinds]
    lines = [_LINES[kind](i, k, T0 + 7 * i) for i, k in enumerate(kinds)]
    raw = RawBatch(kind, f"ml.{kind}", 1, list(range(500, 500 + len(lines))), lines, watermark=T0, source="s",
                   caught_up=True)
    whole = parse_batch(raw, SPEC)
    parts = parse_in_parts(raw, SPEC, size=size)
    _same(parts, whole, clean=not dirty)


def test_a_batch_no_larger_than_a_part_is_parsed_as_it_is():
    lines = [_inference_line(i, 0, T0 + i) for i in range(10)]
    raw = RawBatch("inference", "ml.inference", 0, list(range(10)), lines)
    _same(parse_in_parts(raw, SPEC, size=10), parse_batch(raw, SPEC), clean=True)
