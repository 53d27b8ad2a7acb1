"""The expression language: parser errors, and the compiled numpy form against a per-event oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.spec.expr import (
    BoolOp,
    Compare,
    ExprError,
    Not,
    compile_expression,
    evaluate_event,
    event_value,
    parse_expression,
)


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    tree = parse_expression('not status == "ok" or latency_ms < 5 and score >= 0.5')
    assert tree == BoolOp(
        "or",
        Not(Compare("status", "==", "ok")),
        BoolOp("and", Compare("latency_ms", "<", 5.0), Compare("score", ">=", 0.5)),
    )


def test_literal_on_the_left_flips_the_operator() -> None:
    assert parse_expression("500 > attributes.ttft_ms") == Compare("attributes.ttft_ms", "<", 500.0)


@pytest.mark.parametrize(
    ("source", "column", "words"),
    [
        ("latency_ms < 500 and", 20, "expected a comparison"),
        ("(latency_ms < 500", 17, "missing ')'"),
        ("latency_ms << 500", 12, "expected a number"),
        ("lateny_ms < 500", 0, "unknown field 'lateny_ms'"),
        ('status < 3', 9, "status is a string field"),
        ('status == 3', 10, "status is a string field"),
        ("segment.region != true", 18, "segment.region is a string field"),
        ("score == false", 9, "score is a number field"),
        ('latency_ms == "fast"', 14, "latency_ms is a number field"),
        ('attributes.safety > "pass"', 18, "compares numbers only"),
        ('segment.region == "eu" and x == 1', 27, "unknown field 'x'"),
        ('status == "ok', 10, "unterminated string"),
        ("latency_ms < 5 5", 15, "unexpected '5'"),
        ("latency_ms", 10, "expected a comparison operator"),
    ],
)
def test_errors_point_at_the_column(source: str, column: int, words: str) -> None:
    with pytest.raises(ExprError) as e:
        parse_expression(source)
    assert e.value.column == column, str(e.value)
    assert words in str(e.value)
    assert str(e.value).endswith(source + "\n    " + " " * column + "^")


def test_segment_names_are_checked_against_the_model() -> None:
    parse_expression('segment.region == "eu"', ("region",))
    with pytest.raises(ExprError, match="'tier' is not a segment attribute"):
        parse_expression('segment.tier == "gold"', ("region",))


# --- property: compiled numpy == per-event Python -------------------------------------------

FIELDS = ["status", "latency_ms", "score", "prediction", "features.x", "attributes.y", "segment.region"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, -1.5, math.nan]),
                    st.sampled_from(["a", "b", "ok"]))


@st.composite
def events(draw: st.DrawFn) -> dict:
    e = {
        "status": draw(st.sampled_from(["ok", "error", "timeout"])),
        "latency_ms": float(draw(st.integers(0, 5))),
        "score": draw(st.none() | st.sampled_from([0.0, 0.5, 1.0])),
        "prediction": draw(scalars),
        "features": draw(st.dictionaries(st.just("x"), scalars)),
        "attributes": draw(st.dictionaries(st.just("y"), scalars)),
        "segment": draw(st.dictionaries(st.just("region"), st.sampled_from(["eu", "us"]))),
    }
    return e


def _literal_for(field: str) -> st.SearchStrategy[str]:
    numbers = st.sampled_from(["0", "1", "2.5", "-1", "0.5"])
    strings = st.sampled_from(['"a"', '"ok"', '"eu"', "'b'"])
    if field in ("latency_ms", "score"):
        return numbers | st.just("null")
    if field in ("status", "segment.region"):
        return strings | st.just("null")
    return numbers | strings | st.sampled_from(["true", "false", "null"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        field = draw(st.sampled_from(FIELDS))
        literal = draw(_literal_for(field))
        ordered = literal[0].isdigit() or literal[0] == "-"
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="] if ordered else ["==", "!="]))
        return f"{literal} {op} {field}" if draw(st.booleans()) else f"{field} {op} {literal}"
    kind = draw(st.sampled_from(["and", "or", "not", "paren"]))
    if kind == "not":
        return f"not {draw(expressions(depth - 1))}"
    if kind == "paren":
        return f"({draw(expressions(depth - 1))})"
    return f"{draw(expressions(depth - 1))} {kind} {draw(expressions(depth - 1))}"


def _lookup(batch: list[dict]):
    def lookup(path: str):
        values = [event_value(e, path) for e in batch]
        if path in ("latency_ms", "score"):  # numeric columns arrive as float arrays, NaN when absent
            return np.array([math.nan if v is None else v for v in values], float)
        if path == "status":
            return np.array(values, object)
        return values

    return lookup


@settings(max_examples=300, deadline=None)
@given(source=expressions(), batch=st.lists(events(), min_size=1, max_size=12))
def test_compiled_expression_matches_the_per_event_evaluation(source: str, batch: list[dict]) -> None:
    tree = parse_expression(source)
    compiled = compile_expression(tree)(_lookup(batch), len(batch))
    assert compiled.dtype == bool
    assert compiled.tolist() == [evaluate_event(tree, e) for e in batch], source


def test_missing_values_compare_false_even_with_not_equal() -> None:
    batch = [{"attributes": {}}, {"attributes": {"y": "pass"}}, {"attributes": {"y": 3}}]
    for source, expected in [('attributes.y != "pass"', [False, False, False]),
                             ("attributes.y != 3", [False, False, False]),
                             ("attributes.y == null", [True, False, False]),
                             ('not attributes.y == "pass"', [True, False, True])]:
        tree = parse_expression(source)
        assert compile_expression(tree)(_lookup(batch), 3).tolist() == expected, source
        assert [evaluate_event(tree, e) for e in batch] == expected, source
