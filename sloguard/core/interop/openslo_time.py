"""OpenSLO durations and time windows, both ways.

Shorthand durations (5m, 30d, 2w), and rolling or calendar `timeWindow`s to and from sloguard's
window (a duration, or `{calendar, timezone}`). `OpenSloError` lists what cannot be mapped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sloguard.core.spec.model import Slo

_SHORTHAND = re.compile(r"^([1-9][0-9]*)([mhdwMQY])$")

if TYPE_CHECKING:
    from sloguard.core.interop.openslo import _Doc


_UNIT_S = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def shorthand(seconds: int, path: str) -> str:
    """An OpenSLO duration (`^[1-9][0-9]*[mhdwMQY]$`, one unit): 2592000 -> `30d`, 5400 -> `90m`."""
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    raise OpenSloError([f"{path}: {seconds} s is not a whole number of minutes, which OpenSLO durations need"])


def parse_shorthand(text: Any) -> int:
    """Seconds in an OpenSLO duration; calendar lengths (M, Q, Y) and malformed text raise ValueError."""
    m = _SHORTHAND.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not an OpenSLO duration (e.g. 5m, 1h, 30d, 2w)")
    if m.group(2) not in _UNIT_S:
        raise ValueError(f"{text!r}: months, quarters and years are calendar lengths, not supported")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


#: OpenSLO's calendar durations and the periods sloguard has; a start that is a Monday (week) or a 1st.
_CALENDAR_DURATIONS = {"1M": "month", "1w": "week", "7d": "week"}


_CALENDAR_START = "2024-01-01 00:00:00"  # a Monday and a 1st: midnight starting both kinds of period


def export_window(slo: Slo, path: str) -> dict[str, Any]:
    """A rolling `timeWindow`, or a calendar one (OpenSLO's timeZone is an Area/City name: UTC is Etc/UTC)."""
    if slo.calendar is None:
        return {"duration": shorthand(slo.window_s, f"{path}.window"), "isRolling": True}
    tz = "Etc/UTC" if slo.calendar.timezone == "UTC" else slo.calendar.timezone
    return {"duration": "1M" if slo.calendar.period == "month" else "1w", "isRolling": False,
            "calendar": {"startTime": _CALENDAR_START, "timeZone": tz}}


def import_window(d: _Doc, obj: dict[str, Any], windows: Any) -> int | dict[str, str] | None:
    """Seconds of a rolling window, or sloguard's `{calendar, timezone}` for a calendar one."""
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        d.fail(d.at(obj, "spec.timeWindow"), "required: one window, e.g. [{duration: 30d, isRolling: true}]")
        return None
    w = windows[0]
    if not w.get("isRolling") or "calendar" in w:
        return _calendar_window(d, obj, w)
    try:
        return parse_shorthand(w.get("duration"))
    except ValueError as e:
        d.fail(d.at(obj, "spec.timeWindow[0].duration"), str(e))
        return None


def _calendar_window(d: _Doc, obj: dict[str, Any], w: dict[str, Any]) -> dict[str, str] | None:
    """`{duration: 1M | 1w, isRolling: false, calendar: {startTime, timeZone}}` as a sloguard calendar
    window; sloguard's periods start at local midnight on the 1st (month) or a Monday (week)."""
    import datetime as dt

    path = "spec.timeWindow[0]"
    period = _CALENDAR_DURATIONS.get(str(w.get("duration")))
    if period is None:
        d.fail(d.at(obj, f"{path}.duration"), f"a calendar window of {w.get('duration')!r}: sloguard has calendar "
               "months (1M) and weeks (1w)")
        return None
    cal = w.get("calendar") if isinstance(w.get("calendar"), dict) else {}
    tz = cal.get("timeZone", "UTC")
    try:
        start = dt.datetime.strptime(str(cal.get("startTime", _CALENDAR_START)), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        d.fail(d.at(obj, f"{path}.calendar.startTime"), f"{cal.get('startTime')!r} is not 'YYYY-MM-DD hh:mm:ss'")
        return None
    aligned = start.time() == dt.time(0) and (start.day == 1 if period == "month" else start.weekday() == 0)
    if not aligned:
        d.fail(d.at(obj, f"{path}.calendar.startTime"),
               f"{cal.get('startTime')}: sloguard's calendar {period}s start at midnight on "
               f"{'the 1st' if period == 'month' else 'a Monday'}")
        return None
    return {"calendar": period, "timezone": "UTC" if tz == "Etc/UTC" else str(tz)}


class OpenSloError(ValueError):
    """What cannot be mapped; `problems` holds one `path: message` line each."""

    def __init__(self, problems: list[str], source: str = "OpenSLO") -> None:
        self.problems = problems
        super().__init__(f"{source}: cannot map:\n" + "\n".join(f"  - {p}" for p in problems))
