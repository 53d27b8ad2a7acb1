"""A batch of raw messages becomes per-model numpy columns plus dead letters, in one pass.

Per-event Python is the cost of a stream processor, so the work is per batch: each message is
decoded and checked once (`events.decode_event`), the good ones are grouped by model and turned
into columns, and every rejection becomes a `DeadLetter` (errors are a second stream, as in
Bytewax's Kafka operators). Downstream, the keyed state does a few vector additions per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, is_
from typing import Any

import msgspec
import numpy as np

from sloguard.core.messages.events import (
    STATUS_CODE,
    FeatureEvent,
    Inference,
    Label,
    RawBatch,
    Rejected,
    decode_event,
    fast_decoder,
    guess_model,
    readable_ts,
    unknown_model,
)
from sloguard.core.messages.intersections import SEPARATOR, components, join_values
from sloguard.core.messages.outputs import DeadLetter, dead_letter
from sloguard.core.spec.timeutil import parse_rfc3339, to_rfc3339


@dataclass(frozen=True)
class ParseSpec:
    """What the parser needs to know of the config: models, their segment attributes and features.

    `max_future_skew_s` rejects events stamped further in the future than the edge's clock when the
    batch was read (`RawBatch.not_after`); `max_age_s` rejects events older than every window that
    could use them.
    """

    segments: dict[str, tuple[str, ...]]
    features: dict[str, tuple[str, ...]]
    max_message_bytes: int = 65_536
    max_future_skew_s: float = 3600.0
    max_age_s: float = 31 * 86_400.0

    @property
    def models(self) -> frozenset[str]:
        return frozenset(self.segments)


@dataclass
class InferenceColumns:
    """The valid inference events of one model in one batch, as columns."""

    model: str
    ts: np.ndarray  # float64 epoch seconds
    status: np.ndarray  # int8, STATUS_CODE
    latency_ms: np.ndarray  # float64
    lag_s: np.ndarray  # float64, ts - feature_ts, NaN without feature_ts
    n_missing: np.ndarray  # int32, expected features absent or null
    score: np.ndarray  # float64, NaN when absent
    ids: list[str]
    versions: list[str]
    variants: list[str]
    predictions: list[Any]
    segments: list[list[str | None]]  # per segment attribute, per event
    features: list[dict]
    raw: list[bytes]  # kept so duplicates found downstream can be dead-lettered with payload
    offsets: list[int]
    topic: str = ""
    partition: int = 0
    feature_values: dict[str, list] = field(default_factory=dict)  # expected feature -> value per event
    attributes: list[dict] = field(default_factory=list)  # the optional `attributes` object per event

    def __len__(self) -> int:
        return len(self.ids)

    def feature(self, name: str) -> list:
        """Every event's value of feature `name` (None when absent)."""
        column = self.feature_values.get(name)
        return column if column is not None else list(map(dict.get, self.features, repeat(name)))

    def take(self, idx: np.ndarray) -> InferenceColumns:
        """The rows at positions `idx`."""

        def pick(values: list) -> list:
            return [values[i] for i in idx]

        return InferenceColumns(
            self.model,
            self.ts[idx],
            self.status[idx],
            self.latency_ms[idx],
            self.lag_s[idx],
            self.n_missing[idx],
            self.score[idx],
            pick(self.ids),
            pick(self.versions),
            pick(self.variants),
            pick(self.predictions),
            [pick(s) for s in self.segments],
            pick(self.features),
            pick(self.raw),
            pick(self.offsets),
            self.topic,
            self.partition,
            attributes=pick(self.attributes) if self.attributes else [],
        )


@dataclass
class LabelColumns:
    """The valid labels of one model in one batch."""

    model: str
    ts: np.ndarray
    ids: list[str]
    labels: list[Any]
    raw: list[bytes]
    offsets: list[int]
    topic: str = ""
    partition: int = 0

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class FeatureColumns:
    """The valid feature-pipeline events of one model in one batch."""

    model: str
    ts: np.ndarray
    lag_s: np.ndarray  # ts - event_ts
    n_missing: np.ndarray
    segments: list[list[str | None]]  # per segment attribute, per event (None: not given)

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Rejections:
    """Messages of a known model that were rejected: they count toward its schema-violation SLI.

    `ts` is the message's own time when it could be read, else NaN (counted at the model's clock).
    """

    model: str
    ts: list[float] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class ParsedBatch:
    """What one raw batch turned into: columns per model, rejections per model, dead letters."""

    inference: dict[str, InferenceColumns] = field(default_factory=dict)
    labels: dict[str, LabelColumns] = field(default_factory=dict)
    features: dict[str, FeatureColumns] = field(default_factory=dict)
    rejections: dict[str, Rejections] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    max_ts: float = -math.inf  # newest event time in the batch: valid events and readable rejections
    watermark: float = -math.inf  # event time that all inputs have passed, if the source knows it
    source: str = ""
    caught_up: bool = False
    clock: float | None = None
    arrival: float | None = None  # the newest broker timestamp of the batch (RawBatch.arrival)


def parse_batch(raw: RawBatch, spec: ParseSpec, now: float | None = None) -> ParsedBatch:
    """Parse and validate a whole batch; group the good events per model as columns.

    Events of unknown models, events stamped more than `spec.max_future_skew_s` after the time the
    batch was read (`now`, else `raw.not_after`) and events older than `spec.max_age_s` are rejected
    like malformed ones.
    """
    out = ParsedBatch()
    now = raw.not_after if now is None else now
    events = _decode_clean(raw.kind, raw.values, spec)
    if events is not None:
        idx = list(range(len(events)))
    else:
        idx, events = _decode_each(out, raw, spec)
        if now is not None:
            _undate_future_rejections(out, now + spec.max_future_skew_s)
    if events:
        idx, events = _in_time(out, raw, idx, events, spec, now)
    _date_unreadable_rejections(out, raw, idx, events)
    for model, (rows, group) in _by_model(idx, events).items():
        _COLUMNS[raw.kind](out, raw, model, rows, group, spec)
    # invalid messages still tell how far their source has got: a model sending only invalid
    # events must not stop its event time (its schema SLI is what should page)
    for rejections in out.rejections.values():
        out.max_ts = max(out.max_ts, max((t for t in rejections.ts if t == t), default=-math.inf))
    out.watermark = -math.inf if raw.watermark is None else raw.watermark
    out.source = raw.source or f"{raw.topic}#{raw.partition}"
    out.caught_up, out.clock, out.arrival = raw.caught_up, raw.clock, raw.arrival
    return out


def _decode_clean(kind: str, values: list[bytes], spec: ParseSpec) -> list[Any] | None:
    """Every message of the batch decoded in one C-level pass, or None when any needs a closer look.

    The common batch is all valid: sizes, ASCII and models are checked for the whole batch at once
    and the msgspec decoder is mapped over it, with no per-message Python.
    """
    if not values or max(map(len, values)) > spec.max_message_bytes or not all(map(bytes.isascii, values)):
        return None
    decode, second_ts = fast_decoder(kind)
    try:
        events = list(map(decode, values))
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if not set(map(_MODEL, events)) <= spec.models:
        return None
    if str in set(map(type, map(_TS, events))) or str in set(map(type, map(attrgetter(second_ts), events))):
        # RFC 3339 strings become epoch seconds; one that does not parse sends the batch the slow way
        for e in events:
            if type(e.ts) is str:
                e.ts = parse_rfc3339(e.ts)
                if e.ts is None:
                    return None
            other = getattr(e, second_ts)
            if type(other) is str:
                other = parse_rfc3339(other)
                if other is None:
                    return None
                setattr(e, second_ts, other)
    return events


def _decode_each(out: ParsedBatch, raw: RawBatch, spec: ParseSpec) -> tuple[list[int], list[Any]]:
    """Decode message by message; each rejection becomes a dead letter with its reason."""
    models = spec.models
    idx: list[int] = []
    events: list[Any] = []
    limit = spec.max_message_bytes
    for i, payload in enumerate(raw.values):
        try:
            event = decode_event(raw.kind, payload, limit)
        except Rejected as e:
            _reject(out, raw, i, str(e), guess_model(payload, models), readable_ts(payload))
            continue
        except Exception as e:  # any failure to read one message is that message's dead letter, never a crash
            _reject(out, raw, i, f"unreadable message: {type(e).__name__} while decoding ({_brief(e)})", None,
                    math.nan)
            continue
        if event.model not in models:
            _reject(out, raw, i, unknown_model(event.model, models), None, math.nan)
            continue
        idx.append(i)
        events.append(event)
    return idx, events


def _undate_future_rejections(out: ParsedBatch, latest: float) -> None:
    """A rejected message stamped after `latest` counts at its source's time, not at its own: a
    far-future time must not place counters (or event time) where no tick will reach for years."""
    for rejections in out.rejections.values():
        rejections.ts = [math.nan if t > latest else t for t in rejections.ts]


def _brief(e: Exception) -> str:
    text = str(e)
    return text if len(text) <= 120 else text[:117] + "..."


def _date_unreadable_rejections(out: ParsedBatch, raw: RawBatch, idx: list[int], events: list[Any]) -> None:
    """A rejected message without a readable time counts at the newest event time its source had
    reached when it was read: within the batch, the newest time before it (by offset) of a valid
    event or of a rejected message whose time could be read, as the batch's progress counts both.

    That depends on the source's order only, not on how it was cut into batches; one with nothing
    dated before it in its batch keeps NaN, and the shard dates it at its source's newest time.
    """
    if not any(math.isnan(t) for r in out.rejections.values() for t in r.ts):
        return
    dated = [(raw.offsets[i], e.ts) for i, e in zip(idx, events, strict=True)]
    dated += [(o, t) for r in out.rejections.values() for o, t in zip(r.offsets, r.ts, strict=True) if t == t]
    if not dated:
        return
    dated.sort()
    offsets = np.array([o for o, _ in dated])
    newest = np.maximum.accumulate(np.array([t for _, t in dated], float))
    for rejections in out.rejections.values():
        for j, (t, offset) in enumerate(zip(rejections.ts, rejections.offsets, strict=True)):
            if math.isnan(t):
                k = int(np.searchsorted(offsets, offset)) - 1  # what was dated before it
                if k >= 0:
                    rejections.ts[j] = float(newest[k])


def _in_time(
    out: ParsedBatch, raw: RawBatch, idx: list[int], events: list[Any], spec: ParseSpec, now: float | None
) -> tuple[list[int], list[Any]]:
    """Drop (as dead letters) events stamped far in the future or older than every window.

    The future is bounded by `now`, the edge's clock when the batch was read, never by the batch's
    own timestamps: a burst of far-future events, however large a share of its batch, cannot move
    the bound (without a clock, as in the core's own tests, there is no future bound). "Older than
    every window" is measured from the batch's 10th percentile: a backlog batch of sparse traffic
    may span hours, and a lone absurd timestamp is still an outlier; old events move nothing.
    """
    stamps = np.array(list(map(_TS, events)), float)
    lower = float(np.quantile(stamps, 0.1, method="nearest"))
    hi = math.inf if now is None else now + spec.max_future_skew_s
    lo = lower - spec.max_age_s
    if stamps.max() <= hi and stamps.min() >= lo:
        return idx, events
    keep_idx, keep = [], []
    for i, e, t in zip(idx, events, stamps.tolist(), strict=True):
        if t > hi:
            _reject(out, raw, i, f"ts: {to_rfc3339(t)} is {t - now:.0f} s after it was read ({to_rfc3339(now)}); "
                                 f"limits.max_future_skew allows {spec.max_future_skew_s:.0f} s", e.model, t, math.nan)
        elif t < lo:
            _reject(out, raw, i, f"ts: {to_rfc3339(t)} is older than every window "
                                 f"({spec.max_age_s:.0f} s before the other events)", e.model, t)
        else:
            keep_idx.append(i)
            keep.append(e)
    return keep_idx, keep


def _reject(out: ParsedBatch, raw: RawBatch, i: int, error: str, model: str | None, ts: float,
            count_at: float | None = None) -> None:
    """Dead-letter message i; a known model's rejection counts toward its schema SLI at `count_at`
    (default: the message's own time `ts`; NaN: at its source's time, see `_date_unreadable_rejections`)."""
    ok_ts = None if math.isnan(ts) else ts
    out.dead_letters.append(dead_letter(raw.topic, raw.partition, raw.offsets[i], "parse", error, raw.values[i],
                                        model=model, ts=None if ok_ts is None else to_rfc3339(ok_ts)))
    if model is not None:
        rejections = out.rejections.setdefault(model, Rejections(model))
        rejections.ts.append(ts if count_at is None else count_at)
        rejections.offsets.append(raw.offsets[i])


def _by_model(idx: list[int], events: list[Any]) -> dict[str, tuple[list[int], list[Any]]]:
    if not events:
        return {}
    models = set(map(_MODEL, events))
    if len(models) == 1:
        return {models.pop(): (idx, events)}
    groups: dict[str, tuple[list[int], list[Any]]] = {m: ([], []) for m in sorted(models)}
    for i, e in zip(idx, events, strict=True):
        rows, group = groups[e.model]
        rows.append(i)
        group.append(e)
    return groups


_TS = attrgetter("ts")
_MODEL = attrgetter("model")


def _column(events: list[Any], name: str, dtype: Any = float) -> np.ndarray:
    """One attribute of every event as an array (None becomes NaN)."""
    values = list(map(attrgetter(name), events))
    if None in values:
        values = [math.nan if v is None else v for v in values]
    return np.array(values, dtype)


def _missing(features: list[dict], expected: tuple[str, ...], values: dict[str, list] | None = None) -> np.ndarray:
    """Per event: how many expected feature names are absent or null (C-level maps, one per name).

    `values`, when given, receives each expected feature's value per event (drift bins reuse them).
    """
    n = len(features)
    missing = np.zeros(n, np.int32)
    for name in expected:
        column = list(map(dict.get, features, repeat(name)))
        missing += np.fromiter(map(is_, column, repeat(None)), bool, n)
        if values is not None:
            values[name] = column
    return missing


#: Segment attributes taken from an inference event's own fields rather than from its `segment`:
#: `segments: [variant]` keeps canary and stable budgets apart (the rollout controller compares them).
EVENT_FIELD_ATTRIBUTES = ("variant", "version")


def _per_attribute(segments: list[dict], attrs: tuple[str, ...], events: list[Any] | None = None
                   ) -> list[list[str | None]]:
    """For each segment attribute, every event's value of it (None when absent); an intersection
    (``region&age_band``, intersections.py) joins its components' values."""
    return [join_values(_per_attribute(segments, components(a), events)) if SEPARATOR in a
            else list(map(attrgetter(a), events)) if events is not None and a in EVENT_FIELD_ATTRIBUTES
            else list(map(dict.get, segments, repeat(a))) for a in attrs]


def _inference_columns(
    out: ParsedBatch, raw: RawBatch, model: str, rows: list[int], events: list[Inference], spec: ParseSpec
) -> None:
    ts = _column(events, "ts")
    features = list(map(_FEATURES, events))
    segments = list(map(_SEGMENT, events))
    values = raw.values
    offsets = raw.offsets
    feature_values: dict[str, list] = {}
    out.inference[model] = InferenceColumns(
        model=model,
        ts=ts,
        status=np.fromiter(map(STATUS_CODE.__getitem__, map(_STATUS, events)), np.int8, len(events)),
        latency_ms=_column(events, "latency_ms"),
        lag_s=ts - _column(events, "feature_ts"),
        n_missing=_missing(features, spec.features[model], feature_values),
        score=_column(events, "score"),
        ids=list(map(_ID, events)),
        versions=list(map(_VERSION, events)),
        variants=list(map(_VARIANT, events)),
        predictions=list(map(_PREDICTION, events)),
        segments=_per_attribute(segments, spec.segments[model], events),
        features=features,
        raw=values if len(rows) == len(values) else [values[i] for i in rows],
        offsets=offsets if len(rows) == len(offsets) else [offsets[i] for i in rows],
        topic=raw.topic,
        partition=raw.partition,
        feature_values=feature_values,
        attributes=list(map(_ATTRIBUTES, events)),
    )
    out.max_ts = max(out.max_ts, float(ts.max()))


_FEATURES, _SEGMENT, _STATUS = attrgetter("features"), attrgetter("segment"), attrgetter("status")
_ATTRIBUTES = attrgetter("attributes")
_ID, _VERSION, _VARIANT, _PREDICTION = (attrgetter(a) for a in ("id", "version", "variant", "prediction"))


def _label_columns(
    out: ParsedBatch, raw: RawBatch, model: str, rows: list[int], events: list[Label], spec: ParseSpec
) -> None:
    ts = _column(events, "ts")
    out.labels[model] = LabelColumns(
        model=model,
        ts=ts,
        ids=list(map(_ID, events)),
        labels=list(map(attrgetter("label"), events)),
        raw=[raw.values[i] for i in rows],
        offsets=[raw.offsets[i] for i in rows],
        topic=raw.topic,
        partition=raw.partition,
    )
    out.max_ts = max(out.max_ts, float(ts.max()))


def _feature_columns(
    out: ParsedBatch, raw: RawBatch, model: str, rows: list[int], events: list[FeatureEvent], spec: ParseSpec
) -> None:
    ts = _column(events, "ts")
    segments = list(map(_SEGMENT, events))
    out.features[model] = FeatureColumns(
        model=model,
        ts=ts,
        lag_s=ts - _column(events, "event_ts"),
        n_missing=_missing(list(map(_FEATURES, events)), spec.features[model]),
        segments=_per_attribute(segments, spec.segments[model]),
    )
    out.max_ts = max(out.max_ts, float(ts.max()))


_COLUMNS = {"inference": _inference_columns, "labels": _label_columns, "features": _feature_columns}


_NUMBER_TYPES = {int, float, type(None)}


def as_numbers(values: list[Any]) -> np.ndarray:
    """Floats, NaN for anything that is not a JSON number (None, strings, bools, NaN, inf).

    A value reads the same whatever else is in the batch: "3.5" is not a number here, even when
    numpy could convert every value of the batch.
    """
    if set(map(type, values)) <= _NUMBER_TYPES:
        out = np.array(values, dtype=np.float64)  # None -> NaN
    else:
        out = np.array([v if type(v) in (int, float) else math.nan for v in values], dtype=np.float64)
    out[~np.isfinite(out)] = math.nan
    return out
