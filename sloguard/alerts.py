"""Alert rules and the firing/resolved state machine, with stable ids.

An alert is identified by its SLO, model, segment and rule: `alert_id` hashes them, so a repeat
or a restart produces the same id and receivers can deduplicate. `AlertBook` keeps which alerts
are firing and since when, and reports transitions only: `firing` once when a rule starts
holding, `resolved` once when it stops.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sloguard.policy import AlertRule

BUDGET_EXHAUSTED = "budget-exhausted"
NO_DATA = "no-data"


def alert_id(slo: str | None, model: str, segment_key: str, rule: str) -> str:
    """Stable fingerprint of slo + model + segment + rule (16 hex digits of SHA-256)."""
    text = "\x1f".join((slo or "", model, segment_key, rule))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rule_holds(rule: AlertRule, burn_long: float, burn_short: float) -> bool:
    """Multiwindow rule: both the long and the short window burn at least `rule.burn_rate`."""
    return burn_long >= rule.burn_rate and burn_short >= rule.burn_rate


@dataclass
class AlertBook:
    """Which (slo, segment, rule) alerts are firing, and since when (event time)."""

    firing: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def update(self, key: tuple[str, str, str], holds: bool, now: float) -> tuple[str | None, float]:
        """Record whether the rule holds at `now`; returns (transition or None, started_at)."""
        started = self.firing.get(key)
        if holds and started is None:
            self.firing[key] = now
            return "firing", now
        if not holds and started is not None:
            del self.firing[key]
            return "resolved", started
        return None, started if started is not None else now
