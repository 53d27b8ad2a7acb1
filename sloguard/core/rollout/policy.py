"""The error-budget policy of rollouts: promote, hold or roll back a model version, and why.

Error budgets exist to govern change. This module folds ``slo.budget`` and ``slo.alerts`` events
into the latest state per model, version, SLO and segment (`RolloutState.apply`) and turns that
state into a `Decision` for one model version (`RolloutState.decide(model, version, now)`):

* **rollback** when a *hard-stop* dimension (default: infrastructure, fairness) has a firing
  page on the candidate version, or the canary is statistically worse than stable (p < alpha);
* **hold** when a *soft-stop* dimension (default: quality, data, drift) pages, a budget is below
  its floor (``min_budget_remaining``), a budget is exhausted (promotions freeze until it
  recovers, also when it is the stable version's budget that is spent), production (stable)
  pages, a hard-stop page on the candidate is one production shares (an incident both versions
  serve, which a rollback would not end; see `Judgement.check_alerts`), a freeze override is active,
  the canary lacks traffic for a verdict, or the canary's bad rate at full traffic would spend the
  remaining budget within the SLO window;
* **promote** only when every configured SLO of the model has fresh data and every check passes.
  Missing or stale data is never a pass (Kayenta's *mustHaveData*).

Overrides (``rollout.overrides``) carry a reason and an expiry and are recorded in every decision
they affect. ``effect: freeze`` holds promotions (a peak-traffic period); ``effect: allow``
waives budget floors, exhaustion freezes, soft-stop pages and stable pages for its dimensions
(a hotfix); ``effect: adjust`` replaces floors while active. No override waives a hard-stop page
on the candidate, a statistically significant canary regression, or missing data.

Pure: no I/O and no clock; ``now`` is passed in. The config shape, under ``rollout:`` in the
sloguard YAML (read with `parse_rollout`)::

    rollout:
      policy:
        min_budget_remaining: {infrastructure: 0.5, fairness: 0.75, quality: 0.3}  # or per SLO name
        hard_stop: [infrastructure, fairness]   # a firing page -> rollback
        soft_stop: [quality, data, drift]       # a firing page -> hold
        freeze_when_exhausted: true             # budget <= 0 -> hold until it recovers
        max_staleness: 15m                      # older budget state counts as missing (0: never)
        segments: whole                         # whole: the {} segment; worst: worst segment
      canary:
        slos: [fraud-availability, fraud-latency]  # default: the model's occurrence SLOs
        alpha: 0.05
        min_samples: 1000                       # per variant, before any verdict
        lookback: 1h                            # burn window to compare over (null: SLO window)
        blast_radius: true
      overrides:
        - {model: fraud, effect: freeze, reason: "Black Friday peak", expires: 2026-11-30T00:00:00Z}

`replay_decisions(spec, events)` runs the same judgement over a file of events in event time
(backtests, the demo); `sloguard.connectors.controller` runs it on Kafka and serves it over HTTP.

Canary and stable traffic are read from budget events whose segment is ``{"variant": ...}``
(add ``variant`` to the model's segments); stable is the latest version seen with
``variant=stable``. The flow keys the whole model (and region-like segments) by model, not by
version, and labels each budget event with the version of its key's newest event: for a version
that has been seen, the policy reads the freshest whole-model budget under any label, and a page
on such a segment speaks for the canary only where no ``{"variant": "canary"}`` data exists.
Budget events may carry ``histogram: {"edges": [...], "counts": [...]}`` for a Mann-Whitney
comparison of latency-like SLIs (`sloguard.core.stats.canary`).

The package reads in four parts: `spec` (the ``rollout:`` section), `decision` (the folded budget
and alert state, the `Decision`), `judge` (one judgement) and this module (the fold and the replay).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sloguard.core.rollout.decision import (
    AlertState,
    BudgetState,
    Decision,
    read_histogram,
    read_num_map,
    read_opt_num,
    read_segment,
    read_str,
    read_ts,
    segment_key,
)
from sloguard.core.rollout.judge import Judgement
from sloguard.core.rollout.spec import (
    InvalidEvent,
    RolloutSpec,
)
from sloguard.core.spec.timeutil import parse_duration

__all__ = ["RolloutState", "replay_decisions"]


# -- spec ------------------------------------------------------------------------------------


# -- state -----------------------------------------------------------------------------------


class RolloutState:
    """The latest budget state per model, version, SLO and segment, and the firing alerts.

    `apply` folds one event; `decide` judges one model version at a given time; `snapshot` and
    `from_snapshot` round-trip the state through plain JSON-able data.
    """

    def __init__(self, spec: RolloutSpec) -> None:
        self.spec = spec
        # model -> (version, slo, segment key) -> state
        self.budgets: dict[str, dict[tuple[str | None, str, str], BudgetState]] = {}
        self.alerts: dict[str, AlertState] = {}
        self.resolved: dict[str, tuple[float, str, str | None]] = {}  # id -> (ts, model, version)
        self.seen: dict[tuple[str, str], float] = {}  # (model, version) -> latest event ts
        self.causes: dict[str, dict[str, Any]] = {}  # open incident id -> its cause (slo.incidents)

    # -- folding --

    def apply(self, event: Mapping[str, Any]) -> str:
        """Fold a ``slo.budget`` or ``slo.alerts`` event; returns its model.

        Raises `InvalidEvent` (naming the field) for anything that is not one of them.
        """
        if not isinstance(event, Mapping):
            raise InvalidEvent(f"not a JSON object: {type(event).__name__}")
        kind = event.get("type")
        if kind == "budget":
            return self._apply_budget(event)
        if kind == "alert":
            return self._apply_alert(event)
        if kind == "incident":
            return self._apply_incident(event)
        raise InvalidEvent(f"type: must be budget, alert or incident, got {kind!r}")

    def _apply_incident(self, e: Mapping[str, Any]) -> str:
        """An incident message: keep the cause of open incidents, to say what burned first."""
        ident, model = read_str(e, "id"), read_str(e, "model")
        assert ident is not None and model is not None
        cause = e.get("cause")
        if e.get("state") == "resolved":
            self.causes.pop(ident, None)
        elif isinstance(cause, Mapping) and cause.get("summary"):
            self.causes[ident] = {"model": model, "summary": str(cause["summary"]),
                                  "lead_s": float(cause.get("lead_s") or 0.0), "slo": cause.get("slo")}
        return model

    def cause_of(self, alert: AlertState) -> str | None:
        """What burned first in the alert's incident, when it was another SLO (None otherwise)."""
        cause = self.causes.get(alert.incident_id or "")
        return cause["summary"] if cause and cause["lead_s"] > 0 else None

    def _apply_budget(self, e: Mapping[str, Any]) -> str:
        model, slo = read_str(e, "model"), read_str(e, "slo")
        version = read_str(e, "version", null=True)
        dimension = read_str(e, "dimension")
        assert model is not None and slo is not None and dimension is not None
        segment = read_segment(e)
        ts = read_ts(e.get("ts"), "ts")
        good, total = read_opt_num(e, "good"), read_opt_num(e, "total")
        if good is None or total is None or good < 0 or total < 0:
            raise InvalidEvent(f"good/total: must be numbers >= 0, got {e.get('good')!r}/{e.get('total')!r}")
        window = e.get("window")
        try:
            window_s = parse_duration(window) if window is not None else None
        except ValueError as err:
            raise InvalidEvent(f"window: {err}") from None
        skey = segment_key(segment)
        is_variant = len(segment) == 1 and "variant" in segment
        if segment and not is_variant and self.spec.policy.segments != "worst":
            self._touch(model, version, ts)
            return model  # only whole-model and variant segments matter to this policy
        state = BudgetState(
            slo=slo,
            dimension=dimension,
            model=model,
            version=version,
            segment=segment,
            ts=ts,
            sli=read_opt_num(e, "sli"),
            objective=read_opt_num(e, "objective"),
            target=read_opt_num(e, "target"),
            window_s=window_s,
            good=good,
            total=total,
            remaining=read_opt_num(e, "budget_remaining"),
            burn_rates=read_num_map(e, "burn_rates"),
            events=read_num_map(e, "events"),
            low_traffic=bool(e.get("low_traffic")),
            histogram=read_histogram(e.get("histogram")),
        )
        book = self.budgets.setdefault(model, {})
        key = (version, slo, skey)
        old = book.get(key)
        if old is None or old.ts <= ts:
            book[key] = state
        self._touch(model, version, ts)
        return model

    def _apply_alert(self, e: Mapping[str, Any]) -> str:
        ident, model = read_str(e, "id"), read_str(e, "model")
        assert ident is not None and model is not None
        version = read_str(e, "version", null=True)
        state = e.get("state")
        if state not in ("firing", "resolved"):
            raise InvalidEvent(f"state: must be firing or resolved, got {state!r}")
        severity = e.get("severity")
        if severity not in ("page", "ticket"):
            raise InvalidEvent(f"severity: must be page or ticket, got {severity!r}")
        dimension = read_str(e, "dimension")
        ts = read_ts(e.get("ts"), "ts")
        old = self.alerts.get(ident)
        gone = self.resolved.get(ident)
        if (old is not None and old.ts > ts) or (gone is not None and gone[0] > ts):
            return model  # an older transition arriving late
        if state == "resolved":
            self.alerts.pop(ident, None)
            self.resolved[ident] = (ts, model, version)
        else:
            self.resolved.pop(ident, None)
            slo = e.get("slo")
            self.alerts[ident] = AlertState(
                id=ident,
                model=model,
                version=version,
                slo=slo if isinstance(slo, str) else None,
                dimension=dimension or "infrastructure",
                severity=severity,
                rule=str(e.get("rule") or ""),
                segment=read_segment(e),
                started_at=read_ts(e.get("started_at", e.get("ts")), "started_at"),
                ts=ts,
                summary=str(e.get("summary") or ""),
                incident_id=e.get("incident_id") if isinstance(e.get("incident_id"), str) else None,
            )
        self._touch(model, version, ts)
        return model

    def _touch(self, model: str, version: str | None, ts: float) -> None:
        if version is not None:
            k = (model, version)
            if ts > self.seen.get(k, -math.inf):
                self.seen[k] = ts

    # -- queries --

    def versions(self, model: str | None = None) -> list[tuple[str, str]]:
        """(model, version) pairs seen, most recent first."""
        pairs = [k for k in self.seen if model is None or k[0] == model]
        return sorted(pairs, key=lambda k: -self.seen[k])

    def candidates(self, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """The (model, version) pairs worth deciding on: versions serving as canary (every version
        seen when canary analysis is off), plus the ``extra`` pairs that have been seen."""
        if self.spec.canary.enabled:
            pairs = {
                (m, v)
                for m, book in self.budgets.items()
                for (v, _slo, skey) in book
                if skey == "variant=canary" and v is not None
            }
        else:
            pairs = set(self.seen)
        pairs |= {p for p in extra if p in self.seen}
        return sorted(pairs)

    def latest_ts(self) -> float | None:
        """Event time of the newest event folded (an event-time clock for replays)."""
        return max(self.seen.values(), default=None)

    def stable_version(self, model: str, candidate: str | None = None) -> str | None:
        """The version most recently seen serving ``variant=stable`` (not the candidate)."""
        best, best_ts = None, -math.inf
        for (version, _slo, skey), s in self.budgets.get(model, {}).items():
            if skey == "variant=stable" and version is not None and version != candidate and s.ts > best_ts:
                best, best_ts = version, s.ts
        return best

    def serving_stable(self, model: str) -> str | None:
        """The version whose ``variant=stable`` traffic was seen last: production, now."""
        return self.stable_version(model, None)

    def canary_version(self, model: str) -> str | None:
        """The version most recently seen serving ``variant=canary``."""
        best, best_ts = None, -math.inf
        for (version, _slo, skey), s in self.budgets.get(model, {}).items():
            if skey == "variant=canary" and version is not None and s.ts > best_ts:
                best, best_ts = version, s.ts
        return best

    def prune(self, now: float, keep_s: float) -> int:
        """Forget versions with no event for ``keep_s``; returns how many (model, version) went."""
        old = {k for k, t in self.seen.items() if t < now - keep_s}
        for model, version in old:
            book = self.budgets.get(model, {})
            for key in [k for k in book if k[0] == version]:
                del book[key]
            del self.seen[(model, version)]
        for ident in [i for i, a in self.alerts.items() if (a.model, a.version) in old]:
            del self.alerts[ident]
        for ident in [i for i, (t, m, v) in self.resolved.items() if (m, v) in old or t < now - keep_s]:
            del self.resolved[ident]
        return len(old)

    # -- snapshot --

    def snapshot(self) -> dict[str, Any]:
        """Plain data (JSON-able) holding the whole state; no side effects."""
        return {
            "v": 1,
            "budgets": [s.as_dict() for book in self.budgets.values() for s in book.values()],
            "alerts": [a.as_dict() for a in self.alerts.values()],
            "resolved": [[i, t, m, v] for i, (t, m, v) in self.resolved.items()],
            "seen": [[m, v, t] for (m, v), t in self.seen.items()],
            "causes": self.causes,
        }

    @classmethod
    def from_snapshot(cls, spec: RolloutSpec, snapshot: Mapping[str, Any]) -> RolloutState:
        state = cls(spec)
        for d in snapshot.get("budgets", []):
            s = BudgetState(**d)
            state.budgets.setdefault(s.model, {})[(s.version, s.slo, segment_key(s.segment))] = s
        for d in snapshot.get("alerts", []):
            a = AlertState(**d)
            state.alerts[a.id] = a
        for i, t, m, v in snapshot.get("resolved", []):
            state.resolved[i] = (float(t), m, v)
        for m, v, t in snapshot.get("seen", []):
            state.seen[(m, v)] = float(t)
        state.causes = {k: dict(v) for k, v in (snapshot.get("causes") or {}).items()}
        return state

    # -- the decision --

    def decide(self, model: str, version: str, now: float) -> Decision:
        """Promote, hold or roll back ``version`` of ``model`` at time ``now`` (epoch seconds)."""
        return Judgement(self, model, version, now).run()


def replay_decisions(
    spec: RolloutSpec, events: Iterable[Mapping[str, Any]], *, errors: list[str] | None = None
) -> Iterator[Decision]:
    """Fold events in order and yield each decision that changes, judged in event time.

    At every new event-time tick each candidate (`RolloutState.candidates`) is decided with
    ``now`` = the tick. For backtests and the demo; the controller does the same on Kafka. Invalid events are
    skipped (their reasons appended to ``errors`` when given).
    """
    state = RolloutState(spec)
    last: dict[tuple[str, str], tuple] = {}
    tick: float | None = None

    def flush(now: float) -> Iterator[Decision]:
        for model, version in state.candidates():
            d = state.decide(model, version, now)
            if last.get((model, version)) != d.fingerprint:
                last[(model, version)] = d.fingerprint
                yield d

    for e in events:
        try:
            if not isinstance(e, Mapping) or e.get("type") not in ("budget", "alert", "incident"):
                state.apply(e)  # raises the reason
            ts = read_ts(e.get("ts"), "ts")
            if tick is not None and ts > tick:
                yield from flush(tick)
            state.apply(e)
            tick = ts if tick is None else max(tick, ts)
        except InvalidEvent as err:
            if errors is not None:
                errors.append(str(err))
    if tick is not None:
        yield from flush(tick)
