"""The JSON Schemas in `schemas/`: well-formed, their examples valid, their bad samples rejected,
and the input schemas in exact agreement with `sloguard.core.messages.events.validate_message`.

The schema is the published contract; the Python parser is what the flow runs. Parity tests feed
both the same bytes (the example and sample corpora, then hypothesis-generated messages) and
require the same verdict.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
NAMES = ("inference", "labels", "features", "budget", "alert", "dead_letter", "rollout_decision", "incident")
INPUT_KINDS = ("inference", "labels", "features")
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
REASON = re.compile(r"^(?P<field>[a-z_]+): \S.*$")

Validate = Callable[[str, bytes], str | None]


# --------------------------------------------------------------------------- helpers


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """The parsed schema document `schemas/<name>.schema.json`."""
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A draft 2020-12 validator for one schema (format is annotation only, as the spec says)."""
    return Draft202012Validator(schema(name))


def lines(path: Path) -> list[bytes]:
    """The non-empty lines of a JSONL file, as the raw bytes a Kafka message would carry."""
    return [line for line in path.read_bytes().split(b"\n") if line.strip()]


def examples(name: str) -> list[bytes]:
    """Valid example messages of one schema."""
    return lines(SCHEMAS / "examples" / f"{name}.valid.jsonl")


def samples(kind: str) -> list[tuple[bytes, str]]:
    """Invalid sample messages of one input kind, each with its expected reason."""
    bad = lines(SCHEMAS / "samples" / f"{kind}.invalid.jsonl")
    reasons = (SCHEMAS / "samples" / f"{kind}.invalid.reasons.txt").read_text(encoding="utf-8")
    why = [r for r in reasons.split("\n") if r.strip()]
    assert len(bad) == len(why), f"{kind}: {len(bad)} samples but {len(why)} reasons"
    return list(zip(bad, why, strict=True))


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a double")
    return value


def decode(payload: bytes) -> Any:
    """Strict JSON decoding: no NaN/Infinity and no number that overflows to infinity."""
    return json.loads(payload, parse_constant=_no_constants, parse_float=_finite)


def schema_accepts(name: str, payload: bytes) -> bool:
    """Whether the message bytes are one JSON value that the schema accepts."""
    try:
        value = decode(payload)
    except ValueError:
        return False
    return validator(name).is_valid(value)


def fields_at_fault(name: str, value: Any) -> set[str]:
    """Top-level fields the schema blames for rejecting `value` ("(root)" for the whole object)."""
    fields: set[str] = set()
    for err in validator(name).iter_errors(value):
        if err.absolute_path:
            fields.add(str(err.absolute_path[0]))
        elif err.validator == "required":
            fields.update(f for f in err.validator_value if f not in err.instance)
        else:
            fields.add("(root)")
    return fields


def property_paths(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (path, subschema) under a `properties` or `$defs` keyword, recursively."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for keyword in ("properties", "$defs"):
            for key, sub in node.get(keyword, {}).items():
                found.append((f"{path}/{keyword}/{key}", sub))
        for key, sub in node.items():
            found.extend(property_paths(sub, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            found.extend(property_paths(sub, f"{path}/{i}"))
    return found


@pytest.fixture(scope="module")
def validate_message() -> Validate:
    """`sloguard.core.messages.events.validate_message`, or a skip while that module has not landed."""
    events = pytest.importorskip("sloguard.core.messages.events")
    return events.validate_message


# --------------------------------------------------------------------------- the schemas


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    doc = schema(name)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == DRAFT_2020_12
    assert doc["$id"].endswith(f"/{name}.schema.json")
    assert doc["title"] and doc["description"]
    assert doc["type"] == "object"
    undocumented = [p for p, sub in property_paths(doc) if not sub.get("description")]
    assert not undocumented, f"{name}: properties without a description: {undocumented}"


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_valid(name: str) -> None:
    rows = examples(name)
    assert len(rows) >= 3, f"{name}: want several examples"
    for n, line in enumerate(rows, 1):
        errors = [e.message for e in validator(name).iter_errors(decode(line))]
        assert not errors, f"examples/{name}.valid.jsonl:{n}: {errors}"


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_invalid_samples_are_rejected_for_their_reason(kind: str) -> None:
    """Each sample breaks exactly one field, the one its reason names."""
    for n, (line, reason) in enumerate(samples(kind), 1):
        m = REASON.match(reason)
        assert m, f"samples/{kind}.invalid.reasons.txt:{n}: want 'field: why', got {reason!r}"
        value = decode(line)
        assert isinstance(value, dict), f"samples/{kind}.invalid.jsonl:{n}: not an object"
        at_fault = fields_at_fault(kind, value)
        assert at_fault == {m["field"]}, (
            f"samples/{kind}.invalid.jsonl:{n} ({reason}): schema blames {sorted(at_fault)}"
        )


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_samples_cover_every_field(kind: str) -> None:
    """Every property has a bad sample, and every required property a missing one."""
    doc = schema(kind)
    reasons = [r for _, r in samples(kind)]
    blamed = {r.split(":", 1)[0] for r in reasons}
    assert set(doc["properties"]) <= blamed, f"no bad sample for {set(doc['properties']) - blamed}"
    missing = {r.split(":", 1)[0] for r in reasons if r.endswith(": missing")}
    assert set(doc["required"]) == missing


def test_input_timestamp_rules() -> None:
    """Spot checks of the shared timestamp definition, independent of the corpora."""
    ts = {"$ref": "#/$defs/timestamp", "$defs": schema("inference")["$defs"]}
    check = Draft202012Validator(ts).is_valid
    for good in ("2000-01-01T00:00:00Z", "2099-12-31 23:59:59.123456789+05:30",
                 "2024-02-29t12:00:00z", 946684800, 4102444799.999, 1717424525.5):
        assert check(good), good
    for bad in ("2024-06-03T14:22:05", "2024-06-03T14:22:05Z\n", "2023-02-29T00:00:00Z",
                "20٢٤-06-03T14:22:05Z", "1999-12-31T23:59:59Z", 946684799, 4102444800,
                True, False, None, "", 0):
        assert not check(bad), bad


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_parity_on_corpus(kind: str, validate_message: Validate) -> None:
    """validate_message accepts exactly what the schema accepts, on every example and sample."""
    corpus = [(line, "valid example") for line in examples(kind)] + samples(kind)
    mismatches = []
    for line, note in corpus:
        accepted = schema_accepts(kind, line)
        reason = validate_message(kind, line)
        if accepted != (reason is None):
            verdict = "accepts" if accepted else "rejects"
            mismatches.append(
                f"schema {verdict}, validate_message -> {reason!r}: {note}: {line[:160]!r}"
            )
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_parser_reason_names_the_field(kind: str, validate_message: Validate) -> None:
    """Each invalid sample's rejection reason mentions the field its sidecar reason names."""
    wrong = []
    for line, reason in samples(kind):
        field = reason.split(":", 1)[0]
        got = validate_message(kind, line)
        if got is None or field not in got:
            wrong.append(f"want {field!r} in {got!r} ({reason})")
    assert not wrong, "\n".join(wrong)


NOT_AN_OBJECT = [b"", b"   ", b"{", b"not json", b"[]", b"null", b'"x"', b"1", b"true",
                 b'[{"id": "a"}]', b"\xff\xfe{}", b'{"id": "a"} {"id": "b"}']
NON_FINITE = {
    "inference": b'{"id": "a", "model": "m", "version": "v", "ts": 1717424525, "status": "ok", '
                 b'"latency_ms": %s}',
    "labels": b'{"id": "a", "model": "m", "label": %s, "ts": 1717424525}',
    "features": b'{"model": "m", "entity": "e", "features": {"x": %s}, "event_ts": 1717424525, '
                b'"ts": 1717424525}',
}


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_parser_rejects_what_is_not_a_json_object(kind: str, validate_message: Validate) -> None:
    """Malformed JSON, non-objects and NaN/Infinity are rejected with a reason, never raised."""
    template = NON_FINITE[kind]
    assert validate_message(kind, template % b"1") is None
    bad = NOT_AN_OBJECT + [template % c for c in (b"NaN", b"Infinity", b"-Infinity", b"1e400")]
    for payload in bad:
        assert not schema_accepts(kind, payload), payload
        reason = validate_message(kind, payload)
        assert isinstance(reason, str) and reason, payload


# --------------------------------------------------------------------------- property tests

MISSING = object()
#: Arabic-Indic, Devanagari and fullwidth digits: Python's \d matches them, JSON Schema's does not.
UNICODE_DIGITS = tuple("".join(chr(base + i) for i in range(10)) for base in (0x660, 0x966, 0xFF10))
MIN_EPOCH, MAX_EPOCH = 946_684_800, 4_102_444_800


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(MISSING), strategy)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def rfc3339_near(draw: st.DrawFn) -> str:
    """Strings built like RFC 3339 timestamps with every part nudged across its bounds."""
    year = draw(st.sampled_from([1970, 1999, 2000, 2001, 2023, 2024, 2099, 2100, 2150])
                | st.integers(1995, 2105))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute = draw(st.integers(0, 24)), draw(st.integers(0, 60))
    second = draw(st.integers(0, 60))
    frac = draw(st.sampled_from(["", "", ".5", ".123", ".123456789", ".1234567890", "."]))
    sep = draw(st.sampled_from(["T", "T", "t", " ", "_", ""]))
    zone = draw(st.sampled_from(["Z", "Z", "z", "+00:00", "-05:30", "+23:59", "+24:00", "+0530",
                                 "+05", "", " UTC", "-00:00"]))
    text = f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{frac}{zone}"
    mutation = draw(st.sampled_from(["none"] * 8 + ["newline", "space", "lead", "digit", "cut"]))
    if mutation == "newline":
        text += "\n"
    elif mutation == "space":
        text += " "
    elif mutation == "lead":
        text = " " + text
    elif mutation == "digit":
        i = draw(st.sampled_from([i for i, c in enumerate(text) if c.isdigit()]))
        alphabet = draw(st.sampled_from(UNICODE_DIGITS))
        text = text[:i] + alphabet[int(text[i])] + text[i + 1 :]
    elif mutation == "cut":
        text = text[: draw(st.integers(0, len(text) - 1))]
    return text


@st.composite
def rfc3339_valid(draw: st.DrawFn) -> str:
    """Well-formed timestamps anywhere in 2000-2099, in the spellings the rule allows."""
    dt = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)))
    minutes = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    sep = draw(st.sampled_from("Tt "))
    digits = draw(st.integers(0, 9))
    frac = "" if digits == 0 else "." + f"{draw(st.integers(0, 10**digits - 1)):0{digits}d}"
    if minutes == 0 and draw(st.booleans()):
        zone = draw(st.sampled_from("Zz"))
    else:
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + zone


epochs = st.one_of(
    st.sampled_from([MIN_EPOCH, MIN_EPOCH - 1, MIN_EPOCH + 0.5, MIN_EPOCH - 1e-6, MAX_EPOCH,
                     MAX_EPOCH - 1, MAX_EPOCH - 0.001, MAX_EPOCH + 0.5, 0, -1, 1717424525183]),
    st.integers(MIN_EPOCH - 10**6, MAX_EPOCH + 10**6),
    st.floats(MIN_EPOCH - 1e3, MAX_EPOCH + 1e3),
    st.floats(allow_nan=False, allow_infinity=False),
)
timestamps = st.one_of(rfc3339_valid(), rfc3339_near(), epochs, json_scalars)


def strings_near(max_len: int) -> st.SearchStrategy[Any]:
    """Strings around the length bounds (ASCII and multi-byte), ordinary text and wrong types."""
    lengths = st.sampled_from([0, 1, max_len - 1, max_len, max_len + 1])
    sized = st.builds(lambda n, c: c * n, lengths, st.sampled_from(["x", "é", "模"]))
    return st.one_of(sized, st.text(max_size=12), json_scalars)


def enum_near(values: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """The allowed values, near misses of them, and wrong types."""
    near = [v.upper() for v in values] + [f" {values[0]}", "", values[0][:-1]]
    return st.one_of(st.sampled_from(values), st.sampled_from(near), json_scalars)


def numbers_near(lo: float, hi: float) -> st.SearchStrategy[Any]:
    """Numbers at and just past both bounds, inside the range, and wrong types."""
    edges = [lo, hi, int(lo), int(hi), lo - 1, hi + 1, lo - 1e-9, hi + 1e-6, -0.0, 0.5]
    return st.one_of(st.sampled_from(edges), st.floats(lo - 10, hi + 10), json_scalars)


good_epochs = st.one_of(
    st.integers(MIN_EPOCH, MAX_EPOCH - 1),
    st.floats(MIN_EPOCH, MAX_EPOCH, exclude_max=True),
)
good_timestamps = st.one_of(rfc3339_valid(), good_epochs)


def good_strings(max_len: int) -> st.SearchStrategy[str]:
    """Strings the length rule accepts, including both bounds in ASCII and multi-byte."""
    sized = st.builds(lambda n, c: c * n, st.sampled_from([1, max_len]), st.sampled_from("xé模"))
    return st.one_of(st.text(min_size=1, max_size=16), sized)


good_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False,
                         allow_infinity=False), st.text(max_size=8))
good_segment = st.dictionaries(st.text(max_size=6), good_strings(256) | st.just(""), max_size=3)
good_features = st.dictionaries(st.text(max_size=6), good_scalars, max_size=4)
segment_values = st.one_of(st.text(max_size=10), strings_near(256), json_values)
feature_values = st.one_of(json_scalars, json_values)
extra_fields = st.dictionaries(st.sampled_from(["request_id", "extra", "x", "trace"]), json_values,
                               max_size=2)

#: kind -> field -> (required, a value the rule accepts, a value near or across the rule's edges)
FIELDS: dict[str, dict[str, tuple[bool, st.SearchStrategy[Any], st.SearchStrategy[Any]]]] = {
    "inference": {
        "id": (True, good_strings(256), strings_near(256)),
        "model": (True, good_strings(128), strings_near(128)),
        "version": (True, good_strings(128), strings_near(128)),
        "ts": (True, good_timestamps, timestamps),
        "status": (True, st.sampled_from(["ok", "error", "timeout"]),
                   enum_near(("ok", "error", "timeout"))),
        "latency_ms": (True, st.floats(0, 3_600_000) | st.integers(0, 3_600_000),
                       numbers_near(0, 3_600_000)),
        "prediction": (False, good_scalars, json_values),
        "score": (False, st.none() | st.floats(0, 1), numbers_near(0, 1)),
        "segment": (False, good_segment,
                    st.dictionaries(st.text(max_size=6), segment_values, max_size=3) | json_values),
        "features": (False, good_features,
                     st.dictionaries(st.text(max_size=6), feature_values, max_size=4) | json_values),
        "feature_ts": (False, st.none() | good_timestamps, timestamps),
        "variant": (False, st.sampled_from(["stable", "canary"]), enum_near(("stable", "canary"))),
        "attributes": (False, good_features,
                       st.dictionaries(st.text(max_size=6), feature_values, max_size=4) | json_values),
    },
    "labels": {
        "id": (True, good_strings(256), strings_near(256)),
        "model": (True, good_strings(128), strings_near(128)),
        "label": (True, good_scalars.filter(lambda v: v is not None), json_values),
        "ts": (True, good_timestamps, timestamps),
    },
    "features": {
        "model": (True, good_strings(128), strings_near(128)),
        "entity": (True, good_strings(256), strings_near(256)),
        "features": (True, good_features,
                     st.dictionaries(st.text(max_size=6), feature_values, max_size=4) | json_values),
        "event_ts": (True, good_timestamps, timestamps),
        "ts": (True, good_timestamps, timestamps),
    },
}


@st.composite
def messages(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A message of `kind` with zero, one or a few fields perturbed, dropped or left valid.

    Most fields come from their valid strategy so that accepted messages are common; the
    perturbed ones come from edge strategies that may or may not break the rule: the schema is
    the oracle either way.
    """
    fields = FIELDS[kind]
    names = sorted(fields)
    perturbed = draw(st.just(set()) | st.sets(st.sampled_from(names), min_size=1, max_size=3))
    obj: dict[str, Any] = draw(extra_fields)
    for name in names:
        required, good, near = fields[name]
        if name in perturbed:
            value = draw(_maybe(near))
        elif required:
            value = draw(good)
        else:
            value = draw(_maybe(good))
        if value is not MISSING:
            obj[name] = value
    return obj


inference_messages = messages("inference")
labels_messages = messages("labels")
features_messages = messages("features")


def assert_parity(kind: str, obj: dict[str, Any], validate_message: Validate) -> None:
    """The schema and validate_message give the same verdict on the serialised object."""
    payload = json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")
    accepted = schema_accepts(kind, payload)
    reason = validate_message(kind, payload)
    verdict = "accepts" if accepted else "rejects"
    assert accepted == (reason is None), (
        f"schema {verdict}, validate_message -> {reason!r}: {payload!r}"
    )


@settings(max_examples=600, deadline=None)
@given(obj=inference_messages)
def test_parity_inference_property(obj: dict[str, Any], validate_message: Validate) -> None:
    assert_parity("inference", obj, validate_message)


@settings(max_examples=300, deadline=None)
@given(obj=labels_messages)
def test_parity_labels_property(obj: dict[str, Any], validate_message: Validate) -> None:
    assert_parity("labels", obj, validate_message)


@settings(max_examples=300, deadline=None)
@given(obj=features_messages)
def test_parity_features_property(obj: dict[str, Any], validate_message: Validate) -> None:
    assert_parity("features", obj, validate_message)


@settings(max_examples=400, deadline=None)
@given(ts=st.one_of(rfc3339_valid(), rfc3339_near()))
def test_parity_timestamp_strings(ts: str, validate_message: Validate) -> None:
    """Timestamps alone, in an otherwise valid message, to hit the string rules hard."""
    obj = {"id": "a", "model": "m", "version": "v", "ts": ts, "status": "ok", "latency_ms": 1}
    assert_parity("inference", obj, validate_message)


def test_valid_timestamp_strategy_is_valid() -> None:
    """Guard the generator itself: its 'valid' timestamps really satisfy the schema."""
    check = Draft202012Validator({"$ref": "#/$defs/rfc3339",
                                  "$defs": schema("inference")["$defs"]}).is_valid

    @settings(max_examples=200, deadline=None)
    @given(rfc3339_valid())
    def run(ts: str) -> None:
        assert check(ts), ts

    run()


# --------------------------------------------------------------------------- output Structs
# The output schemas and `sloguard.core.messages.outputs` describe the same messages: every Struct field is a
# schema property and every schema property a Struct field, and a field is required in one exactly
# when it is required in the other, down through nested objects the Structs type (`counted`,
# incident `members`, decision `checks`...). A field renamed, added or dropped on one side fails.

STRUCT_OF = {"budget": "Budget", "alert": "Alert", "incident": "Incident", "dead_letter": "DeadLetter",
             "rollout_decision": "Decision"}


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node` with a local `$ref` followed and a nullable `oneOf`/`anyOf` reduced to its object branch."""
    while True:
        if "$ref" in node:
            node = doc["$defs"][node["$ref"].rsplit("/", 1)[1]]
        elif "oneOf" in node or "anyOf" in node:
            node = next(b for b in node.get("oneOf", node.get("anyOf")) if b.get("type") != "null")
        else:
            return node


def _struct_in(t: Any) -> tuple[Any, Any] | None:
    """(the StructType inside a field type, how to step into the schema) or None: through
    optional/nullable unions, list items and dict values."""
    import msgspec

    if isinstance(t, msgspec.inspect.StructType):
        return t, None
    if isinstance(t, msgspec.inspect.UnionType):
        found = [s for s in (_struct_in(u) for u in t.types) if s is not None]
        return found[0] if found else None
    for kind, step in ((msgspec.inspect.ListType, "items"), (msgspec.inspect.DictType, "additionalProperties")):
        if isinstance(t, kind):
            inner = _struct_in(t.item_type if step == "items" else t.value_type)
            return (inner[0], step) if inner else None
    return None


def _mismatches(doc: dict[str, Any], node: dict[str, Any], struct: Any, path: str) -> list[str]:
    node = _resolve(doc, node)
    props, required = node.get("properties", {}), set(node.get("required", []))
    fields = {f.encode_name: f for f in struct.fields}
    tagged = {struct.tag_field} if struct.tag_field else set()
    names = set(fields) | tagged
    problems = [f"{path}.{n}: in the Struct, not in the schema" for n in sorted(names - set(props))]
    problems += [f"{path}.{n}: in the schema, not in the Struct" for n in sorted(set(props) - names)]
    struct_required = {n for n, f in fields.items() if f.required} | tagged
    problems += [f"{path}.{n}: required by the Struct only" for n in sorted(struct_required - required)]
    problems += [f"{path}.{n}: required by the schema only" for n in sorted(required - struct_required)]
    for name, f in fields.items():
        inner = _struct_in(f.type)
        if inner is not None and name in props:
            sub = _resolve(doc, props[name])
            if inner[1] is not None:
                sub = _resolve(doc, sub[inner[1]])
            problems += _mismatches(doc, sub, inner[0], f"{path}.{name}")
    return problems


@pytest.mark.parametrize("name", sorted(STRUCT_OF))
def test_output_schema_and_struct_have_the_same_fields(name: str) -> None:
    import msgspec

    from sloguard.core.messages import outputs as messages

    struct = msgspec.inspect.type_info(getattr(messages, STRUCT_OF[name]))
    problems = _mismatches(schema(name), schema(name), struct, name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(STRUCT_OF))
def test_output_examples_convert_to_their_struct(name: str) -> None:
    import msgspec

    from sloguard.core.messages import outputs as messages

    for n, line in enumerate(examples(name), 1):
        try:
            msgspec.json.decode(line, type=getattr(messages, STRUCT_OF[name]))
        except msgspec.ValidationError as e:
            raise AssertionError(f"examples/{name}.valid.jsonl:{n}: {e}") from None
