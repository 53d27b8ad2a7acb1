"""Tests for sloguard.core.spec.timeutil: Prometheus-style durations and RFC 3339 timestamps.

Oracles are hand counts of seconds and the standard library's `datetime.fromisoformat`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.spec.timeutil import (
    MAX_EPOCH_S,
    MIN_EPOCH_S,
    format_duration,
    parse_duration,
    parse_rfc3339,
    to_rfc3339,
)

# ---------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 5 * 60),
        ("1h", 3600),
        ("1h30m", 3600 + 30 * 60),
        ("7d", 7 * 24 * 3600),
        ("30d", 30 * 24 * 3600),
        ("2w", 2 * 7 * 24 * 3600),
        ("1w2d3h4m5s", 7 * 86_400 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5),
        (" 15m ", 15 * 60),
        (45, 45),
        (90.0, 90),
    ],
)
def test_parse_duration_known_values(text: str | int | float, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2_592_000, "30d"), (5400, "1h30m"), (60, "1m"), (59, "59s"), (86_401, "1d1s"), (604_800, "7d")],
)
def test_format_duration_known_values(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


_CANONICAL = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=10**9))
def test_duration_round_trip_and_canonical_form(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    m = _CANONICAL.match(text)
    assert m is not None and text
    d, h, mi, s = (int(g) if g is not None else None for g in m.groups())
    # Shortest spelling: every present component is non-zero and carries below the next unit.
    assert all(v is None or v > 0 for v in (d, h, mi, s))
    assert h is None or h < 24
    assert mi is None or mi < 60
    assert s is None or s < 60
    assert (d or 0) * 86_400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0) == seconds


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "5x", "m", "5 m", "-5m", "5m30", "1.5h", "0s", "0m0s",
     0, -1, -60, 1.5, 0.0, True, False, None],
)
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, -3600])
def test_format_duration_rejects_non_positive(bad: int) -> None:
    with pytest.raises(ValueError):
        format_duration(bad)


# --------------------------------------------------------------------------------------- timestamps


def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return f"{sign}{hh:02d}:{mm:02d}"


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    st.sampled_from([0, 1, 3, 6]),
    st.sampled_from(["T", "t", " "]),
)
def test_parse_rfc3339_agrees_with_fromisoformat(local: datetime, offset_min: int, digits: int,
                                                  sep: str) -> None:
    frac = f"{local.microsecond:06d}"[:digits]
    fraction = f".{frac}" if digits else ""
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + _offset_text(offset_min)
    got = parse_rfc3339(text)
    # The oracle: the same wall time and fraction, read by the standard library.
    oracle_text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac.ljust(6, '0')}" if digits else "")
    oracle = datetime.fromisoformat(oracle_text).replace(
        tzinfo=timezone(timedelta(minutes=offset_min))).timestamp()
    assert got is not None
    assert got == pytest.approx(oracle, abs=2e-6)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024-03-10T12:00:00Z", "2024-03-10T12:00:00+00:00"),
        ("2024-03-10T12:00:00z", "2024-03-10T12:00:00+00:00"),
        ("2024-03-10T12:00:00+05:30", "2024-03-10T12:00:00+05:30"),
        ("2024-03-10T12:00:00-08:00", "2024-03-10T12:00:00-08:00"),
        ("2024-02-29T23:59:59.5+01:00", "2024-02-29T23:59:59.500000+01:00"),
        ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00+00:00"),
        ("2099-12-31T23:59:59.999Z", "2099-12-31T23:59:59.999000+00:00"),
    ],
)
def test_parse_rfc3339_known_values(text: str, iso: str) -> None:
    assert parse_rfc3339(text) == pytest.approx(datetime.fromisoformat(iso).timestamp(), abs=1e-6)


def test_parse_rfc3339_nanoseconds() -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert parse_rfc3339("2024-01-01T00:00:00.123456789Z") == pytest.approx(base + 0.123456789, abs=1e-6)


@pytest.mark.parametrize(
    "bad",
    [
        "2024-01-01T00:00:00",  # naive: no zone
        "2024-01-01T00:00:00.5",  # naive with a fraction
        "2024-01-01",  # a date only
        "1999-12-31T23:59:59Z",  # before 2000
        "2100-01-01T00:00:00Z",  # 2100 and later
        "2024-02-30T00:00:00Z",  # no such day
        "2023-02-29T00:00:00Z",  # not a leap year
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567890Z",  # more than nanoseconds
        "1704067200",
        "",
        "yesterday",
    ],
)
def test_parse_rfc3339_rejects(bad: str) -> None:
    assert parse_rfc3339(bad) is None


def test_epoch_bounds_are_the_documented_dates() -> None:
    assert datetime.fromtimestamp(MIN_EPOCH_S, UTC) == datetime(2000, 1, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(MAX_EPOCH_S, UTC) == datetime(2100, 1, 1, tzinfo=UTC)


_WIRE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000.1234, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000.9996, "2023-11-14T22:13:21.000Z"),  # rounds to the millisecond
        (946_684_800.0, "2000-01-01T00:00:00.000Z"),
    ],
)
def test_to_rfc3339_known_values(epoch: float, text: str) -> None:
    assert to_rfc3339(epoch) == text


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=MIN_EPOCH_S, max_value=MAX_EPOCH_S - 1, allow_nan=False))
def test_to_rfc3339_format_and_round_trip(epoch: float) -> None:
    text = to_rfc3339(epoch)
    assert _WIRE.match(text), text
    expected = datetime.fromtimestamp(round(epoch * 1000) / 1000, UTC)
    assert datetime.fromisoformat(text) == expected
    assert parse_rfc3339(text) == pytest.approx(round(epoch * 1000) / 1000, abs=1e-6)
