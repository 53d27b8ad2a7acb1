"""Which SLO of a model started burning first: the likely cause of an incident.

The seeds' cascade is bad data -> bad predictions -> retries -> load: a feature pipeline goes stale,
recall drops some minutes later. Every budget event says how fast its key burns; this module keeps,
per (SLO, segment key), the current *burn streak*: the ticks during which any of the SLO's page
rules burns over its short window at least at the rule's rate (an SLO without page rules: any
rule). A streak starts at the event time its burn refers to, which for labelled SLOs is
`burn_rates_to` (where judgement has reached), not the tick that reported it: a recall drop is
dated when the bad predictions were made, not when their labels arrived.

When an alert fires for a key, the start of the key's streak is recorded with it (`Candidate`).
An incident's cause is, among the candidates that fired within `lookback` of the incident opening
(or still fire), the one whose streak started first; its lead is how long before the earliest of
the incident's own keys of another SLO it started (the cause may be one of the incident's own SLOs
when it groups several, e.g. by dimension). Only alerting keys are candidates: a short window of a tight
objective crosses its threshold on noise, an alert (two windows) does not.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sloguard.core.spec.timeutil import format_duration, parse_rfc3339, to_rfc3339

if TYPE_CHECKING:
    from sloguard.core.messages.outputs import Alert, Budget

Key = tuple[str, str]  # (slo, segment key text)


@dataclass(frozen=True)
class SloBurn:
    """What makes one SLO's key "burning": (short window label, burn rate) of its page rules."""

    dimension: str
    thresholds: tuple[tuple[str, float], ...]


@dataclass
class Streak:
    start: float  # event time the first burning tick referred to (labelled SLOs: its burn_rates_to)
    last: float  # the latest burning tick
    ended: bool = False


@dataclass
class Candidate:
    """An alert that fired, with when its key started burning."""

    slo: str
    dimension: str
    segment: dict[str, str]
    burn_start: float
    fired_at: float

    def describe(self) -> str:
        seg = ",".join(f"{k}={v}" for k, v in self.segment.items())
        return f"{self.slo} ({self.dimension}{', ' + seg if seg else ''})"


@dataclass
class CauseState:
    streaks: dict[Key, Streak] = field(default_factory=dict)
    candidates: dict[Key, Candidate] = field(default_factory=dict)


def _minutes(seconds: float) -> str:
    return format_duration(round(seconds / 60.0) * 60) if seconds >= 60 else f"{seconds:.0f}s"


class CauseTracker:
    """Burn streaks and alerting keys of one model (see the module docstring)."""

    def __init__(self, slos: Mapping[str, SloBurn], lookback_s: float, state: CauseState | None = None) -> None:
        self.slos = dict(slos)
        self.lookback_s = float(lookback_s)
        self.state = state or CauseState()

    def observe_budget(self, event: Budget, key: str, t: float) -> None:
        """One budget event of tick `t` for (its SLO, `key`). Called for every budget event: kept cheap."""
        spec = self.slos.get(event.slo)
        if spec is None:
            return
        burns = event.burn_rates
        burning = False
        if burns:
            for label, rate in spec.thresholds:
                b = burns.get(label)
                if b is not None and b >= rate:
                    burning = True
                    break
        k = (event.slo, key)
        st = self.state.streaks.get(k)
        if burning:
            if st is None or st.ended:  # a streak starts when the burn it reports happened
                to = event.burn_rates_to
                at = (parse_rfc3339(to) or t) if isinstance(to, str) else t
                self.state.streaks[k] = Streak(at, t)
            else:
                st.last = t  # the tick: how long ago it last burned, for forgetting it
        elif st is not None and not st.ended:
            st.ended = True

    def observe_firing(self, alert: Alert, key: str, t: float) -> None:
        """An alert fired at tick `t`: its key becomes a cause candidate."""
        slo = alert.slo
        if not slo:
            return
        k = (str(slo), key)
        st = self.state.streaks.get(k)
        start = t
        if st is not None and (not st.ended or t - st.last <= self.lookback_s):
            start = min(st.start, t)
        old = self.state.candidates.get(k)
        if old is not None and t - old.fired_at <= self.lookback_s:
            start = min(start, old.burn_start)  # another rule of the same key, same burn
        self.state.candidates[k] = Candidate(slo, alert.dimension, dict(alert.segment), start, t)

    def prune(self, t: float, firing: Iterable[Key]) -> None:
        """Forget what can no longer matter: candidates older than the look-back that no longer
        fire, streaks that ended before it."""
        live = set(firing)
        horizon = t - self.lookback_s
        st = self.state
        st.candidates = {k: c for k, c in st.candidates.items() if c.fired_at >= horizon or k in live}
        st.streaks = {k: s for k, s in st.streaks.items() if not s.ended or s.last >= horizon}

    def cause(self, own: Iterable[Key], opened_at: float, firing: Iterable[Key]) -> dict[str, Any] | None:
        """The incident's likely cause: the candidate whose burn started first, and its lead over
        the incident's own keys (`own`), or None when none of them is a candidate."""
        live = set(firing)
        horizon = opened_at - self.lookback_s
        pool = [c for k, c in self.state.candidates.items()
                if (c.fired_at >= horizon or k in live) and c.burn_start >= horizon]
        own = set(own)
        mine = [c for k, c in self.state.candidates.items() if k in own]
        if not pool or not mine:
            return None
        order = sorted(pool, key=lambda c: (c.burn_start, c.fired_at, c.slo, sorted(c.segment.items())))
        first = order[0]
        own_first = min(mine, key=lambda c: (c.burn_start, c.fired_at, c.slo, sorted(c.segment.items())))
        # the lead over the incident's own SLOs other than the first one's (an incident grouped by
        # dimension may hold the cause itself: stale features before data quality)
        later = [c for c in mine if c.slo != first.slo]
        target = min(later, key=lambda c: (c.burn_start, c.fired_at, c.slo)) if later else None
        lead = max(0.0, target.burn_start - first.burn_start) if target is not None else 0.0
        if target is not None and lead > 0:
            summary = f"{first.describe()} started burning {_minutes(lead)} before {target.slo}"
        else:
            summary = f"{own_first.describe()} burned first: no other SLO of the model alerted earlier within " \
                      f"{format_duration(int(self.lookback_s))}"
            first, lead = own_first, 0.0
        others = []
        for c in order:
            if c is first or any(o["slo"] == c.slo for o in others) or c.slo == first.slo:
                continue
            others.append({"slo": c.slo, "dimension": c.dimension, "segment": c.segment,
                           "burning_since": to_rfc3339(c.burn_start)})
        return {
            "slo": first.slo,
            "dimension": first.dimension,
            "segment": first.segment,
            "burning_since": to_rfc3339(first.burn_start),
            "lead_s": round(lead, 3),
            "summary": summary,
            "also_burning": others[:3],
        }
