"""Input events: validation with a reason for every rejection, and batch parsing into columns.

Three input kinds arrive (DESIGN.md, "Contracts"): `inference` (one per prediction), `labels`
(ground truth, late) and `features` (feature-pipeline events). A whole batch of raw messages is
parsed at once into per-model numpy columns, because per-event Python is the cost of a stream
processor: the keyed state downstream then works per batch, not per event. Every message that
cannot be used becomes a `DeadLetter` whose `error` names the field, so nothing is dropped
silently. The rules here are the ones `schemas/*.schema.json` state; a test keeps them equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from sloguard.timeutil import MAX_EPOCH_S, MIN_EPOCH_S, parse_rfc3339, to_rfc3339

KINDS = ("inference", "labels", "features")
STATUSES = ("ok", "error", "timeout")
STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
VARIANTS = ("stable", "canary")
MAX_LATENCY_MS = 3_600_000.0
MAX_PAYLOAD_IN_DEAD_LETTER = 1024


class Rejected(ValueError):
    """A message that cannot be used; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input message that could not be used, with a reason a person can act on."""

    topic: str
    partition: int
    offset: int
    error: str
    payload: bytes
    model: str | None = None
    ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `slo.dead-letter` message (schemas/dead_letter.schema.json)."""
        return {
            "type": "dead_letter",
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "error": self.error,
            "model": self.model,
            "ts": None if self.ts is None else to_rfc3339(self.ts),
            "payload": self.payload[:MAX_PAYLOAD_IN_DEAD_LETTER].decode("utf-8", "replace"),
            "payload_bytes": len(self.payload),
        }


@dataclass(slots=True)
class RawBatch:
    """Raw messages of one kind from one topic partition (or one file), in arrival order.

    `watermark`, when the source knows it, is the event time below which no more events will
    come from any input (a replay of several files knows it exactly); otherwise the batch's
    newest event time stands in for it and `allowed_lateness` absorbs the disorder.
    """

    kind: str
    topic: str
    partition: int
    offsets: list[int]
    values: list[bytes]
    watermark: float | None = None


@dataclass(frozen=True)
class ParseSpec:
    """What the parser needs to know of the config: models, their segment attributes and features.

    `max_future_skew_s` rejects events stamped further in the future than the median of their batch
    (or than `now`, when a live runner passes the wall clock); `max_age_s` rejects events older than
    every window that could use them.
    """

    segments: dict[str, tuple[str, ...]]
    features: dict[str, tuple[str, ...]]
    max_message_bytes: int = 65_536
    max_future_skew_s: float = 3600.0
    max_age_s: float = 31 * 86_400.0

    @property
    def models(self) -> frozenset[str]:
        return frozenset(self.segments)


def _str_field(d: dict, name: str, max_len: int) -> str:
    value = d.get(name)
    if value is None:
        raise Rejected(f"{name}: missing" if name not in d else f"{name}: must be a string, got null")
    if type(value) is not str:
        raise Rejected(f"{name}: must be a string, got {_type_name(value)}")
    if not value or len(value) > max_len:
        raise Rejected(f"{name}: must be 1 to {max_len} characters, got {len(value)}")
    return value


def _type_name(value: object) -> str:
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _timestamp(value: object, name: str) -> float:
    """Epoch seconds of a wire timestamp: RFC 3339 with a zone, or epoch seconds as a number."""
    t = type(value)
    if t is float or t is int:
        ts = float(value)  # type: ignore[arg-type]
        if not MIN_EPOCH_S <= ts < MAX_EPOCH_S:
            raise Rejected(f"{name}: epoch seconds {value!r} outside 2000-01-01..2100-01-01")
        return ts
    if t is str:
        ts = parse_rfc3339(value)  # type: ignore[arg-type]
        if ts is None:
            raise Rejected(f"{name}: {value!r} is not an RFC 3339 timestamp with a zone (2000-2099)")
        return ts
    if value is None:
        raise Rejected(f"{name}: missing")
    raise Rejected(f"{name}: must be an RFC 3339 string or epoch seconds, got {_type_name(value)}")


def _number(value: object, name: str, lo: float, hi: float) -> float:
    t = type(value)
    if t is not float and t is not int:
        raise Rejected(f"{name}: must be a number, got {_type_name(value)}")
    x = float(value)  # type: ignore[arg-type]
    if not lo <= x <= hi:
        raise Rejected(f"{name}: {value!r} outside [{lo:g}, {hi:g}]")
    return x


def _scalar_map(value: object, name: str, strings_only: bool) -> dict:
    if type(value) is not dict:
        raise Rejected(f"{name}: must be an object, got {_type_name(value)}")
    for k, v in value.items():  # type: ignore[union-attr]
        t = type(v)
        if strings_only:
            if t is not str:
                raise Rejected(f"{name}.{k}: must be a string, got {_type_name(v)}")
            if len(v) > 256:
                raise Rejected(f"{name}.{k}: longer than 256 characters")
        elif t is dict or t is list:
            raise Rejected(f"{name}.{k}: must be a number, string, boolean or null, got {_type_name(v)}")
    return value  # type: ignore[return-value]


_STR_ONLY = frozenset({str})
_CONTAINERS = frozenset({dict, list})


def check_inference(d: dict) -> tuple:
    """Validate one inference event; returns its fields in column order or raises `Rejected`.

    A fast path accepts the common well-formed event with a few type tests; anything it is unsure
    of goes to `_check_inference_fully`, which alone decides rejections and words their reasons.
    """
    g = d.get
    ident, model, version, ts, status, latency = (
        g("id"),
        g("model"),
        g("version"),
        g("ts"),
        g("status"),
        g("latency_ms"),
    )
    segment, features, feature_ts, score = g("segment"), g("features"), g("feature_ts"), g("score")
    prediction, variant = g("prediction"), g("variant")
    tt, ft, lt = type(ts), type(feature_ts), type(latency)
    if tt is str:
        ts = parse_rfc3339(ts)
        tt = type(ts)
    if ft is str:
        feature_ts = parse_rfc3339(feature_ts)
        ft = type(feature_ts)
    if (
        type(ident) is str
        and type(model) is str
        and type(version) is str
        and 0 < len(ident) <= 256
        and 0 < len(model) <= 128
        and 0 < len(version) <= 128
        and (tt is float or tt is int)
        and MIN_EPOCH_S <= ts < MAX_EPOCH_S
        and type(status) is str
        and status in STATUS_CODE
        and (lt is float or lt is int)
        and 0.0 <= latency <= MAX_LATENCY_MS
        and type(segment) is dict
        and type(features) is dict
        and (ft is float or ft is int)
        and MIN_EPOCH_S <= feature_ts < MAX_EPOCH_S
        and (score is None or ((type(score) is float or type(score) is int) and 0.0 <= score <= 1.0))
        and ((variant is None and "variant" not in d) or variant == "stable" or variant == "canary")
        and type(prediction) is not dict
        and type(prediction) is not list
        and (
            not segment
            or (set(map(type, segment.values())) <= _STR_ONLY and max(map(len, segment.values())) <= 256)
        )
        and not _CONTAINERS.intersection(map(type, features.values()))
    ):
        return (
            ident,
            model,
            version,
            float(ts),
            STATUS_CODE[status],
            float(latency),
            prediction,
            math.nan if score is None else float(score),
            segment,
            features,
            float(feature_ts),
            variant or "stable",
        )
    return _check_inference_fully(d)


def _check_inference_fully(d: dict) -> tuple:
    """Every rule of schemas/inference.schema.json, raising `Rejected` with the field's name."""
    ident = _str_field(d, "id", 256)
    model = _str_field(d, "model", 128)
    version = _str_field(d, "version", 128)
    ts = _timestamp(d.get("ts"), "ts")
    status = d.get("status")
    code = STATUS_CODE.get(status) if type(status) is str else None
    if code is None:
        raise Rejected(
            f"status: must be one of ok|error|timeout, got {status!r}" if "status" in d else "status: missing"
        )
    if "latency_ms" not in d:
        raise Rejected("latency_ms: missing")
    latency = _number(d["latency_ms"], "latency_ms", 0.0, MAX_LATENCY_MS)
    prediction = d.get("prediction")
    if type(prediction) is dict or type(prediction) is list:
        raise Rejected(f"prediction: must be a class label or a number, got {_type_name(prediction)}")
    score = d.get("score")
    score = math.nan if score is None else _number(score, "score", 0.0, 1.0)
    segment = d.get("segment")
    segment = {} if segment is None and "segment" not in d else _scalar_map(segment, "segment", True)
    features = d.get("features")
    features = {} if features is None and "features" not in d else _scalar_map(features, "features", False)
    feature_ts = d.get("feature_ts")
    feature_ts = math.nan if feature_ts is None else _timestamp(feature_ts, "feature_ts")
    variant = d.get("variant")
    if variant is not None or "variant" in d:
        if variant not in VARIANTS:
            raise Rejected(f"variant: must be stable or canary, got {variant!r}")
    else:
        variant = "stable"
    return ident, model, version, ts, code, latency, prediction, score, segment, features, feature_ts, variant


def check_label(d: dict) -> tuple:
    """Validate one label event; returns (id, model, label, ts) or raises `Rejected`."""
    ident = _str_field(d, "id", 256)
    model = _str_field(d, "model", 128)
    if "label" not in d:
        raise Rejected("label: missing")
    label = d["label"]
    if type(label) not in (str, int, float, bool):
        raise Rejected(f"label: must be a string, number or boolean, got {_type_name(label)}")
    return ident, model, label, _timestamp(d.get("ts"), "ts")


def check_feature_event(d: dict) -> tuple:
    """Validate one feature-pipeline event; returns (model, entity, features, event_ts, ts)."""
    model = _str_field(d, "model", 128)
    entity = _str_field(d, "entity", 256)
    if "features" not in d:
        raise Rejected("features: missing")
    features = _scalar_map(d["features"], "features", False)
    return model, entity, features, _timestamp(d.get("event_ts"), "event_ts"), _timestamp(d.get("ts"), "ts")


_CHECKS = {"inference": check_inference, "labels": check_label, "features": check_feature_event}


def decode(payload: bytes, max_bytes: int = 65_536) -> dict:
    """The JSON object in a message, or `Rejected` saying why there is none."""
    if len(payload) > max_bytes:
        raise Rejected(f"oversized message: {len(payload)} bytes > limit {max_bytes}")
    try:
        d = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise Rejected(f"malformed JSON: {e}") from None
    if type(d) is not dict:
        raise Rejected(f"not a JSON object: got {_type_name(d)}")
    return d


def validate_message(kind: str, payload: bytes, models: frozenset[str] | None = None) -> str | None:
    """None if `payload` is a usable message of `kind`, else the reason it is not.

    `models`, when given, also rejects events of models the config does not know.
    """
    try:
        fields = _CHECKS[kind](decode(payload))
    except Rejected as e:
        return str(e)
    model = fields[0] if kind == "features" else fields[1]
    if models is not None and model not in models:
        return f"model: unknown model {model!r} (configured: {', '.join(sorted(models))})"
    return None


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

    def __len__(self) -> int:
        return len(self.ids)


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

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Rejections:
    """Messages of a known model that were rejected: they count toward its schema-violation SLI.

    `ts` is the message's own time when it could be read, else NaN (counted at the model's clock).
    """

    model: str
    ts: list[float] = field(default_factory=list)

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
    max_ts: float = -math.inf  # newest valid event time in the batch
    watermark: float = -math.inf  # event time that all inputs have passed


def _guess_model(payload: bytes, d: dict | None, models: frozenset[str]) -> str | None:
    """The configured model a rejected message belongs to, if that much can be read."""
    if d is not None:
        m = d.get("model")
        return m if type(m) is str and m in models else None
    for m in models:  # malformed JSON: look for `"model":"<name>"` in the bytes
        if b'"model":"' + m.encode() + b'"' in payload or b'"model": "' + m.encode() + b'"' in payload:
            return m
    return None


def _raw_ts(d: dict | None) -> float:
    if d is None:
        return math.nan
    try:
        return _timestamp(d.get("ts"), "ts")
    except Rejected:
        return math.nan


def parse_batch(raw: RawBatch, spec: ParseSpec, now: float | None = None) -> ParsedBatch:
    """Parse and validate a whole batch; group the good events per model as columns.

    Events of unknown models, events stamped more than `spec.max_future_skew_s` after the batch
    median (or after `now`) and events older than `spec.max_age_s` are rejected like malformed ones.
    """
    out = ParsedBatch()
    _parse_rows(raw, spec, now, out)
    out.watermark = out.max_ts if raw.watermark is None else raw.watermark
    return out


def _parse_rows(raw: RawBatch, spec: ParseSpec, now: float | None, out: ParsedBatch) -> None:
    check = _CHECKS[raw.kind]
    models = spec.models
    rows: list[tuple[int, tuple]] = []
    for i, payload in enumerate(raw.values):
        d = None
        try:
            d = decode(payload, spec.max_message_bytes)
            fields = check(d)
            model = fields[0] if raw.kind == "features" else fields[1]
            if model not in models:
                raise Rejected(f"model: unknown model {model!r} (configured: {', '.join(sorted(models))})")
            rows.append((i, fields))
        except Rejected as e:
            _reject(out, raw, i, str(e), _guess_model(payload, d, models), _raw_ts(d))
    if not rows:
        return
    ts_pos = 4 if raw.kind == "features" else 3
    stamps = np.fromiter((f[ts_pos] for _, f in rows), float, len(rows))
    ref = float(np.median(stamps)) if now is None else min(float(np.median(stamps)), now)
    hi, lo = ref + spec.max_future_skew_s, ref - spec.max_age_s
    if now is not None:
        hi = now + spec.max_future_skew_s
    if stamps.max() > hi or stamps.min() < lo:
        keep = []
        for (i, f), t in zip(rows, stamps, strict=True):
            if t > hi:
                _reject(
                    out,
                    raw,
                    i,
                    f"ts: {to_rfc3339(t)} is {t - ref:.0f} s ahead of the other events "
                    f"(limit {spec.max_future_skew_s:.0f} s)",
                    f[0 if raw.kind == "features" else 1],
                    t,
                )
            elif t < lo:
                _reject(
                    out,
                    raw,
                    i,
                    f"ts: {to_rfc3339(t)} is older than every window "
                    f"({spec.max_age_s:.0f} s before the other events)",
                    f[0 if raw.kind == "features" else 1],
                    t,
                )
            else:
                keep.append((i, f))
        rows = keep
        if not rows:
            return
    _COLUMNS[raw.kind](out, raw, rows, spec)
    return


def _reject(out: ParsedBatch, raw: RawBatch, i: int, error: str, model: str | None, ts: float) -> None:
    ok_ts = None if math.isnan(ts) else ts
    out.dead_letters.append(
        DeadLetter(raw.topic, raw.partition, raw.offsets[i], error, raw.values[i], model, ok_ts)
    )
    if model is not None:
        out.rejections.setdefault(model, Rejections(model)).ts.append(ts)


def _group(rows: list[tuple[int, tuple]], model_pos: int) -> dict[str, list[tuple[int, tuple]]]:
    groups: dict[str, list[tuple[int, tuple]]] = {}
    for row in rows:
        m = row[1][model_pos]
        g = groups.get(m)
        if g is None:
            groups[m] = [row]
        else:
            g.append(row)
    return groups


def _inference_columns(out: ParsedBatch, raw: RawBatch, rows: list, spec: ParseSpec) -> None:
    for model, group in _group(rows, 1).items():
        n = len(group)
        expected = spec.features[model]
        idx, fields = zip(*group, strict=True)
        (
            ids,
            _,
            versions,
            ts,
            status,
            latency,
            predictions,
            score,
            segments,
            features,
            feature_ts,
            variants,
        ) = zip(*fields, strict=True)
        ts = np.array(ts, float)
        if expected:
            n_missing = np.fromiter((list(map(f.get, expected)).count(None) for f in features), np.int32, n)
        else:
            n_missing = np.zeros(n, np.int32)
        out.inference[model] = InferenceColumns(
            model=model,
            ts=ts,
            status=np.array(status, np.int8),
            latency_ms=np.array(latency, float),
            lag_s=ts - np.array(feature_ts, float),
            n_missing=n_missing,
            score=np.array(score, float),
            ids=list(ids),
            versions=list(versions),
            variants=list(variants),
            predictions=list(predictions),
            segments=[[seg.get(a) for seg in segments] for a in spec.segments[model]],
            features=list(features),
            raw=[raw.values[i] for i in idx],
            offsets=[raw.offsets[i] for i in idx],
            topic=raw.topic,
            partition=raw.partition,
        )
        out.max_ts = max(out.max_ts, float(ts.max()))


def _label_columns(out: ParsedBatch, raw: RawBatch, rows: list, spec: ParseSpec) -> None:
    for model, group in _group(rows, 1).items():
        fields = [f for _, f in group]
        ts = np.fromiter((f[3] for f in fields), float, len(fields))
        out.labels[model] = LabelColumns(
            model=model,
            ts=ts,
            ids=[f[0] for f in fields],
            labels=[f[2] for f in fields],
            raw=[raw.values[i] for i, _ in group],
            offsets=[raw.offsets[i] for i, _ in group],
            topic=raw.topic,
            partition=raw.partition,
        )
        out.max_ts = max(out.max_ts, float(ts.max()))


def _feature_columns(out: ParsedBatch, raw: RawBatch, rows: list, spec: ParseSpec) -> None:
    for model, group in _group(rows, 0).items():
        fields = [f for _, f in group]
        n = len(fields)
        expected = spec.features[model]
        ts = np.fromiter((f[4] for f in fields), float, n)
        out.features[model] = FeatureColumns(
            model=model,
            ts=ts,
            lag_s=ts - np.fromiter((f[3] for f in fields), float, n),
            n_missing=np.fromiter(
                (sum(1 for name in expected if f[2].get(name) is None) for f in fields), np.int32, n
            )
            if expected
            else np.zeros(n, np.int32),
        )
        out.max_ts = max(out.max_ts, float(ts.max()))


_COLUMNS = {"inference": _inference_columns, "labels": _label_columns, "features": _feature_columns}
