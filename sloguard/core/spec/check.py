"""The checker every section of the config file is read with: it collects `path: message` problems
(all of them, not the first) while reading nested mappings, durations, numbers and names."""

from __future__ import annotations

import math
from typing import Any

from sloguard.core.spec.timeutil import format_duration, parse_duration


class Checker:
    """Collects `path: message` problems while reading a nested mapping."""

    def __init__(self, pending: bool = False) -> None:
        self.problems: list[str] = []
        self.pending = pending  # reading a config for `sloguard baseline`: its baseline may not exist yet

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: set[str] | None = None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.fail(f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def duration(self, value: Any, path: str, default: int | None = None) -> int | None:
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(path, str(e))
            return default

    def number(
        self,
        value: Any,
        path: str,
        lo: float,
        hi: float,
        *,
        open_lo: bool = False,
        open_hi: bool = False,
        default: float | None = None,
    ) -> float | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(path, f"must be a number, got {value!r}")
            return default
        if (value <= lo if open_lo else value < lo) or (value >= hi if open_hi else value > hi):
            lb, rb = "(" if open_lo else "[", ")" if open_hi else "]"
            self.fail(path, f"must be in {lb}{lo:g}, {hi:g}{rb}, got {value!r}")
            return default
        return float(value)

    def names(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(path, "must be a list of names")
            return ()
        if len(set(value)) != len(value):
            self.fail(path, "has duplicates")
        return tuple(value)


def duration_or_zero(seconds: int) -> str:
    return format_duration(seconds) if seconds else "0s"


def label_coverage_rule(c: Checker, raw: dict, path: str, share: float, wait: int) -> tuple[float, int]:
    """A label-coverage rule: min_share in [0, 1] (0: off) and a wait no longer than the label delay."""
    min_share = c.number(raw.get("min_share"), f"{path}.min_share", 0, 1, default=share)
    waited = c.duration(raw.get("wait"), f"{path}.wait", wait)
    return (share if min_share is None else min_share), (wait if waited is None else waited)


def count(c: Checker, value: Any, path: str, default: int) -> int:
    n = c.number(value, path, 1, 1e9, default=default)
    if n is not None and n != int(n):
        c.fail(path, f"must be a whole number, got {value!r}")
    return int(n or default)
