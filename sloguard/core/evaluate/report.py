"""Budget events and alert transitions of one key and SLO at a tick: what the judge reports.

For every key and SLO at each tick: bad and total over the SLO window and over every burn window
(events for ratio SLOs, time slices for metric SLOs; labelled SLOs read their burn windows up to
the newest slice labels have judged), the budget left, burn rates, the multiwindow rules through
the `AlertBook`, and one `budget` event; an `alert` event for each rule that starts or stops
holding. `no_data` fires when a model that has sent events sends none for `no_data_after`.
Both are built as their Structs (`sloguard.core.messages.outputs.Budget`, `Alert`), which the flow
carries as they are to its sinks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgspec.structs import replace

from sloguard.core.evaluate.aggregate import EVENTS
from sloguard.core.evaluate.alerts import BUDGET_EXHAUSTED, NO_DATA, alert_id, rule_holds
from sloguard.core.evaluate.label_coverage import describe as describe_coverage
from sloguard.core.evaluate.slices import explain
from sloguard.core.messages.outputs import (
    Adjustment,
    AdjustmentRef,
    Alert,
    Budget,
    CalendarPeriod,
    Counted,
    LowTraffic,
    Output,
    RuleWindows,
)
from sloguard.core.spec.model import Owner, Slo
from sloguard.core.spec.policy import AlertRule
from sloguard.core.spec.timeutil import format_duration, to_rfc3339
from sloguard.core.stats.budget import budget_remaining, budget_text

if TYPE_CHECKING:
    from sloguard.core.evaluate.judge import Judge
    from sloguard.core.evaluate.judge_state import KeyState
    from sloguard.core.spec import adjustments


class Report:
    """Builds the judge's output messages (see the module docstring)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.plan = judge.plan
        self.model = judge.plan.name
        self.ts_text = ""
        plan = judge.plan
        # per SLO, what every budget event of it reads: columns, 1 - target, timeslice or not, slice
        # width, burn windows and their labels
        self.static = [(plan.layout.columns[i], s.error_budget, plan.metric[i], s.budgeting.slice_s,
                        plan.burn_windows[i], [plan.window_label[w] for w in plan.burn_windows[i]])
                       for i, s in enumerate(plan.slos)]

    def tick(self, t: float) -> None:
        self.ts_text = to_rfc3339(t)

    def slo(self, key: KeyState, i: int, slo: Slo, sums: dict[int, list[float]], tick: list[float], t: float,
            out: list[Output], period: tuple[float, float, list[float]] | None = None) -> None:
        """The budget event of one key and SLO at tick `t`, and its alert transitions.

        `period` is a calendar SLO's (start, end, sums so far): its budget counts from the start,
        and for timeslices against every slice of the whole period (calendar.py)."""
        plan, judge = self.plan, self.judge
        c, eb, metric, slice_s, windows, labels = self.static[i]
        w = sums[slo.window_s] if period is None else period[2]
        if not any(w):
            return
        window_slices = (slo.window_s if period is None else period[1] - period[0]) / slice_s if metric else 0.0
        labelled = judge.labelled_bad(key, i) if slo.sli.spec.labelled else None
        read = labelled[1] if labelled is not None else {}
        # (bad, total) over each window: bad slices of all slices, or bad events of all; burn rate =
        # (bad / total) / (1 - target), 0 over an empty window (budget.burn_rate, inlined: the judge
        # writes one budget event per key, SLO and tick)
        if slo.window_s in read:
            bad, total = read[slo.window_s], window_slices
        elif metric:
            bad, total = w[c.total], window_slices
        else:
            bad, total = w[c.total] - w[c.good], w[c.total]
        remaining = budget_remaining(bad, total, eb)
        burns: dict[int, float] = {}
        burn_labels: dict[str, float] = {}
        events: dict[str, int] = {}
        for ws, text in zip(windows, labels, strict=True):
            v = sums[ws]
            if ws in read:
                bad_w, total_w = read[ws], ws / slice_s
            elif metric:
                bad_w, total_w = v[c.total], ws / slice_s
            else:
                bad_w, total_w = v[c.total] - v[c.good], v[c.total]
            rate = (bad_w / total_w) / eb if total_w > 0 else 0.0
            burns[ws] = rate
            burn_labels[text] = round(rate, 4)
            events[text] = int(v[EVENTS])
        low_traffic = {}
        # the guard counts events; completeness counts each event's expected feature values
        per_event = max(1, len(plan.model.features)) if slo.sli.kind == "completeness" else 1
        firing = []
        book = judge.state.book  # a rule whose state does not change needs no transition
        for rule in slo.rules:
            holds = rule_holds(rule, burns[rule.long_window_s], burns[rule.short_window_s])
            if holds and not metric:
                seen = sums[rule.long_window_s][c.total] / per_event
                if seen < slo.min_events:
                    holds = False
                    low_traffic[rule.name] = LowTraffic(window=format_duration(rule.long_window_s),
                                                        events=int(seen), min_events=slo.min_events)
            k = (slo.name, key.key, rule.name)
            if holds != (k in book.firing) or k in book.clearing:
                self._transition(key, slo, rule, rule.severity, holds, t, out, burn_labels, remaining)
            if k in book.firing:  # holding, or waiting out its resolve hold
                firing.append(rule.name)
            if k in book.silenced:
                self._silence_over(key, slo, rule.name, rule.severity, t, out, burn_labels, remaining)
        exhausted = remaining <= 0 and (metric or total / per_event >= slo.min_events)
        if remaining <= 0 and not exhausted:
            low_traffic[BUDGET_EXHAUSTED] = LowTraffic(window=slo.window, events=int(total / per_event),
                                                       min_events=slo.min_events)
        k = (slo.name, key.key, BUDGET_EXHAUSTED)
        if exhausted != (k in book.firing) or k in book.clearing:
            self._transition(key, slo, None, judge.config.exhausted_severity, exhausted, t, out, burn_labels,
                             remaining)
        if k in book.firing:
            firing.append(BUDGET_EXHAUSTED)
        if k in book.silenced:
            self._silence_over(key, slo, BUDGET_EXHAUSTED, judge.config.exhausted_severity, t, out, burn_labels,
                               remaining)
        good = w[c.good]
        judged = w[c.good] + w[c.total] if metric else w[c.total]
        # what this tick added: the interval's events, or the slices judged for the first time
        counted = key.counted.get(i, (0.0, 0.0)) if metric else (tick[c.good], tick[c.total])
        event = Budget(
            slo=slo.name,
            dimension=slo.dimension,  # type: ignore[arg-type]
            model=self.model,
            version=key.version,
            segment=key.segment,
            ts=self.ts_text,
            sli=None if not judged else round(good / judged, 6),
            objective=slo.objective,
            target=slo.slo_target,
            window=slo.window,
            budgeting=slo.budgeting.method,  # type: ignore[arg-type]
            good=good,
            total=judged,
            budget_remaining=round(remaining, 6),
            burn_rates=burn_labels,
            events=events,
            counted=Counted(good=counted[0], total=counted[1]),
            firing=firing,
        )
        if period is not None and slo.calendar is not None:
            event.period = CalendarPeriod(**slo.calendar.to_dict(), start=to_rfc3339(period[0]),  # type: ignore[arg-type]
                                          end=to_rfc3339(period[1]))
        if metric:
            event.slices_unjudged = w[c.unjudged]
            event.value = key.values.get(i)
        if i in key.details and key.details[i] is not None:
            setattr(event, slo.sli.spec.dimension if slo.sli.spec.dimension in ("drift", "fairness") else "details",
                    key.details[i])
        if labelled is not None:
            event.burn_rates_to = to_rfc3339(labelled[0])
        if slo.sli.spec.labelled and slo.budgeting.min_label_share:
            event.label_coverage = describe_coverage(slo, judge.state.label_waits.count(key.index, i))
        if slo.baseline is not None:
            event.baseline = slo.baseline
        if low_traffic:
            event.low_traffic = low_traffic
        resolving = {r: to_rfc3339(book.clearing[(slo.name, key.key, r)]) for r in firing
                     if (slo.name, key.key, r) in book.clearing} if book.clearing else None
        if resolving:  # firing rules that stopped holding, waiting out the resolve hold since then
            event.resolving = resolving
        if plan.adjustments:
            adjusted = plan.adjustments.active(key.key, slo.name, t)
            if adjusted:  # silences and budget adjustments in effect at this tick
                event.adjustments = [Adjustment(**a.to_dict()) for a in adjusted]
        if key.windows.dropped:  # events that came after their windows were evaluated: never silent
            event.late_dropped = int(key.windows.dropped)
        out.append(("budget", event))

    def again(self, key: KeyState, events: list[Budget]) -> list[Output]:
        """Last tick's budget events of a key at which nothing changed, stamped with this tick: same
        windows, so the same budget, burn rates and firing rules; nothing counted this tick."""
        return [("budget", replace(e, ts=self.ts_text, counted=Counted(good=0.0, total=0.0))) for e in events]

    def no_data(self, whole: KeyState, t: float, out: list[Output]) -> None:
        """`no-data` fires when a model that has sent events sends none for `no_data_after`."""
        st = self.judge.state
        after = self.plan.model.no_data_after_s
        silent = st.first_ts <= t - after and whole.windows.span(t - after, t)[EVENTS] == 0
        k = (None, "", NO_DATA)
        transition, started = st.book.update(k, silent, t, self.judge.config.resolve_hold_s)  # type: ignore[arg-type]
        silence = self.plan.adjustments.silence("", None, t) if self.plan.adjustments else None
        if transition is None and k in st.book.silenced and silence is None and k in st.book.firing:
            transition = "firing"  # its silence ended while it still fires: tell people now
            del st.book.silenced[k]  # type: ignore[arg-type]
        if transition is None:
            return
        config = self.judge.config
        owner = config.owners.get("infrastructure") or config.owners.get("default")
        summary = (
            f"{self.model} has sent no inference events for {format_duration(after)} "
            f"(since before {to_rfc3339(t - after)})"
            if transition == "firing"
            else f"{self.model} is sending inference events again"
        )
        alert = self._alert(whole, None, "infrastructure", NO_DATA, config.no_data_severity, transition, started,
                            {}, None, summary, owner)
        self._silenced(k, alert, transition, silence)  # type: ignore[arg-type]
        out.append(("alert", alert))

    def _transition(self, key: KeyState, slo: Slo, rule: AlertRule | None, severity: str, holds: bool, t: float,
                    out: list[Output], burns: dict[str, float], remaining: float) -> bool:
        """Record whether a rule holds; emit its alert on a change. Returns whether it is firing now."""
        name = rule.name if rule is not None else BUDGET_EXHAUSTED
        book = self.judge.state.book
        cleared = book.clearing.get((slo.name, key.key, name), t)
        transition, started = book.update((slo.name, key.key, name), holds, t, slo.resolve_hold_s)
        if transition is None:
            return holds
        where = f"{self.model}{', ' + key.key if key.key else ''}"
        if rule is None:
            summary = (
                f"{slo.name} ({where}) has spent its {slo.window} error budget ({budget_text(remaining)})"
                if transition == "firing"
                else f"{slo.name} ({where}) has error budget again ({budget_text(remaining)})"
            )
        else:
            long_w, short_w = rule.windows
            summary = (
                f"{slo.name} ({where}) burns its {slo.window} error budget "
                f"{burns.get(long_w, 0):.1f}x over {long_w} and {burns.get(short_w, 0):.1f}x over "
                f"{short_w} (threshold {rule.burn_rate:g}x); budget {budget_text(remaining)}"
                if transition == "firing"
                else f"{slo.name} ({where}) no longer burns {rule.burn_rate:g}x over {long_w}/{short_w}"
            )
        i = self.plan.slos.index(slo)
        if transition == "firing" and key.details.get(i) is not None:
            summary += explain(slo, key.details[i], key.values.get(i))
        owner = self.judge.config.owner_of(slo)
        if transition == "firing":
            book.meta[(slo.name, key.key, name)] = (severity, slo.dimension, owner.route if owner else None)
        alert = self._alert(key, slo.name, slo.dimension, name, severity, transition, started, burns, remaining,
                            summary, owner)
        if rule is not None:
            alert.windows = RuleWindows(long=rule.windows[0], short=rule.windows[1])
            alert.threshold = rule.burn_rate
        if transition == "resolved":  # the rule stopped holding then; resolved after the hold
            alert.cleared_at = to_rfc3339(cleared)
        adjust = self.plan.adjustments
        if adjust:
            adjusted = adjust.active(key.key, slo.name, t)
            if adjusted:
                alert.adjustments = [Adjustment(**a.to_dict()) for a in adjusted]
            self._silenced((slo.name, key.key, name), alert, transition, adjust.silence(key.key, slo.name, t))
        if key.details.get(i) is not None:
            setattr(alert, slo.dimension if slo.dimension in ("drift", "fairness") else "details", key.details[i])
        out.append(("alert", alert))
        return holds

    def retire(self, orphans: list[tuple[str, str, str]], out: list[Output]) -> None:
        """Resolve firing alerts whose SLO or rule has left the config (a resume with another
        config): nothing else would ever resolve them, and their incident and page would stay open."""
        book, config = self.judge.state.book, self.judge.config
        slos = {s.name: s for s in self.plan.slos}
        for k in orphans:
            slo_name, key_text, rule = k
            key = self.judge.state.keys.get(key_text)
            started, meta = book.retire(k)
            slo = slos.get(slo_name)
            if meta is None:  # fired before alerts kept their meta: from the SLO if it is still there
                if slo is None or key is None:
                    book.silenced.pop(k, None)
                    continue
                owner = config.owner_of(slo)
                severity = config.exhausted_severity if rule == BUDGET_EXHAUSTED else "page"
                meta = (severity, slo.dimension, owner.route if owner else None)
            if key is None:
                book.silenced.pop(k, None)
                continue
            where = f"{self.model}{', ' + key.key if key.key else ''}"
            why = (f"{slo_name} ({where}) was removed from the config" if slo is None
                   else f"{slo_name} ({where}) no longer has the {rule} rule")
            alert = self._alert(key, slo_name, meta[1], rule, meta[0], "resolved", started, {}, None,
                                f"{why}: its {rule} alert is resolved", None)
            alert.owner = meta[2]
            self._silenced(k, alert, "resolved", None)  # fired silenced: its resolve is silenced too
            out.append(("alert", alert))

    def _silenced(self, k: tuple[str, str, str], alert: Alert, transition: str,
                  silence: adjustments.Adjustment | None) -> None:
        """Mark an alert sent during a silence (the notifier posts nothing for it); remember which
        firing alerts were silenced, so they are sent when the silence ends if they still fire."""
        book = self.judge.state.book
        if transition == "firing":
            if silence is not None:
                book.silenced[k] = silence.id
                alert.silenced = AdjustmentRef(**silence.to_dict())
            return
        ended = book.silenced.pop(k, None)
        if ended is not None:  # its firing was never sent: neither is its resolution
            known = next((a for a in self.plan.adjustments.all if a.id == ended), None)
            alert.silenced = AdjustmentRef(**known.to_dict()) if known is not None else AdjustmentRef(id=ended)

    def _silence_over(self, key: KeyState, slo: Slo, rule: str, severity: str, t: float, out: list[Output],
                      burns: dict[str, float], remaining: float) -> None:
        """A firing alert whose silence has ended is sent again, unsilenced, so someone hears of it."""
        k = (slo.name, key.key, rule)
        if self.plan.adjustments.silence(key.key, slo.name, t) is not None or k not in self.judge.state.book.firing:
            return
        ended = self.judge.state.book.silenced.pop(k)
        where = f"{self.model}{', ' + key.key if key.key else ''}"
        summary = (f"{slo.name} ({where}) still fires {rule} after silence {ended} ended; "
                   f"budget {budget_text(remaining)}")
        alert = self._alert(key, slo.name, slo.dimension, rule, severity, "firing",
                            self.judge.state.book.firing[k], burns, remaining, summary,
                            self.judge.config.owner_of(slo))
        alert.silence_ended = ended
        out.append(("alert", alert))

    def _alert(self, key: KeyState, slo: str | None, dimension: str, rule: str, severity: str, state: str,
               started: float, burns: dict[str, float], remaining: float | None, summary: str,
               owner: Owner | None) -> Alert:
        return Alert(
            id=alert_id(slo, self.model, key.key, rule),
            state=state,  # type: ignore[arg-type]
            severity=severity,  # type: ignore[arg-type]
            rule=rule,
            slo=slo,
            dimension=dimension,  # type: ignore[arg-type]
            model=self.model,
            version=key.version,
            segment=key.segment,
            owner=owner.route if owner else None,
            burn_rates=burns,
            budget_remaining=None if remaining is None else round(float(remaining), 6),
            started_at=to_rfc3339(started),
            ts=self.ts_text,
            summary=summary,
            actions=list(owner.actions) if owner else [],
            runbook=owner.runbook if owner else None,
        )
