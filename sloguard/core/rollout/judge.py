"""One rollout decision in the making (`Judgement`).

It gathers the findings of budgets, pages and the canary comparison, applies the overrides that
waive or freeze them, and picks the outcome. Pure: ``now`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sloguard.core.rollout.decision import BudgetState, Decision, Reason, segment_key
from sloguard.core.rollout.spec import HOLD, PROMOTE, ROLLBACK, SloInfo
from sloguard.core.spec.timeutil import format_duration, to_rfc3339
from sloguard.core.stats.canary import (
    FAIL,
    INCONCLUSIVE,
    BudgetContext,
    Comparison,
    compare_histograms,
    compare_ratio,
)

if TYPE_CHECKING:
    from sloguard.core.rollout.policy import RolloutState


class Judgement:
    """One decision in the making: collects findings, applies overrides, picks the outcome."""

    def __init__(self, state: RolloutState, model: str, version: str, now: float) -> None:
        self.state, self.spec, self.policy = state, state.spec, state.spec.policy
        self.model, self.version, self.now = model, version, now
        self.book = state.budgets.get(model, {})
        self.overrides = [o for o in self.spec.overrides if o.matches(model, version) and o.active(now)]
        self.reasons: list[Reason] = []
        self.waived: dict[int, list[str]] = {o.index: [] for o in self.overrides}
        self.budgets: dict[str, Any] = {}
        self.stable = state.stable_version(model, version)

    def run(self) -> Decision:
        for o in self.overrides:
            if o.effect == "freeze":
                message = f"promotions frozen until {to_rfc3339(o.expires_s)} by override #{o.index}: {o.reason}"
                self.reasons.append(Reason(f"freeze:{o.index}", HOLD, message))
        comparisons: list[Comparison] = []
        if self.model not in self.spec.slos:
            self.hold(f"unknown-model:{self.model}", f"model {self.model!r} is not in the config: nothing to judge")
        else:
            self.check_budgets()
            self.check_stable_budgets()
            mark = len(self.reasons)
            comparisons = self.check_canary()  # first: a page the canary shares with stable only holds
            canary_reasons = self.reasons[mark:]
            del self.reasons[mark:]
            self.check_alerts({c.slo: c for c in comparisons if c.p_value is not None and c.p_value >= c.alpha})
            self.reasons += canary_reasons
        outcomes = {r.outcome for r in self.reasons}
        decision = ROLLBACK if ROLLBACK in outcomes else HOLD if HOLD in outcomes else PROMOTE
        if decision == ROLLBACK and self.version == self.state.serving_stable(self.model):
            decision = self.keep_stable()
        # the reasons that decided it first (a rollback's rollbacks, a hold's holds), in check order
        self.reasons.sort(key=lambda r: r.outcome != decision)
        affected = []
        for o in self.overrides:
            d = o.as_dict()
            if o.effect == "allow":
                d["waived"] = self.waived[o.index]
            affected.append(d)
        return Decision(
            model=self.model,
            version=self.version,
            decision=decision,
            reasons=tuple(self.reasons),
            budgets=self.budgets,
            overrides=tuple(affected),
            canary=tuple(comparisons),
            ts=self.now,
            stable_version=self.stable,
        )

    # -- helpers --

    def keep_stable(self) -> str:
        """Never a rollback of the version in production: what would roll it back holds instead."""
        self.reasons = [Reason(r.code, HOLD, f"{r.message} (not applied: {self.version} is the stable version)",
                               r.dimension) if r.outcome == ROLLBACK else r for r in self.reasons]
        self.reasons.insert(0, Reason(
            "stable-no-rollback", HOLD,
            f"{self.model} {self.version} is the stable version (it serves variant=stable): a rollback would "
            "leave nothing to roll back to, so the controller holds and leaves production to its owner"))
        return HOLD

    def hold(self, code: str, message: str, dimension: str | None = None, *, waivable: bool = False) -> None:
        if waivable and dimension is not None:
            for o in self.overrides:
                if o.effect == "allow" and o.covers(dimension):
                    self.waived[o.index].append(message)
                    return
        self.reasons.append(Reason(code, HOLD, message, dimension))

    def rollback(self, code: str, message: str, dimension: str | None = None) -> None:
        self.reasons.append(Reason(code, ROLLBACK, message, dimension))

    def floor(self, slo: str, dimension: str) -> float | None:
        for o in self.overrides:
            if o.effect == "adjust" and o.covers(dimension):
                if slo in o.min_budget_remaining:
                    return o.min_budget_remaining[slo]
                if dimension in o.min_budget_remaining:
                    return o.min_budget_remaining[dimension]
        return self.policy.floor(slo, dimension)

    def stale(self, s: BudgetState) -> bool:
        return self.policy.max_staleness_s > 0 and s.ts < self.now - self.policy.max_staleness_s

    def whole(self, version: str | None, slo: str) -> BudgetState | None:
        """The budget state the policy reads for an SLO: the whole-model segment, or with
        ``segments: worst`` the non-variant segment with the least budget left."""
        if self.policy.segments == "whole":
            return self.latest(version, slo, "")
        skeys = {  # a {"version": ...} segment is one version's own: only the candidate's counts
            k
            for (_v, n, k), s in self.book.items()
            if n == slo and s.variant is None and s.segment.get("version", version) == version
        }
        found = [s for k in skeys if (s := self.latest(version, slo, k)) is not None and not self.stale(s)]
        if not found:
            return self.latest(version, slo, "")
        return min(found, key=lambda s: math.inf if s.remaining is None else s.remaining)

    def latest(self, version: str | None, slo: str, skey: str) -> BudgetState | None:
        """The newest state of one non-variant segment of an SLO, for ``version``.

        The flow keys the whole model and attribute segments (region, ...) by model, not by
        version: each budget event carries the version of its key's newest event, so while canary
        and stable serve side by side the model's budget is labelled with either of them. For a
        version that has been seen, the freshest state of the segment under any label is the
        model's current budget (its own label wins a tie); a version never seen has none.
        """
        exact = self.book.get((version, slo, skey))
        if version is None or (self.model, version) not in self.state.seen:
            return exact
        best = exact
        for (_v, n, k), s in self.book.items():
            if n == slo and k == skey and (best is None or s.ts > best.ts):
                best = s
        return best

    # -- checks --

    def check_budgets(self) -> None:
        """Every configured SLO needs fresh data; budgets above their floors; none exhausted."""
        names = [s.name for s in self.spec.slos.get(self.model, ())]
        extra = sorted({n for (v, n, _), _s in self.book.items() if v in (self.version, None)} - set(names))
        for name in names + extra:
            info = self.spec.slo(self.model, name)
            s = self.whole(self.version, name) or self.whole(None, name)
            dimension = info.dimension if info else (s.dimension if s else "infrastructure")
            floor = self.floor(name, dimension)
            entry: dict[str, Any] = {"dimension": dimension, "min_budget_remaining": floor}
            self.budgets[name] = entry
            if s is None:
                entry.update(status="no-data", budget_remaining=None)
                self.hold(
                    f"no-data:{name}",
                    f"{name} ({dimension}) has no budget data for {self.model} {self.version}: "
                    "missing data is never a pass",
                    dimension,
                )
                continue
            segment = segment_key(s.segment)
            entry.update(
                budget_remaining=s.remaining,
                sli=s.sli,
                objective=s.objective,
                window=format_duration(s.window_s) if s.window_s else None,
                ts=to_rfc3339(s.ts),
                version=s.version,
            )
            if segment:
                entry["segment"] = segment
            if s.low_traffic:
                entry["low_traffic"] = True
            where = f"{name} ({dimension}{', ' + segment if segment else ''})"
            if self.stale(s):
                entry["status"] = "stale"
                self.hold(
                    f"stale:{name}",
                    f"{where} last reported at {to_rfc3339(s.ts)}, more than "
                    f"{self.policy.max_staleness_s}s ago: stale data is never a pass",
                    dimension,
                )
            elif s.remaining is None:
                entry["status"] = "no-data"
                self.hold(f"no-data:{name}", f"{where} has no SLI value yet: missing data is never a pass", dimension)
            elif s.remaining <= 0 and self.policy.freeze_when_exhausted:
                entry["status"] = "exhausted"
                self.hold(
                    f"exhausted:{name}",
                    f"{where} has spent its error budget ({s.remaining:.0%} left): promotions are frozen "
                    "until it recovers",
                    dimension,
                    waivable=True,
                )
            elif floor is not None and s.remaining < floor:
                entry["status"] = "low"
                self.hold(
                    f"budget-low:{name}",
                    f"{where} has {s.remaining:.0%} of its error budget left, below the {floor:.0%} "
                    "required to roll out",
                    dimension,
                    waivable=True,
                )
            else:
                entry["status"] = "ok"

    def check_stable_budgets(self) -> None:
        """An exhausted budget of the version in production freezes promotions too."""
        if self.stable is None or not self.policy.freeze_when_exhausted:
            return
        for (v, name, skey), s in sorted(self.book.items(), key=lambda kv: kv[0][1]):
            if v != self.stable or skey != "" or self.stale(s) or s.remaining is None or s.remaining > 0:
                continue
            self.hold(
                f"stable-exhausted:{name}",
                f"{name} ({s.dimension}) of the stable version {self.stable} has spent its error budget "
                f"({s.remaining:.0%} left): promotions are frozen until it recovers",
                s.dimension,
                waivable=True,
            )

    def check_alerts(self, no_worse: Mapping[str, Comparison] | None = None) -> None:
        """Pages on the candidate: hard stops roll back, soft stops hold. Pages on stable hold.

        Where the flow keeps canary and stable apart (the SLO has ``{"variant": "canary"}`` budgets
        for the candidate; for a model-wide page without an SLO, any SLO has), only the canary's
        own segment speaks for it: a page on traffic both versions serve (the whole model, a
        region) carries the version of its newest event, not the version at fault, so it holds
        like a page on stable. The canary's own page rolls back
        unless production shares the incident: stable's ``{"variant": "stable"}`` segment pages on
        the same SLO, or the canary, with enough traffic, shows no significant difference from
        stable (``no_worse``: p >= alpha). A rollback would not end a shared incident: hold."""
        no_worse = no_worse or {}
        pages = [
            a
            for a in sorted(self.state.alerts.values(), key=lambda a: a.id)
            if a.model == self.model and a.severity == "page"
        ]
        stable_own = {a.slo for a in pages if a.segment == {"variant": "stable"} and a.version == self.stable}
        split_slos = {n for (v, n, k) in self.book if v == self.version and k == "variant=canary"}
        for a in pages:
            where = a.dimension + (f", {segment_key(a.segment)}" if a.segment else "")
            what = f"{a.rule} page on {a.slo or 'the model'} ({where})"
            since = f"firing since {to_rfc3339(a.started_at)}"
            cause = self.state.cause_of(a)
            if cause:  # the incident's cause first: what burned before this page
                since += f" (burned first: {cause})"
            if a.version in (self.version, None):
                # model-wide pages (no SLO, e.g. no-data) cover both versions once any SLO is split
                split = a.slo in split_slos if a.slo is not None else bool(split_slos)
                own = a.segment == {"variant": "canary"}
                shared = self.stable is not None and (a.slo in stable_own or a.slo in no_worse)
                if a.dimension in self.policy.hard_stop and split and not own:
                    self.hold(
                        f"mixed-page:{a.id}",
                        f"{what} is {since} on traffic both versions serve (labelled with its newest event's "
                        "version); the canary's own traffic is judged apart: hold",
                        a.dimension,
                        waivable=True,
                    )
                elif a.dimension in self.policy.hard_stop and split and shared:
                    c = no_worse.get(a.slo or "")
                    why = (
                        f"the canary is no worse than stable {self.stable} on it (one-sided p = {c.p_value:.2g})"
                        if c is not None and c.p_value is not None
                        else f"stable {self.stable} pages on it too"
                    )
                    self.hold(
                        f"shared-page:{a.id}",
                        f"{what} is {since}, but {why}: production shares the incident and a rollback would "
                        "not end it: hold",
                        a.dimension,
                        waivable=True,
                    )
                elif a.dimension in self.policy.hard_stop:
                    self.rollback(
                        f"page:{a.id}",
                        f"{what} is {since}; {a.dimension} is a hard stop: roll back",
                        a.dimension,
                    )
                else:
                    self.hold(
                        f"page:{a.id}",
                        f"{what} is {since}; {a.dimension} is a soft stop: hold",
                        a.dimension,
                        waivable=True,
                    )
            elif a.version == self.stable:
                self.hold(
                    f"stable-page:{a.id}",
                    f"production is paging: {what} on the stable version {a.version} is {since}: hold",
                    a.dimension,
                    waivable=True,
                )

    def check_canary(self) -> list[Comparison]:
        """Canary vs stable on each canary SLO; no data, too little data or stale data hold."""
        spec = self.spec.canary
        if not spec.enabled:
            return []
        slos = self.spec.canary_slos(self.model)
        if not slos:
            self.hold(
                "canary-no-slos",
                f"canary analysis is on but {self.model} has no SLO to compare canary and stable on "
                "(set rollout.canary.slos)",
            )
            return []
        out = []
        for info in slos:
            canary = self.book.get((self.version, info.name, "variant=canary"))
            stable = self.book.get((self.stable, info.name, "variant=stable")) if self.stable else None
            missing = []
            if canary is None or self.stale(canary):
                missing.append(f"no {'fresh ' if canary else ''}canary traffic of {self.version}")
            if stable is None or self.stale(stable):
                missing.append(
                    f"no {'fresh ' if stable else ''}stable traffic" + (f" of {self.stable}" if self.stable else "")
                )
            if missing:
                self.hold(
                    f"canary-no-data:{info.name}",
                    f"{info.name}: {' and '.join(missing)} (budget events with segment "
                    '{"variant": "canary"|"stable"}): missing data is never a pass',
                    info.dimension,
                )
                continue
            assert canary is not None and stable is not None
            c = self.compare(info, canary, stable)
            out.append(c)
            if c.verdict == FAIL:
                self.rollback(f"canary-worse:{info.name}", c.message + ": roll back", info.dimension)
            elif c.verdict == INCONCLUSIVE:
                self.hold(f"canary-inconclusive:{info.name}", c.message, info.dimension)
            elif spec.blast_radius and c.blast_exceeded and c.blast is not None:
                b = c.blast
                days = (b.time_to_exhaustion_s or 0) / 86_400
                self.hold(
                    f"blast-radius:{info.name}",
                    f"{info.name}: at full traffic the canary's bad rate would burn the budget "
                    f"{b.burn_rate:.2g}x and spend the {b.remaining:.0%} left in {days:.3g} days, within the "
                    f"{(b.window_s or 0) / 86_400:g}-day SLO window: hold",
                    info.dimension,
                )
        return out

    def compare(self, info: SloInfo, canary: BudgetState, stable: BudgetState) -> Comparison:
        spec = self.spec.canary
        ch, sh = canary.histogram, stable.histogram
        if ch is not None and sh is not None and ch["edges"] == sh["edges"]:
            return compare_histograms(
                info.name,
                ch["edges"],
                ch["counts"],
                sh["counts"],
                alpha=spec.alpha,
                min_samples=spec.min_samples,
                min_effect=spec.min_effect,
                higher_is_worse=info.higher_is_worse,
                unit=info.unit,
            )
        target = canary.target if canary.target is not None else info.target
        eb = 1 - target if target is not None and target < 1 else None
        c_counts, used = canary.counts(spec.lookback, eb)
        s_counts, _ = stable.counts(used, eb)
        budget = None
        if spec.blast_radius and eb:
            prod = self.book.get((self.stable, info.name, "")) or stable
            if prod.remaining is not None:
                budget = BudgetContext(eb, prod.remaining, float(prod.window_s or info.window_s))
        return compare_ratio(
            info.name,
            c_counts,
            s_counts,
            alpha=spec.alpha,
            min_samples=spec.min_samples,
            min_effect=spec.min_effect,
            budget=budget,
            lookback=used or (_window_label(canary) if canary.window_s else None),
        )


def _window_label(s: BudgetState) -> str | None:
    return f"the {format_duration(s.window_s)} SLO window" if s.window_s else None
