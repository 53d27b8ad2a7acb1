"""A small, safe expression language over inference events, for `ratio` SLIs.

    good: status == "ok" and attributes.safety == "pass" and not (latency_ms > 2000)

Grammar (no `eval`: a tokenizer and a recursive-descent parser)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | primary
    primary    := "(" expr ")" | "true" | "false" | comparison
    comparison := field op literal | literal op field
    op         := "<" | "<=" | ">" | ">=" | "==" | "!="
    literal    := number | "string" | 'string' | true | false | null
    field      := status | latency_ms | score | prediction | version | variant | id
                | features.<name> | segment.<name> | attributes.<name>

Missing values compare false (`!=` too); `field == null` tests absence. Strings compare only with
`==` and `!=`. `compile_expression` turns a parsed tree into a function over a batch's columns
(numpy, one vectorised operation per comparison); `evaluate_event` is the per-event reference
implementation that the tests hold the compiled form to.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

#: Top-level inference fields and their type: "number", "string" or "any" (a JSON scalar).
TOP_LEVEL_FIELDS = {
    "status": "string", "latency_ms": "number", "score": "number", "prediction": "any",
    "version": "string", "variant": "string", "id": "string",
}
#: Objects of the event whose keys are fields (`features.country`), with their values' type.
NESTED_FIELDS = {"features": "any", "segment": "string", "attributes": "any"}
ORDERING = ("<", "<=", ">", ">=")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<string>"[^"]*"|'[^']*')"""
    r"""|(?P<op><=|>=|==|!=|<|>)|(?P<paren>[()])|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)?)"""
)


class ExprError(ValueError):
    """An expression that cannot be compiled; the message points at the column with a caret."""

    def __init__(self, source: str, column: int, message: str) -> None:
        self.column = column
        self.reason = message
        super().__init__(f"{message} at column {column + 1}\n    {source}\n    {' ' * column}^")


@dataclass(frozen=True)
class Token:
    kind: str  # number | string | op | paren | name | keyword | end
    text: str
    column: int


@dataclass(frozen=True)
class Compare:
    """`field op value`: value is a float, str, bool or None (null)."""

    field: str
    op: str
    value: float | str | bool | None


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Const:
    value: bool


Node = Compare | BoolOp | Not | Const


def tokenize(source: str) -> list[Token]:
    """The tokens of `source`, ending with an `end` token; ExprError at the first bad character."""
    tokens, pos = [], 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            what = "unterminated string" if source[pos] in "'\"" else f"unexpected character {source[pos]!r}"
            raise ExprError(source, pos, what)
        kind, text = m.lastgroup or "", m.group()
        if kind == "name" and text in _KEYWORDS:
            kind = "keyword"
        if kind != "space":
            tokens.append(Token(kind, text, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


def field_type(path: str) -> str | None:
    """The type of a field path ("number", "string", "any"), or None when it is not a field."""
    if path in TOP_LEVEL_FIELDS:
        return TOP_LEVEL_FIELDS[path]
    head, _, name = path.partition(".")
    return NESTED_FIELDS.get(head) if name else None


def known_fields() -> str:
    return ", ".join([*TOP_LEVEL_FIELDS, *(f"{n}.<name>" for n in NESTED_FIELDS)])


class _Parser:
    def __init__(self, source: str, segments: tuple[str, ...] | None) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.segments = segments

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def fail(self, token: Token, message: str) -> ExprError:
        return ExprError(self.source, token.column, message)

    def parse(self) -> Node:
        node = self.parse_or()
        t = self.peek()
        if t.kind != "end":
            raise self.fail(t, f"unexpected {t.text!r} (expected and, or, or the end)")
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.peek().text == "or" and self.peek().kind == "keyword":
            self.take()
            node = BoolOp("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.peek().text == "and" and self.peek().kind == "keyword":
            self.take()
            node = BoolOp("and", node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        if self.peek().kind == "keyword" and self.peek().text == "not":
            self.take()
            return Not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        t = self.peek()
        if t.kind == "paren" and t.text == "(":
            self.take()
            node = self.parse_or()
            close = self.take()
            if close.text != ")":
                raise self.fail(close, "expected ')'" if close.kind != "end" else "missing ')'")
            return node
        if t.kind == "keyword" and t.text in ("true", "false") and self.tokens[self.i + 1].kind != "op":
            self.take()
            return Const(t.text == "true")
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        left = self.take()
        if left.kind == "end":
            raise self.fail(left, "expected a comparison such as latency_ms < 500")
        op = self.take()
        if op.kind != "op":
            raise self.fail(op, "expected a comparison operator (< <= > >= == !=)")
        right = self.take()
        if left.kind == "name":
            field, literal, opname = left, right, op.text
        elif right.kind == "name":
            field, literal, opname = right, left, _FLIPPED[op.text]
        else:
            raise self.fail(left, "a comparison needs a field on one side")
        value = self.literal(literal)
        self.check(field, opname, op, literal, value)
        return Compare(field.text, opname, value)

    def literal(self, t: Token) -> float | str | bool | None:
        if t.kind == "number":
            return float(t.text)
        if t.kind == "string":
            return t.text[1:-1]
        if t.kind == "keyword" and t.text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[t.text]
        if t.kind == "name":
            raise self.fail(t, "compare a field with a literal, not with another field")
        raise self.fail(t, "expected a number, a quoted string, true, false or null")

    def check(self, field: Token, op: str, op_token: Token, literal: Token, value: Any) -> None:
        kind = field_type(field.text)
        if kind is None:
            raise self.fail(field, f"unknown field {field.text!r} (known: {known_fields()})")
        head, _, name = field.text.partition(".")
        if head == "segment" and self.segments is not None and name not in self.segments:
            raise self.fail(field, f"{field.text!r}: {name!r} is not a segment attribute of the model "
                                   f"(segments: {', '.join(self.segments) or 'none'})")
        is_number = isinstance(value, float)
        if kind == "string" and value is not None and not isinstance(value, str):
            raise self.fail(literal, f"{field.text} is a string field: compare it with a quoted string, "
                                     f"not {literal.text}")
        if kind == "number" and not is_number and value is not None:
            raise self.fail(literal, f"{field.text} is a number field: compare it with a number, not {literal.text}")
        if op in ORDERING and not is_number:
            raise self.fail(op_token, f"{op_token.text} compares numbers only; use == or != with {literal.text}")


def parse_expression(source: str, segments: tuple[str, ...] | None = None) -> Node:
    """The syntax tree of `source`, checked: fields exist (segment names among `segments` when
    given) and every comparison's types fit. Raises ExprError."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError(str(source), 0, "empty expression")
    return _Parser(source, segments).parse()


def fields_of(node: Node) -> set[str]:
    """The field paths an expression reads."""
    if isinstance(node, Compare):
        return {node.field}
    if isinstance(node, BoolOp):
        return fields_of(node.left) | fields_of(node.right)
    if isinstance(node, Not):
        return fields_of(node.operand)
    return set()


# --- vectorised evaluation ------------------------------------------------------------------


def _number_or_nan(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def as_numbers(values: Any) -> np.ndarray:
    """float64 values, NaN where a value is missing or not a number (booleans are not numbers)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values
    return np.fromiter(map(_number_or_nan, values), float, len(values))


def _compare_column(values: Any, op: str, value: Any) -> np.ndarray:
    n = len(values)
    if value is None:  # presence test
        present = ~np.isnan(values) if isinstance(values, np.ndarray) and values.dtype.kind == "f" else (
            ~np.fromiter(map(operator.is_, values, repeat(None)), bool, n))
        return present if op == "!=" else ~present
    if isinstance(value, bool):
        typed = np.fromiter(map(isinstance, values, repeat(bool)), bool, n) if not isinstance(values, np.ndarray) \
            else np.zeros(n, bool)
        same = np.fromiter(map(operator.is_, values, repeat(value)), bool, n) if typed.any() else typed
        return same if op == "==" else typed & ~same
    if isinstance(value, float):
        numbers = as_numbers(values)
        with np.errstate(invalid="ignore"):
            result = _OPS[op](numbers, value)
        return result & ~np.isnan(numbers) if op == "!=" else result
    strings = values if isinstance(values, np.ndarray) and values.dtype.kind in "UO" else np.array(values, object)
    typed = np.fromiter(map(isinstance, strings, repeat(str)), bool, n)
    equal = typed & (strings == value)
    return equal if op == "==" else typed & ~equal


def compile_expression(node: Node) -> Callable[[Callable[[str], Any], int], np.ndarray]:
    """A function (lookup, n) -> bool array of n events; lookup(field) gives that field's values
    for the batch (a numpy array or a list, None or NaN when missing)."""
    if isinstance(node, Compare):
        field, op, value = node.field, node.op, node.value
        return lambda lookup, n: _compare_column(lookup(field), op, value)
    if isinstance(node, BoolOp):
        left, right = compile_expression(node.left), compile_expression(node.right)
        if node.op == "and":
            return lambda lookup, n: left(lookup, n) & right(lookup, n)
        return lambda lookup, n: left(lookup, n) | right(lookup, n)
    if isinstance(node, Not):
        inner = compile_expression(node.operand)
        return lambda lookup, n: ~inner(lookup, n)
    constant = node.value
    return lambda lookup, n: np.full(n, constant, bool)


# --- per-event reference ----------------------------------------------------------------------


def event_value(event: dict, path: str) -> Any:
    """The value of field `path` in an event dict (None when absent)."""
    head, _, name = path.partition(".")
    if name and head in NESTED_FIELDS:
        inner = event.get(head)
        return inner.get(name) if isinstance(inner, dict) else None
    return event.get(path)


def evaluate_event(node: Node, event: dict) -> bool:
    """The per-event meaning of an expression (slow; the reference for `compile_expression`)."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Not):
        return not evaluate_event(node.operand, event)
    if isinstance(node, BoolOp):
        left, right = evaluate_event(node.left, event), evaluate_event(node.right, event)
        return (left and right) if node.op == "and" else (left or right)
    v = event_value(event, node.field)
    if node.value is None:
        return (v is None) == (node.op == "==")
    if isinstance(node.value, bool):
        return isinstance(v, bool) and ((v is node.value) == (node.op == "=="))
    if isinstance(node.value, float):
        number = _number_or_nan(v)  # NaN counts as missing
        return not math.isnan(number) and bool(_OPS[node.op](number, node.value))
    return isinstance(v, str) and bool(_OPS[node.op](v, node.value))
