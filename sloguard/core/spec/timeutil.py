"""Durations and timestamps: the two ways time enters sloguard.

Durations are written as in Prometheus (`30s`, `5m`, `1h30m`, `7d`, `2w`) and held as integer
seconds. Timestamps on the wire are RFC 3339 strings with a zone or epoch seconds; inside sloguard
they are float epoch seconds (UTC).
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime, timedelta

#: Earliest and latest acceptable event time: anything outside is an "absurd timestamp".
MIN_EPOCH_S = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_EPOCH_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_RFC3339 = re.compile(
    r"^(20\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):([0-5]\d):([0-5]\d)"
    r"(?:\.(\d{1,9}))?([Zz]|([+-])([01]\d|2[0-3]):([0-5]\d))",
    re.ASCII,  # \d is 0-9 only: int() would also read Arabic-Indic digits
)


def parse_duration(text: str | int | float) -> int:
    """Seconds in a duration such as `5m`, `1h30m` or `30d`; a bare number is seconds.

    >>> parse_duration("1h30m")
    5400
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text <= 0 or text != int(text):
            raise ValueError(f"a duration must be a positive whole number of seconds, got {text!r}")
        return int(text)
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r} (write e.g. 30s, 5m, 1h, 7d)")
    seconds = sum(int(n) * _UNITS_S[u] for n, u in zip(m.groups(), "wdhms", strict=True) if n)
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


@functools.lru_cache(maxsize=1024)
def format_duration(seconds: int) -> str:
    """The shortest `parse_duration` spelling of whole seconds: 2592000 -> `30d`, 5400 -> `1h30m`."""
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {seconds}")
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS_S[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp with a zone, or None if it is not one.

    The regex decides what is accepted (it is the schemas' pattern); C `fromisoformat` computes
    the value, with a manual path for what Python 3.11's parser refuses (lower-case `t`/`z`).
    """
    m = _RFC3339.fullmatch(text)  # fullmatch: `$` would accept a trailing newline
    if m is None:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return _from_groups(m.groups())


def _from_groups(groups: tuple) -> float | None:
    year, month, day, hour, minute, second, frac, _zone, sign, zh, zm = groups
    midnight = _midnight(year, month, day)
    if midnight is None:  # e.g. 2026-02-30
        return None
    epoch = midnight + int(hour) * 3600 + int(minute) * 60 + int(second)
    if frac:
        epoch += int(frac) / 10 ** len(frac)
    if sign:
        offset = int(zh) * 3600 + int(zm) * 60
        epoch -= offset if sign == "+" else -offset
    return epoch


@functools.lru_cache(maxsize=4096)
def _midnight(year: str, month: str, day: str) -> float | None:
    """Epoch seconds of a date's midnight UTC, None if the date does not exist (cached: streams
    carry few distinct dates)."""
    try:
        return datetime(int(year), int(month), int(day), tzinfo=UTC).timestamp()
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)
def to_rfc3339(epoch_s: float) -> str:
    """RFC 3339 UTC string with millisecond precision, as sloguard writes timestamps (cached: the
    judge formats the same ticks and slice ends for every key and SLO)."""
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=round(epoch_s * 1000))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def epoch_of(value: object) -> float | None:
    """Epoch seconds of a config time: an RFC 3339 string with a zone, a YAML timestamp (with a
    zone), or epoch seconds; None for anything else (a naive time, a bool, NaN)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo is not None else None
    if isinstance(value, str):
        return parse_rfc3339(value.strip())
    return None
