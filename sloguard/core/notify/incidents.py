"""Incidents: the judge's alerts of one model folded by cause, one message per incident and change.

The flow's `incidents` step (flows/incident_step.py) hands this module every output the judge
wrote for one model in one call, whole ticks at a time (a tick is always judged in one call), and
gets them back with the incident messages of each tick appended. At each tick:

1. budget events feed the cause tracker (sloguard/core/notify/incident_cause.py) and the per-key burn rates an
   incident lists;
2. alert transitions update the set of firing alerts;
3. inhibition (`IncidentPolicy.inhibit`) mutes firing alerts that a firing source alert explains:
   a muted alert opens no incident and joins none (it is listed as inhibited by the source's
   incident); one muted after it joined stays, so muting never ends an incident;
4. every firing, unmuted alert belongs to the open incident of its group (owner route and the
   `group_by` labels), opening one if there is none: the incident id hashes the group and the tick
   it opened at, so a replay, a Kafka run and a recovered run name it alike;
5. an incident resolves when none of its alerts fires any more; the next firing of its group
   opens a new one;
6. each incident that opened, gained or lost an alert, or resolved gets one `incident` message
   (schemas/incident.schema.json): its alerts with how fast each key burns, the segment that
   explains it, and the SLO that started burning first.

An alert that carries `silenced` (a silence in the config's adjustments) is treated like a muted
one. The alerts themselves go on unchanged except for two added fields: `incident_id` (the incident the
alert's episode belongs to) and, while muted, `inhibited_by` (the muting alert's id). Budgets, alerts
and incidents are their Structs (`sloguard.core.messages.outputs`).

Decisions depend only on the set of alerts and budgets of a tick, never on their order within it.
Pure: no I/O, no clock. The state pickles (recovery) and `IncidentBook(policy, slos, state)`
rebuilds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET
from msgspec.structs import replace

from sloguard.core.messages.outputs import Alert, Budget, IncidentMember, Output, RuleWindows, upgraded
from sloguard.core.messages.outputs import Incident as IncidentMessage
from sloguard.core.notify.incident_cause import CauseState, CauseTracker, SloBurn
from sloguard.core.notify.incident_policy import IncidentPolicy, alert_labels, seg_key
from sloguard.core.spec.timeutil import format_duration, parse_rfc3339, to_rfc3339

_RANK = {"page": 2, "ticket": 1}
STATE_VERSION = 1


@dataclass
class Member:
    """One alert episode in an incident."""

    alert_id: str
    slo: str | None
    dimension: str
    rule: str
    severity: str
    segment: dict[str, str]
    started_at: str
    state: str = "firing"  # firing | resolved
    resolved_at: str | None = None
    inhibited_by: str | None = None
    burn_rates: dict[str, float] = field(default_factory=dict)
    budget_remaining: float | None = None
    windows: dict[str, str] | None = None
    threshold: float | None = None

    def message(self) -> IncidentMember:
        """As an incident message lists it."""
        windows = UNSET if self.windows is None else RuleWindows(long=self.windows["long"], short=self.windows["short"])
        return IncidentMember(
            alert_id=self.alert_id, slo=self.slo, dimension=self.dimension, rule=self.rule,  # type: ignore[arg-type]
            severity=self.severity, segment=self.segment, started_at=self.started_at,  # type: ignore[arg-type]
            state=self.state, resolved_at=self.resolved_at, inhibited_by=self.inhibited_by,  # type: ignore[arg-type]
            burn_rates=self.burn_rates, budget_remaining=self.budget_remaining, windows=windows,
            threshold=UNSET if self.windows is None else self.threshold)  # type: ignore[arg-type]


@dataclass
class Incident:
    id: str
    group: tuple[str, ...]
    model: str
    owner: str | None
    labels: dict[str, str]
    opened_at: float
    seq: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    cause: dict[str, Any] | None = None
    actions: list[str] = field(default_factory=list)
    runbook: str | None = None

    @property
    def firing(self) -> list[Member]:
        return [m for m in self.members.values() if m.state == "firing"]


@dataclass
class IncidentState:
    version: int = STATE_VERSION
    open: dict[tuple[str, ...], Incident] = field(default_factory=dict)
    firing: dict[str, Alert] = field(default_factory=dict)  # alert id -> its firing message
    member_of: dict[str, str] = field(default_factory=dict)  # alert id -> incident id of its episode
    cause: CauseState = field(default_factory=CauseState)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Recovery state written while alerts were dicts: the firing ones become Structs."""
        state["firing"] = {aid: upgraded("alert", a) for aid, a in state.get("firing", {}).items()}
        self.__dict__.update(state)


def incident_id(group: Iterable[str], opened_at: float) -> str:
    """Stable fingerprint of the group and the tick the incident opened at (16 hex digits)."""
    text = "\x1f".join((*group, to_rfc3339(opened_at)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def slo_burns(config: Any, model: str) -> dict[str, SloBurn]:
    """What "burning" means per SLO of `model` (page rules' short windows and rates)."""
    out = {}
    for slo in config.slos_of(model):
        rules = [r for r in slo.rules if r.severity == "page"] or list(slo.rules)
        out[slo.name] = SloBurn(slo.dimension, tuple((r.windows[1], r.burn_rate) for r in rules))
    return out


class IncidentBook:
    """The incidents of one model (see the module docstring)."""

    def __init__(self, policy: IncidentPolicy, slos: Mapping[str, SloBurn], state: IncidentState | None = None):
        self.policy = policy
        self.state = state or IncidentState()
        self.cause = CauseTracker(slos, policy.cause_lookback_s, self.state.cause)

    def process(self, outputs: list[Output]) -> list[Output]:
        """The judge's outputs of whole ticks, alerts annotated, each tick followed by its incidents."""
        out: list[Output] = []
        tick: list[Output] = []
        for kind, msg in outputs:
            if kind in ("budget", "alert"):
                if tick and msg.ts != tick[0][1].ts:
                    out += self._tick(tick)
                    tick = []
                tick.append((kind, msg))
            else:
                out.append((kind, msg))
        if tick:
            out += self._tick(tick)
        return out

    # -- one tick ---------------------------------------------------------------------------------

    def _tick(self, outputs: list[Output]) -> list[Output]:
        st, policy = self.state, self.policy
        ts_text = outputs[0][1].ts
        t = parse_rfc3339(ts_text) or 0.0
        budgets: dict[tuple[str, str], Budget] = {}
        resolved: dict[str, Alert] = {}
        for kind, msg in outputs:
            key = seg_key(msg.segment)
            if kind == "budget":
                budgets[(msg.slo, key)] = msg
                self.cause.observe_budget(msg, key, t)
            elif msg.state == "firing":
                st.firing[msg.id] = msg
                resolved.pop(msg.id, None)
                self.cause.observe_firing(msg, key, t)
            else:
                st.firing.pop(msg.id, None)
                resolved[msg.id] = msg
        if len(budgets) == len(outputs):  # no alert changed: no incident can (budgets only update burns)
            if st.cause.candidates:
                self.cause.prune(t, st.cause.candidates)
            return outputs
        labels = {aid: alert_labels(a) for aid, a in st.firing.items()}
        muted = self._inhibited(labels)
        changed: dict[str, tuple[Incident, str]] = {}
        # alerts that resolved or went quiet leave their incidents
        for inc in st.open.values():
            for m in inc.members.values():
                if m.state != "firing":
                    continue
                if m.alert_id in resolved:
                    m.state, m.resolved_at = "resolved", ts_text
                    changed.setdefault(inc.id, (inc, "left"))
                else:  # muted after it joined: it stays (an incident does not end by being muted)
                    m.inhibited_by = muted.get(m.alert_id)
        # firing, unmuted alerts join their group's incident or open one (in a fixed order)
        for aid in sorted(st.firing, key=lambda a: (labels[a]["segment"] != "", labels[a]["segment"], a)):
            alert = st.firing[aid]
            group = policy.group_key(labels[aid])
            inc = st.open.get(group)
            if (aid in muted or alert.silenced) and (
                    inc is None or aid not in inc.members or inc.members[aid].state != "firing"):
                continue  # muted (inhibit rules) and silenced (adjustments) alerts open no incident, join none
            if inc is None:
                inc = Incident(incident_id(group, t), group, alert.model, alert.owner,
                               {g: labels[aid][g] for g in policy.group_by}, t)
                st.open[group] = inc
                changed[inc.id] = (inc, "opened")
            m = inc.members.get(aid)
            if m is None or m.state != "firing" or m.started_at != alert.started_at:
                inc.members[aid] = _member(alert)
                st.member_of[aid] = inc.id
                if changed.get(inc.id, (inc, ""))[1] != "opened":  # opened > joined > left
                    changed[inc.id] = (inc, "joined")
            if alert.actions and not inc.actions:
                inc.actions, inc.runbook = list(alert.actions), alert.runbook
        firing_keys = [(str(a.slo), labels[aid]["segment"]) for aid, a in st.firing.items()]
        out = [self._annotate(kind, msg, muted) for kind, msg in outputs]
        for inc_id in sorted(changed, key=lambda i: (changed[i][0].opened_at, i)):
            inc, change = changed[inc_id]
            if not inc.firing:
                del st.open[inc.group]
                change = "resolved"
            if change in ("opened", "joined") or inc.cause is None:  # a joining SLO may have burned first
                own = [(str(m.slo), seg_key(m.segment)) for m in inc.members.values()]
                inc.cause = self.cause.cause(own, inc.opened_at, firing_keys)
            inc.seq += 1
            out.append(("incident", self._message(inc, change, ts_text, t, budgets, muted)))
        for aid in resolved:  # the episode is over: its incident id was written on the resolve
            if aid not in st.firing:
                st.member_of.pop(aid, None)
        self.cause.prune(t, firing_keys)
        return out

    def _inhibited(self, labels: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """Firing alert id -> the firing alert that mutes it (the first in id order); per rule, the
        sources are bucketed by their `equal` labels, so this is linear in the firing alerts."""
        muted: dict[str, str] = {}
        for rule in self.policy.inhibit:
            sources: dict[tuple[str, ...], list[str]] = {}
            for aid in sorted(labels):
                if all(m.matches(labels[aid]) for m in rule.source):
                    sources.setdefault(tuple(labels[aid].get(e, "") for e in rule.equal), []).append(aid)
            if not sources:
                continue
            for aid in sorted(labels):
                if aid in muted or not all(m.matches(labels[aid]) for m in rule.target):
                    continue
                bucket = sources.get(tuple(labels[aid].get(e, "") for e in rule.equal), ())
                source = next((src for src in bucket if src != aid), None)
                if source is not None:
                    muted[aid] = source
        return dict(sorted(muted.items()))

    def _annotate(self, kind: str, msg: Any, muted: Mapping[str, str]) -> Output:
        if kind != "alert":
            return kind, msg
        aid = msg.id
        extra: dict[str, str] = {}
        if msg.state == "firing" and aid in muted and aid not in self.state.member_of:
            extra["inhibited_by"] = muted[aid]
            source_incident = self.state.member_of.get(muted[aid])
            if source_incident:
                extra["incident_id"] = source_incident
        elif aid in self.state.member_of:
            extra["incident_id"] = self.state.member_of[aid]
        return kind, (replace(msg, **extra) if extra else msg)  # a copy: the book keeps the firing alert as it came

    # -- the message ------------------------------------------------------------------------------

    def _message(self, inc: Incident, change: str, ts_text: str, t: float,
                 budgets: Mapping[tuple[str, str], Budget], muted: Mapping[str, str]) -> IncidentMessage:
        for m in inc.members.values():
            b = budgets.get((str(m.slo), seg_key(m.segment)))
            if b is not None and m.state == "firing":
                m.burn_rates = dict(b.burn_rates)
                m.budget_remaining = b.budget_remaining
        members = sorted(inc.members.values(), key=lambda m: (m.state != "firing", seg_key(m.segment) != "",
                                                              seg_key(m.segment), str(m.slo), m.rule))
        live = [m for m in members if m.state == "firing"] or members
        severity = max((m.severity for m in live), key=lambda s: _RANK.get(s, 0))
        slos = sorted({str(m.slo) for m in members if m.slo})
        dims = sorted({m.dimension for m in members})
        explained = self._explained(inc, live, budgets)
        inhibited = sorted(aid for aid, src in muted.items()
                           if self.state.member_of.get(src) == inc.id and aid not in self.state.member_of)
        resolved = change == "resolved"
        return IncidentMessage(
            id=inc.id,
            seq=inc.seq,
            state="resolved" if resolved else "firing",
            change=change,  # type: ignore[arg-type]
            severity=severity,  # type: ignore[arg-type]
            model=inc.model,
            owner=inc.owner,
            group=inc.labels,
            slo=slos[0] if len(slos) == 1 else None,
            dimension=dims[0] if len(dims) == 1 else None,  # type: ignore[arg-type]
            opened_at=to_rfc3339(inc.opened_at),
            ts=ts_text,
            resolved_at=ts_text if resolved else None,
            keys=len({seg_key(m.segment) for m in live}),
            members=[m.message() for m in members],
            inhibited=[self._inhibited_entry(aid, muted[aid]) for aid in inhibited],
            explained_by=explained,
            cause=inc.cause,
            summary=self._summary(inc, live, slos, explained, resolved, t),
            actions=inc.actions,
            runbook=inc.runbook,
        )

    def _inhibited_entry(self, aid: str, source: str) -> dict[str, Any]:
        a = self.state.firing[aid]
        return {"alert_id": aid, "rule": a.rule, "slo": a.slo, "severity": a.severity, "segment": a.segment,
                "inhibited_by": source}

    def _explained(self, inc: Incident, live: list[Member], budgets: Mapping[tuple[str, str], Budget]
                   ) -> dict[str, Any] | None:
        """The one segment that explains the incident's SLO burning on the whole model, if any."""
        slos = {m.slo for m in live}
        if len(slos) != 1 or None in slos:
            return None
        slo = str(next(iter(slos)))
        segments = {seg_key(m.segment): m for m in live if m.segment}
        if not segments:
            return None
        whole = budgets.get((slo, ""))
        # the short window: what burns now (the long one still holds the previous incident's bad events)
        window = next((m.windows["short"] for m in live if m.windows), None)
        if whole is not None and whole.budgeting == "occurrences" and window:
            bad_whole = _bad(whole, window)
            best = max(segments, key=lambda k: (_bad(budgets.get((slo, k)), window), k))
            share = _bad(budgets.get((slo, best)), window) / bad_whole if bad_whole > 0 else 0.0
            if share >= self.policy.explain_share:
                return {"segment": segments[best].segment, "share": round(min(share, 1.0), 4), "window": window}
            return None
        by_attr: dict[str, list[str]] = {}
        for k, m in segments.items():
            for attr in m.segment:
                by_attr.setdefault(attr, []).append(k)
        single = sorted(ks[0] for ks in by_attr.values() if len(ks) == 1)
        if len(single) == 1:  # the only value of its attribute that fires, and the only such attribute
            return {"segment": segments[single[0]].segment, "share": None, "window": None}
        return None

    def _summary(self, inc: Incident, live: list[Member], slos: list[str], explained: dict[str, Any] | None,
                 resolved: bool, t: float) -> str:
        rules = sorted({m.rule for m in live})
        what = ", ".join(slos) if slos else f"model {inc.model}"
        keys = sorted({seg_key(m.segment) for m in live}, key=lambda k: (k != "", k))
        shown = [k or "the whole model" for k in keys[:3]]
        more = f" and {len(keys) - 3} more keys" if len(keys) > 3 else ""
        if resolved:
            lasted = format_duration(max(60, round((t - inc.opened_at) / 60.0) * 60))
            n, k = len(inc.members), len(keys)
            return f"{what}: resolved after {lasted} ({n} alert{'s' * (n != 1)} on {k} key{'s' * (k != 1)})"
        if explained is not None:  # the cause's segment first, then how far it spreads
            seg = seg_key(explained["segment"])
            why = (f"{explained['share']:.0%} of the whole model's bad events over {explained['window']}"
                   if explained.get("share") is not None else f"the only {seg.split('=')[0]} that burns")
            text = f"{what}: {', '.join(rules)} in {seg} ({why}); " + (
                "1 key burns" if len(keys) == 1 else f"{len(keys)} keys burn")
        else:
            text = f"{what}: {', '.join(rules)} on {', '.join(shown)}{more}"
        if inc.cause is not None and inc.cause.get("lead_s", 0) > 0:
            text += f"; {inc.cause['summary']}"
        return text


def _bad(event: Budget | None, window: str) -> float:
    """Bad events over `window` from a budget event: burn x (1 - target) x events."""
    if event is None:
        return 0.0
    burn = event.burn_rates.get(window, 0.0)
    n = float(event.events.get(window, 0))
    eb = 1.0 - event.target if event.target < 1 else 1.0
    return burn * eb * n


def _member(alert: Alert) -> Member:
    windows = None if alert.windows is UNSET else {"long": alert.windows.long, "short": alert.windows.short}
    return Member(
        alert_id=alert.id, slo=alert.slo, dimension=alert.dimension, rule=alert.rule, severity=alert.severity,
        segment=dict(alert.segment), started_at=alert.started_at, burn_rates=dict(alert.burn_rates),
        budget_remaining=alert.budget_remaining, windows=windows,
        threshold=None if alert.threshold is UNSET else alert.threshold,
    )
