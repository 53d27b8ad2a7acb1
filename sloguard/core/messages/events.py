"""Input events: the three message contracts, and validation with a reason for every rejection.

Three kinds arrive (DESIGN.md, "Contracts"): `inference` (one per prediction), `labels` (ground
truth, late) and `features` (feature-pipeline events). Each has a msgspec `Struct` that decodes
and validates a well-formed message in C, about as fast as a bare `orjson.loads`; a message it
refuses goes to the `_check_*` functions, which alone decide rejections and word the reason so
that it names the field (`latency_ms: must be a number, got boolean`). The rules are those of
`schemas/*.schema.json`; a test keeps the two equal. Batches of messages become columns in
`batch.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta, Struct, field

from sloguard.core.spec.timeutil import MAX_EPOCH_S, MIN_EPOCH_S, parse_rfc3339

KINDS = ("inference", "labels", "features")
STATUSES = ("ok", "error", "timeout")
STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
VARIANTS = ("stable", "canary")
MAX_LATENCY_MS = 3_600_000.0

_Id = Annotated[str, Meta(min_length=1, max_length=256)]
_Name = Annotated[str, Meta(min_length=1, max_length=128)]
_Epoch = Annotated[float, Meta(ge=MIN_EPOCH_S, lt=MAX_EPOCH_S)]
_Scalar = str | int | float | bool | None


class Inference(Struct, gc=False):
    """One prediction request (`ml.inference`). Timestamps are epoch seconds once checked."""

    id: _Id
    model: _Name
    version: _Name
    ts: _Epoch | str
    status: Literal["ok", "error", "timeout"]
    latency_ms: Annotated[float, Meta(ge=0.0, le=MAX_LATENCY_MS)]
    prediction: _Scalar = None
    score: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    segment: dict[str, Annotated[str, Meta(max_length=256)]] = field(default_factory=dict)
    features: dict[str, _Scalar] = field(default_factory=dict)
    feature_ts: _Epoch | str | None = None
    variant: Literal["stable", "canary"] = "stable"
    attributes: dict[str, _Scalar] = field(default_factory=dict)  # optional: e.g. ttft_ms, cost_usd


class Label(Struct, gc=False):
    """Ground truth for a prediction (`ml.labels`), arriving minutes to days later."""

    id: _Id
    model: _Name
    label: str | int | float | bool
    ts: _Epoch | str


class FeatureEvent(Struct, gc=False):
    """A feature-pipeline event (`ml.features`): `ts - event_ts` is how stale the features are.

    `segment` is optional (not in the minimal contract): when present, freshness SLIs computed
    from this topic are also kept per segment key.
    """

    model: _Name
    entity: _Id
    features: dict[str, _Scalar]
    event_ts: _Epoch | str
    ts: _Epoch | str
    segment: dict[str, Annotated[str, Meta(max_length=256)]] = field(default_factory=dict)


Event = Inference | Label | FeatureEvent


class Rejected(ValueError):
    """A message that cannot be used; the message names the field and the problem."""


@dataclass(slots=True)
class RawBatch:
    """Raw messages of one kind from one topic partition (or one file), in arrival order.

    `watermark`, when the source knows it, is the event time below which no more events will
    come from any input (a replay of several files knows it exactly); otherwise the batch's
    newest event time stands in for it and `allowed_lateness` absorbs the disorder.

    Two times come from the edge, never from the core's own clock: `not_after`, the wall clock
    when the batch was read (a replay: when it started), bounds how far in the future an event may
    be stamped (`limits.max_future_skew`); `arrival`, the newest broker timestamp of the batch's
    messages, lets messages whose own time cannot be read still advance event time (frontier.py).
    """

    kind: str
    topic: str
    partition: int
    offsets: list[int]
    values: list[bytes]
    watermark: float | None = None
    source: str = ""  # the input this came from (topic#partition, or a file); see frontier.py
    caught_up: bool = False  # the source has nothing more to read after this batch, for now
    clock: float | None = None  # wall-clock heartbeat of a live source that is caught up and idle
    not_after: float | None = None  # the edge's clock when read: events may be stamped at most the skew after it
    arrival: float | None = None  # newest broker timestamp of the batch's messages (Kafka), epoch seconds


_DECODERS = {
    "inference": msgspec.json.Decoder(Inference).decode,
    "labels": msgspec.json.Decoder(Label).decode,
    "features": msgspec.json.Decoder(FeatureEvent).decode,
}


_SECOND_TS = {"inference": "feature_ts", "labels": "ts", "features": "event_ts"}


def fast_decoder(kind: str) -> tuple[Any, str]:
    """The raw msgspec decoder of `kind` and the name of its second timestamp field.

    A batch loop may call it directly for speed; an event it returns is final only if neither `ts`
    nor the second timestamp is a string (those need `decode_event` to parse and check them).
    """
    return _DECODERS[kind], _SECOND_TS[kind]


def decode_event(kind: str, payload: bytes, max_bytes: int = 65_536) -> Event:
    """The checked event in `payload`, timestamps as epoch seconds, or `Rejected` with the reason."""
    payload = payload.rstrip(b"\r\n")  # a JSONL line's end is not part of the message
    if len(payload) > max_bytes:
        raise Rejected(f"oversized message: {len(payload)} bytes > limit {max_bytes}")
    if not payload.isascii():  # msgspec skips unknown fields without checking their UTF-8
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Rejected(f"malformed JSON: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        event = _DECODERS[kind](payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _CHECKS[kind](decode_json(payload))
    return normalise(event, payload)


def normalise(event: Event, payload: bytes) -> Event:
    """Turn an event's RFC 3339 timestamps into epoch seconds; `Rejected` if one is not valid."""
    if type(event) is Inference:
        if type(event.ts) is str or type(event.feature_ts) is str:
            return _normalise_inference(event, payload)
    elif type(event) is FeatureEvent:
        if type(event.ts) is str or type(event.event_ts) is str:
            return _check_feature_event(decode_json(payload))
    elif type(event.ts) is str:
        return _check_label(decode_json(payload))
    return event


def _normalise_inference(event: Inference, payload: bytes) -> Inference:
    ts = parse_rfc3339(event.ts) if type(event.ts) is str else event.ts
    fts = parse_rfc3339(event.feature_ts) if type(event.feature_ts) is str else event.feature_ts
    if ts is None or (fts is None and event.feature_ts is not None):
        return _check_inference(decode_json(payload))  # words the reason
    event.ts, event.feature_ts = ts, fts
    return event


def decode_json(payload: bytes) -> dict:
    """The JSON object in a message, or `Rejected` saying why there is none."""
    try:
        d = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise Rejected(f"malformed JSON: {e}") from None
    if type(d) is not dict:
        raise Rejected(f"not a JSON object: got {_type_name(d)}")
    return d


def validate_message(
    kind: str, payload: bytes, models: frozenset[str] | None = None, max_bytes: int = 65_536
) -> str | None:
    """None if `payload` is a usable message of `kind`, else the reason it is not.

    `models`, when given, also rejects events of models the config does not know.
    """
    try:
        event = decode_event(kind, payload, max_bytes)
    except Rejected as e:
        return str(e)
    if models is not None and event.model not in models:
        return unknown_model(event.model, models)
    return None


def unknown_model(model: str, models: frozenset[str]) -> str:
    return f"model: unknown model {model!r} (configured: {', '.join(sorted(models))})"


# ---- the reference checks: every rule, with a reason naming the field ---------------------------


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


def _str_field(d: dict, name: str, max_len: int) -> str:
    value = d.get(name)
    if value is None:
        raise Rejected(f"{name}: missing" if name not in d else f"{name}: must be a string, got null")
    if type(value) is not str:
        raise Rejected(f"{name}: must be a string, got {_type_name(value)}")
    if not value or len(value) > max_len:
        raise Rejected(f"{name}: must be 1 to {max_len} characters, got {len(value)}")
    return value


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


def _scalar_map(d: dict, name: str, strings_only: bool, required: bool = False) -> dict:
    if name not in d and not required:
        return {}
    value = d.get(name)
    if type(value) is not dict:
        raise Rejected(
            f"{name}: missing" if name not in d else f"{name}: must be an object, got {_type_name(value)}"
        )
    for k, v in value.items():
        t = type(v)
        if strings_only:
            if t is not str:
                raise Rejected(f"{name}.{k}: must be a string, got {_type_name(v)}")
            if len(v) > 256:
                raise Rejected(f"{name}.{k}: longer than 256 characters")
        elif t is dict or t is list:
            raise Rejected(f"{name}.{k}: must be a number, string, boolean or null, got {_type_name(v)}")
    return value


def _check_inference(d: dict) -> Inference:
    """Every rule of schemas/inference.schema.json, raising `Rejected` with the field's name."""
    ident = _str_field(d, "id", 256)
    model = _str_field(d, "model", 128)
    version = _str_field(d, "version", 128)
    ts = _timestamp(d.get("ts"), "ts")
    status = d.get("status")
    if type(status) is not str or status not in STATUS_CODE:
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
    score = None if score is None else _number(score, "score", 0.0, 1.0)
    segment = _scalar_map(d, "segment", True)
    features = _scalar_map(d, "features", False)
    feature_ts = d.get("feature_ts")
    feature_ts = None if feature_ts is None else _timestamp(feature_ts, "feature_ts")
    variant = d.get("variant", "stable")
    if variant not in VARIANTS:
        raise Rejected(f"variant: must be stable or canary, got {variant!r}")
    attributes = _scalar_map(d, "attributes", False)
    return Inference(
        ident, model, version, ts, status, latency, prediction, score, segment, features, feature_ts, variant,
        attributes,
    )


def _check_label(d: dict) -> Label:
    ident = _str_field(d, "id", 256)
    model = _str_field(d, "model", 128)
    if "label" not in d:
        raise Rejected("label: missing")
    label = d["label"]
    if type(label) not in (str, int, float, bool):
        raise Rejected(f"label: must be a string, number or boolean, got {_type_name(label)}")
    return Label(ident, model, label, _timestamp(d.get("ts"), "ts"))


def _check_feature_event(d: dict) -> FeatureEvent:
    model = _str_field(d, "model", 128)
    entity = _str_field(d, "entity", 256)
    features = _scalar_map(d, "features", False, required=True)
    event_ts = _timestamp(d.get("event_ts"), "event_ts")
    ts = _timestamp(d.get("ts"), "ts")
    return FeatureEvent(model, entity, features, event_ts, ts, _scalar_map(d, "segment", True))


_CHECKS = {"inference": _check_inference, "labels": _check_label, "features": _check_feature_event}


def guess_model(payload: bytes, models: frozenset[str]) -> str | None:
    """The configured model a rejected message belongs to, if that much can be read from it."""
    try:
        d = orjson.loads(payload)
        m = d.get("model") if type(d) is dict else None
        return m if type(m) is str and m in models else None
    except orjson.JSONDecodeError:
        pass
    for m in models:  # malformed JSON: look for "model":"<name>" in the bytes
        name = m.encode()
        if b'"model":"' + name + b'"' in payload or b'"model": "' + name + b'"' in payload:
            return m
    return None


def readable_ts(payload: bytes) -> float:
    """The `ts` of a rejected message if it has a valid one, else NaN (for counting it in time)."""
    try:
        d = orjson.loads(payload)
        return _timestamp(d.get("ts"), "ts") if type(d) is dict else math.nan
    except (orjson.JSONDecodeError, Rejected):
        return math.nan
