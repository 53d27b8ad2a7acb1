"""Argument types the commands share, so every flag reads a value the way the config file does."""

from __future__ import annotations

import argparse
import math

from sloguard.core.spec.timeutil import parse_duration


def duration_arg(text: str) -> float:
    """Seconds from a duration flag: the config's syntax (``90s``, ``5m``, ``1h30m``, ``7d``) or plain
    seconds (``90``, ``2.5``); anything else is argparse's one-line error and exit 2.

    >>> duration_arg("1h30m"), duration_arg("2.5")
    (5400.0, 2.5)
    """
    try:
        return float(parse_duration(text))
    except ValueError:
        pass
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90s, 5m, 1h30m, or seconds)") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be more than 0")
    return seconds


def duration_or_off_arg(text: str) -> float:
    """`duration_arg`, or 0 for ``0`` / ``off`` (a feature the flag can switch off).

    >>> duration_or_off_arg("30s"), duration_or_off_arg("off"), duration_or_off_arg("0")
    (30.0, 0.0, 0.0)
    """
    if text.strip().lower() == "off" or text.strip() in {"0", "0s", "0.0"}:
        return 0.0
    return duration_arg(text)
