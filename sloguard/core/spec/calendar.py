"""Calendar SLO windows: a month or an ISO week in a timezone, whose budget resets at the boundary.

Most SLAs are written per calendar month ("99.9 % of requests this month"), not over the last 30
days. A calendar SLO's budget counts only events (or time slices) since the period started, in the
period's timezone, and starts over at the next one; its burn-rate rules are the same rolling
multiwindow rules, scaled to the period's nominal length (30 days for a month, 7 for a week, as
Sloth and the SRE workbook scale rules to the SLO window).

Budget over a period so far (occurrences): bad / ((1 - objective) x events so far), the usual
event-based reading (the period's total is not known until it ends). Timeslices: bad slices /
((1 - target) x slices in the whole period), so a bad slice costs the same share of the budget on
the 1st as on the 30th (as Nobl9 counts calendar-aligned timeslices).

Pure: boundaries come from the arguments and the timezone database (`zoneinfo`), never the clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("month", "week")
#: Rule windows scale to these lengths (Sloth's month is 30 days).
NOMINAL_S = {"month": 30 * 86_400, "week": 7 * 86_400}
#: What a key keeps of a calendar SLO's counters: the longest period and a day of slack.
SPAN_S = {"month": 32 * 86_400, "week": 8 * 86_400}


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The timezone `name` (IANA, e.g. Europe/Berlin); ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r} (an IANA name such as UTC or Europe/Berlin)") from None


@dataclass(frozen=True)
class Calendar:
    """A calendar period (`month` or ISO `week`, Monday first) in an IANA timezone."""

    period: str
    timezone: str = "UTC"

    @property
    def nominal_s(self) -> int:
        return NOMINAL_S[self.period]

    @property
    def span_s(self) -> int:
        return SPAN_S[self.period]

    @property
    def bucket_s(self) -> int:
        """Counter buckets that every period boundary of this timezone falls on: an hour, or 15
        minutes for a timezone with a half- or quarter-hour offset (India, Nepal, parts of Australia)."""
        tz = zone(self.timezone)
        offsets = {tz.utcoffset(dt.datetime(2026, m, 1)).total_seconds() for m in (1, 4, 7, 10)}
        return 3600 if all(o % 3600 == 0 for o in offsets) else 900

    def bounds(self, t: float) -> tuple[float, float]:
        """[start, end) in epoch seconds of the period holding instant `t`.

        >>> Calendar("month", "Europe/Berlin").bounds(1769900400.0)  # 2026-02-01T00:00+01:00
        (1769900400.0, 1772319600.0)
        >>> Calendar("week").bounds(1767225600.0)  # Thursday 2026-01-01 00:00 UTC
        (1766966400.0, 1767571200.0)
        """
        tz = zone(self.timezone)
        local = dt.datetime.fromtimestamp(t, tz)
        if self.period == "month":
            start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            y, m = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
            end = start.replace(year=y, month=m)
        else:
            day = (local - dt.timedelta(days=local.weekday())).date()
            start = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
            nxt = day + dt.timedelta(days=7)
            end = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
        # wall-clock midnight in the zone: re-attach the zone so a DST change inside the period counts
        start = start.replace(tzinfo=tz)
        end = end.replace(tzinfo=tz)
        return start.timestamp(), end.timestamp()

    def describe(self) -> str:
        return f"calendar {self.period} ({self.timezone})"

    def to_dict(self) -> dict[str, str]:
        return {"calendar": self.period, "timezone": self.timezone}
