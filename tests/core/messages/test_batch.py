"""Batch parsing: columns equal the input, and every bad message becomes a dead letter with its reason."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from factories import T0, event
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.evaluate.dedupe import RecentIds
from sloguard.core.evaluate.idhash import id_hashes
from sloguard.core.messages.batch import ParseSpec, parse_batch
from sloguard.core.messages.events import RawBatch, decode_event, validate_message
from sloguard.core.messages.outputs import MAX_DEAD_LETTER_PAYLOAD_BYTES
from sloguard.core.spec.timeutil import to_rfc3339

SPEC = ParseSpec({"m": ("region",)}, {"m": ("a", "b")}, max_message_bytes=2048)


def raw(lines: list[bytes], kind: str = "inference", watermark: float | None = None) -> RawBatch:
    return RawBatch(kind, f"ml.{kind}", 3, list(range(100, 100 + len(lines))), lines, watermark)


def test_columns_equal_the_events_whatever_the_timestamp_format():
    rng = np.random.default_rng(5)
    events = []
    lags = rng.uniform(0, 900, 300)
    for i in range(300):
        e = event(i, T0 + i * 0.7, status=("ok", "error", "timeout")[i % 3], latency_ms=float(rng.gamma(2, 20)),
                  region=("eu", "us")[i % 2], lag_s=float(lags[i]),
                  features={"a": None, "b": 1} if i % 7 == 0 else ({"a": 1} if i % 11 == 0 else {"a": 1, "b": "x"}))
        if i % 4 == 0:  # RFC 3339 strings for some, epoch numbers for the rest
            e["ts"], e["feature_ts"] = to_rfc3339(e["ts"]), to_rfc3339(e["feature_ts"])
        events.append(e)
    parsed = parse_batch(raw([orjson.dumps(e) for e in events]), SPEC)
    cols = parsed.inference["m"]
    assert parsed.dead_letters == [] and len(cols) == 300
    want_ts = np.array([T0 + i * 0.7 for i in range(300)])
    np.testing.assert_allclose(cols.ts, want_ts, atol=1e-3)
    assert cols.status.tolist() == [i % 3 for i in range(300)]
    np.testing.assert_allclose(cols.latency_ms, [e["latency_ms"] for e in events], rtol=1e-12)
    np.testing.assert_allclose(cols.lag_s, lags, atol=2e-3)  # RFC 3339 strings carry milliseconds
    assert cols.n_missing.tolist() == [1 if i % 7 == 0 else (1 if i % 11 == 0 else 0) for i in range(300)]
    assert cols.segments == [[("eu", "us")[i % 2] for i in range(300)]]
    assert cols.ids == [e["id"] for e in events] and cols.offsets == list(range(100, 400))
    assert parsed.max_ts == pytest.approx(want_ts.max(), abs=1e-3)
    assert (parsed.source, parsed.caught_up) == ("ml.inference#3", False)


BAD = [
    (b'{"id": "x", "model": "m"', "malformed JSON"),
    (b'{"id":"x","model":"m","version":"v","ts":NaN,"status":"ok","latency_ms":1}', "malformed JSON"),
    (b'[1, 2]', "not a JSON object"),
    (b'{"model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":1}', "id: missing"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"fine","latency_ms":1}', "status:"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":true}', "latency_ms:"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":-1}', "latency_ms:"),
    (b'{"id":"x","model":"m","version":"v","ts":"2150-01-01T00:00:00Z","status":"ok","latency_ms":1}', "ts:"),
    (b'{"id":"x","model":"m","version":"v","ts":"2026-01-01T00:00:00","status":"ok","latency_ms":1}', "ts:"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":1,"score":1.5}', "score:"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":1,"segment":{"r":1}}',
     "segment.r:"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":1,"features":{"a":[1]}}',
     "features.a:"),
    (b'{"id":"x","model":"zz","version":"v","ts":1767225600,"status":"ok","latency_ms":1}', "model: unknown"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":1,"note":"\xc3("}',
     "malformed JSON: not valid UTF-8"),
    (b'{"id":"x","model":"m","version":"v","ts":1767225600,"status":"ok","latency_ms":1,"pad":"' + b"x" * 3000
     + b'"}', "oversized message"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD, ids=[r for _, r in BAD])
def test_each_bad_message_is_dead_lettered_with_a_reason_naming_the_problem(payload, reason):
    good = orjson.dumps(event(1, T0))
    parsed = parse_batch(raw([good, payload, good.replace(b'"e1"', b'"e2"')]), SPEC)
    assert len(parsed.inference["m"]) == 2
    (dead,) = parsed.dead_letters
    assert dead.error.startswith(reason), dead.error
    assert (dead.topic, dead.partition, dead.offset) == ("ml.inference", 3, 101)
    assert dead.stage == "parse" and dead.payload_bytes == len(payload)
    assert dead.payload == payload[:MAX_DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", "replace")
    message = dead.to_dict()
    assert message["type"] == "dead_letter" and len(message["payload"]) <= MAX_DEAD_LETTER_PAYLOAD_BYTES
    if reason not in ("model: unknown", "not a JSON object"):  # a known model's rejects count toward its schema SLI
        assert len(parsed.rejections["m"]) == 1


def test_events_stamped_after_they_were_read_or_older_than_every_window_are_rejected():
    spec = ParseSpec({"m": ()}, {"m": ()}, max_future_skew_s=3600, max_age_s=86_400)
    lines = [orjson.dumps(event(i, T0 + i)) for i in range(20)]
    lines.append(orjson.dumps(event(99, T0 + 2 * 3600)))
    lines.append(orjson.dumps(event(98, T0 - 2 * 86_400)))
    batch = raw(lines)
    batch.not_after = T0 + 30  # the edge's clock when it read the batch
    parsed = parse_batch(batch, spec)
    assert len(parsed.inference["m"]) == 20
    ahead, old = (d.error for d in parsed.dead_letters)
    assert ahead == (f"ts: {to_rfc3339(T0 + 7200)} is 7170 s after it was read ({to_rfc3339(T0 + 30)}); "
                     "limits.max_future_skew allows 3600 s")
    assert old.startswith("ts: ") and "older than every window" in old
    # the future one counts at its source's time (the newest valid event before it), not at its own
    assert parsed.rejections["m"].ts == [T0 + 19, T0 - 2 * 86_400]


def test_a_wall_clock_bounds_future_timestamps_when_given():
    lines = [orjson.dumps(event(i, T0 + 7200 + i)) for i in range(5)]
    assert len(parse_batch(raw(lines), SPEC, now=T0).dead_letters) == 5
    assert parse_batch(raw(lines), SPEC, now=T0 + 7200).dead_letters == []
    assert parse_batch(raw(lines), SPEC).dead_letters == []  # no clock, no future bound (the core's own tests)


@pytest.mark.parametrize("size", [7, 300, 1000, 4000])
def test_a_burst_of_far_future_events_is_rejected_whatever_its_share_of_the_batch(size):
    """Issue 15: the bound was the batch's 90th percentile, so 1,000 events stamped 2090 in a
    4,000-event batch (or a batch of nothing else) were not outliers and moved event time to 2090."""
    lines = [orjson.dumps(event(i, T0 + i * 0.5 if not 1500 <= i < 2500 else 3_786_912_000.0 + i))
             for i in range(4000)]
    rejected, kept, newest = [], 0, []
    for start in range(0, 4000, size):
        batch = raw(lines[start : start + size])
        batch.offsets = list(range(start, start + len(batch.values)))
        batch.not_after = T0 + 86_400
        parsed = parse_batch(batch, SPEC)
        rejected += [d.offset for d in parsed.dead_letters]
        kept += len(parsed.inference["m"]) if "m" in parsed.inference else 0
        newest.append(parsed.max_ts)
        for d in parsed.dead_letters:
            assert d.error.startswith("ts: 2090-01-01T") and "limits.max_future_skew" in d.error
        if "m" in parsed.rejections:  # never counted in 2090: at the source's time, or NaN (dated downstream)
            assert all(not t > T0 + 86_400 for t in parsed.rejections["m"].ts)
    assert rejected == list(range(1500, 2500)) and kept == 3000
    assert max(newest) == T0 + 3999 * 0.5


def test_a_batch_reports_its_newest_time_and_passes_on_a_source_watermark():
    lines = [orjson.dumps(event(i, T0 + i)) for i in range(5)]
    parsed = parse_batch(raw(lines), SPEC)
    assert (parsed.max_ts, parsed.watermark) == (T0 + 4, float("-inf"))
    assert parse_batch(raw(lines, watermark=T0 - 60), SPEC).watermark == T0 - 60
    assert parse_batch(raw([b"nope"], watermark=T0), SPEC).watermark == T0


def test_labels_and_feature_events_parse_into_their_columns():
    labels = [orjson.dumps({"id": f"e{i}", "model": "m", "label": i % 2, "ts": T0 + 600 + i}) for i in range(4)]
    parsed = parse_batch(raw(labels, "labels"), SPEC)
    assert parsed.labels["m"].labels == [0, 1, 0, 1] and parsed.labels["m"].ids[0] == "e0"
    feats = [orjson.dumps({"model": "m", "entity": "u1", "features": {"a": 1}, "event_ts": T0, "ts": T0 + 90,
                           "segment": {"region": "eu"}})]
    cols = parse_batch(raw(feats, "features"), SPEC).features["m"]
    assert cols.lag_s.tolist() == [90.0] and cols.n_missing.tolist() == [1] and cols.segments == [["eu"]]


timestamps = st.one_of(
    st.floats(9e8, 4.2e9, allow_nan=False),
    st.integers(0, 5_000_000_000),
    st.builds(to_rfc3339, st.floats(946_684_800, 4_102_444_799)),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(ts=timestamps, fts=timestamps, latency=st.one_of(st.floats(-5, 5e6), st.booleans(), st.text(max_size=3)))
def test_the_fast_path_and_the_reference_checks_agree(ts, fts, latency):
    """msgspec's verdict (batch path) equals the reference checker's (reasons path) on every input."""
    d = {"id": "x", "model": "m", "version": "v", "ts": ts, "status": "ok", "latency_ms": latency, "feature_ts": fts}
    try:
        payload = orjson.dumps(d)
    except TypeError:
        return
    from sloguard.core.messages.events import Rejected, _check_inference, decode_json

    try:
        reference = _check_inference(decode_json(payload))
    except Rejected:
        reference = None
    reason = validate_message("inference", payload)
    assert (reason is None) == (reference is not None), reason
    if reference is not None:
        fast = decode_event("inference", payload)
        assert fast.ts == pytest.approx(reference.ts) and fast.latency_ms == reference.latency_ms
        assert (fast.feature_ts is None) == (reference.feature_ts is None)
    parsed = parse_batch(raw([payload]), SPEC)
    assert (len(parsed.dead_letters) == 0) == (reason is None)


def _seen(recent: RecentIds, ids: list[str], ts: float) -> list[bool]:
    fresh = recent.first_seen(id_hashes(ids), np.full(len(ids), ts))
    return [True] * len(ids) if fresh is None else fresh.tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.floats(0, 5000)), min_size=1, max_size=200))
def test_recent_ids_flags_every_repeat_within_the_window(stream):
    """A repeat within `window_s` is always a duplicate; one more than a second after it never is."""
    window = 600.0
    recent = RecentIds(window)
    last_seen: dict[str, float] = {}
    for n, (key, dt) in enumerate(sorted(stream, key=lambda x: x[1])):
        ident, now = f"id{key}", dt
        recent.expire(now)  # the owner forgets at its watermark: here one in-order source
        (fresh,) = _seen(recent, [ident], now)
        before = last_seen.get(ident)
        if before is not None and now - before <= window:
            assert not fresh, (n, ident, before, now)
        if before is None or now - before > window + 1:
            assert fresh, (n, ident, before, now)
        if fresh:
            last_seen[ident] = now
    assert len(recent) <= len(last_seen)


def test_a_batch_read_ahead_does_not_forget_ids_another_partition_repeats():
    """Partition 0 reads an hour ahead; partition 1 then repeats an id from before: still a duplicate."""
    recent = RecentIds(600.0)
    assert _seen(recent, ["a"], 1000.0) == [True]
    assert _seen(recent, ["b"], 4600.0) == [True]  # a batch an hour ahead (watermark still ~1000)
    assert _seen(recent, ["a"], 1100.0) == [False]


def test_repeats_within_one_batch_keep_the_first():
    recent = RecentIds(600.0)
    assert _seen(recent, ["a", "b", "a", "c", "b"], 10.0) == [True, True, False, True, False]


def test_recent_ids_memory_is_bounded_by_max_ids():
    recent = RecentIds(10**9, max_ids=1000)
    for b in range(50):
        _seen(recent, [f"{b}-{i}" for i in range(100)], float(b * 10**8))
        recent.expire(float(b * 10**8))
    assert len(recent) <= 1100 and recent.evicted >= 3900


def test_recent_ids_at_their_cap_evict_in_bursts_not_at_every_batch():
    """At the cap, each eviction is a pass over the whole memory: it must come once per max_ids/8
    new ids (down to 7/8 of the cap), not for every batch that tips it over."""
    recent = RecentIds(10**9, max_ids=1000)
    for b in range(100):  # full: 1,000 ids, 10 a second (eviction forgets whole seconds)
        _seen(recent, [f"fill-{b}-{i}" for i in range(10)], float(b - 100))
    passes, sizes = 0, []
    for b in range(200):  # 2,000 more ids, 10 a batch, each a second newer
        before = recent.evicted
        _seen(recent, [f"{b}-{i}" for i in range(10)], float(b + 1))
        recent.expire(float(b + 1))
        passes += recent.evicted != before
        sizes.append(len(recent))
    assert passes <= 2000 // (1000 // 8) + 1
    assert min(sizes) >= 1000 * 7 // 8 - 10 and max(sizes) <= 1000
    assert recent.evicted == 2000 + 1000 - len(recent)


def test_a_deeply_nested_unknown_field_is_a_dead_letter_and_the_rest_of_the_batch_is_read():
    """One 2.4 KB message with 1,000 nested arrays used to raise RecursionError and stop the flow."""
    good = [orjson.dumps(event(i, T0 + i)) for i in range(5)]
    deep = orjson.dumps(event(99, T0 + 2))[:-1] + b',"junk":' + b"[" * 1000 + b"]" * 1000 + b"}"
    nested_obj = b'{"model":"m","x":' + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}"
    spec = ParseSpec({"m": ("region",)}, {"m": ("a", "b")})
    batch = raw([good[0], deep, good[1], nested_obj, *good[2:]])
    parsed = parse_batch(batch, spec)
    assert len(parsed.inference["m"]) == 5
    assert {d.offset for d in parsed.dead_letters} == {batch.offsets[1], batch.offsets[3]}
    assert all("oversized" not in d.error and d.error for d in parsed.dead_letters)


def test_messages_without_a_time_are_dated_the_same_however_the_source_is_cut_into_batches():
    """A message whose time cannot be read counts at the newest time read before it in its source:
    valid events and invalid ones whose time reads alike, whatever the batch boundaries (a resumed
    Kafka run cuts batches differently from the run it resumes)."""
    lines = []
    for i in range(12):
        lines.append(orjson.dumps(event(i, T0 + 10 * i)))
        bad = event(100 + i, T0 + 10 * i + 5)
        del bad["latency_ms"]  # invalid, but its time reads
        lines.append(orjson.dumps(bad))
        lines.append(b'{"model":"m","ts":' if i % 2 else b"not json")  # nothing to read at all
    offsets = list(range(len(lines)))

    def dates(cuts: list[int]) -> list[float]:
        out, newest = [], float("-inf")
        for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True):
            batch = RawBatch("inference", "ml.inference", 0, offsets[a:b], lines[a:b])
            parsed = parse_batch(batch, SPEC)
            rej = parsed.rejections.get("m")
            out += [newest if t != t else t for t in (rej.ts if rej else [])]  # the shard's rule for NaN
            newest = max(newest, parsed.max_ts)
        return out

    whole = dates([])
    for cut in range(1, len(lines)):
        assert dates([cut]) == whole, cut
    assert dates(list(range(1, len(lines)))) == whole
