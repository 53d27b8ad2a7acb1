"""Alert rules and the firing/resolved state machine, with stable ids.

An alert is identified by its SLO, model, segment and rule: `alert_id` hashes them, so a repeat
or a restart produces the same id and receivers can deduplicate. `AlertBook` keeps which alerts
are firing and since when, and reports transitions only: `firing` once when a rule starts
holding, `resolved` once it has stopped holding for the resolve hold.

**Hysteresis.** A rule that stops holding is not resolved at once: it stays firing (and is
reported as `resolving` in budget events) until it has been false at every tick for
`alerting.resolve_hold` (default five evaluation intervals; for timeslice SLOs at least one slice,
since their rules change only when a slice is judged). If it holds again within the hold, nothing
is sent: a burn that dips under its threshold for a tick or a slice is one alert, not
fire-resolve-fire. Holds run in event time, so replays and live runs resolve at the same tick.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sloguard.core.spec.policy import AlertRule

BUDGET_EXHAUSTED = "budget-exhausted"
NO_DATA = "no-data"


def alert_id(slo: str | None, model: str, segment_key: str, rule: str) -> str:
    """Stable fingerprint of slo + model + segment + rule (16 hex digits of SHA-256)."""
    text = "\x1f".join((slo or "", model, segment_key, rule))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rule_holds(rule: AlertRule, burn_long: float, burn_short: float) -> bool:
    """Multiwindow rule: both the long and the short window burn at least `rule.burn_rate`."""
    return burn_long >= rule.burn_rate and burn_short >= rule.burn_rate


AlertKey = tuple[str, str, str]  # (slo, segment key, rule)


@dataclass
class AlertBook:
    """Which (slo, segment, rule) alerts are firing, since when, and which of them are waiting
    out their resolve hold (event time)."""

    firing: dict[AlertKey, float] = field(default_factory=dict)
    clearing: dict[AlertKey, float] = field(default_factory=dict)  # firing, but the rule false since
    silenced: dict[AlertKey, str] = field(default_factory=dict)  # fired during a silence (adjustment id)
    # firing alerts' (severity, dimension, owner route): what their resolve must say should the SLO
    # or rule that raised them leave the config (see `orphans`)
    meta: dict[AlertKey, tuple[str, str, str | None]] = field(default_factory=dict)

    def __setstate__(self, state: dict) -> None:  # recovery state written before these fields existed
        self.__dict__.update({"clearing": {}, "silenced": {}, "meta": {}, **state})

    def update(self, key: AlertKey, holds: bool, now: float, hold_s: float = 0.0) -> tuple[str | None, float]:
        """Record whether the rule holds at `now`; returns (transition or None, started_at).

        A firing alert whose rule stops holding resolves once it has been false for `hold_s`
        (0: at once); holding again before that cancels the resolve.
        """
        started = self.firing.get(key)
        if holds:
            self.clearing.pop(key, None)
            if started is None:
                self.firing[key] = now
                return "firing", now
            return None, started
        if started is None:
            return None, now
        since = self.clearing.setdefault(key, now)
        if now - since >= hold_s:
            del self.firing[key], self.clearing[key]
            self.meta.pop(key, None)
            return "resolved", started
        return None, started

    def orphans(self, rules: dict[str, set[str]]) -> list[AlertKey]:
        """Firing alerts whose SLO or rule is not in `rules` (SLO name -> its rule names): left
        behind by a resume with another config. Nothing would ever resolve them."""
        return [k for k in self.firing if k[0] is not None and k[2] not in rules.get(k[0], ())]

    def retire(self, key: AlertKey) -> tuple[float, tuple[str, str, str | None] | None]:
        """Forget a firing alert (not its silence, see Report): (started at, its meta if known)."""
        self.clearing.pop(key, None)
        return self.firing.pop(key), self.meta.pop(key, None)

    def holding(self, segment_key: str) -> bool:
        """Whether an alert of this segment key waits out its resolve hold or fired silenced (it
        must be judged at every tick, even when nothing new reached the key)."""
        return any(k[1] == segment_key for k in self.clearing) or any(k[1] == segment_key for k in self.silenced)
