"""Alerting as an on-call engineer lives it, per injected incident (pure; used by
benchmarks/alert_quality_bench.py).

`sloguard backtest` (alert_quality.py) scores a config with the SRE workbook's four measures. This
module counts what issue 12 asks to be measured, from the same outputs (alert messages, the
notifier's messages and the incident manifest):

    pages, tickets     per incident: pages (tickets) whose span [fired, resolved] meets
                       [start, end + detect_within_s] of the incident, as alert_quality matches
                       them, and that belong to it (see `attribute`).
                       When alerts carry an `incident_id` (grouping by cause), the pages of one
                       incident id count once: that is one page for the person on call.
    teams              per incident: the owner routes its pages went to. An incident that
                       concerns two teams (a fairness regression that also lowers precision:
                       responsible-AI and the model's team) pages each once, as Alertmanager
                       groups within a route; the goal is pages == teams.
    messages           per incident: notifier messages with at least one alert of such a span
                       (firing, resolved or reminder), i.e. Slack posts the incident caused
    detect_s           first meeting page's firing time - incident start (0 if already firing)
    expected_s         the same for the manifest's expected alert only (rule, SLO and segment),
                       the number `sloguard demo` prints
    reset_s            last meeting page's resolve time - incident end (0 if earlier; None while
                       still firing at the end of the run)
    refires            fire-resolve-fire of one alert (same id: SLO, segment, rule) with at most
                       `flap_window_s` (1 h) between the resolve and the next firing
    flaps              the re-firings not explained by a new incident: both firings belong to the
                       same incident, or the second to none (with incidents 45 minutes apart, the
                       next incident re-firing a whole-model key is a new page, not a flap)
    outside            pages that meet no incident (with their keys), and messages likewise

Each span belongs to at most one incident (`attribute`): incidents' grace periods overlap, and a
page must not count twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sloguard.core.backtest.alert_quality import Incident, key_label, key_of, parse_ts

FLAP_WINDOW_S = 3600.0


@dataclass(frozen=True)
class AlertSpan:
    """One alert id from firing to resolved (`end` None: still firing at the end of the run)."""

    id: str
    key: tuple[str, str, str]
    rule: str
    severity: str
    start: float
    end: float | None
    group: str  # what one notification stands for: the incident id, else the alert id + start
    segment: dict[str, str] = field(compare=False)
    route: str = field(default="", compare=False)  # the owner route the alert went to

    def meets(self, inc: Incident, run_end: float) -> bool:
        end = run_end if self.end is None else self.end
        return self.key[0] == inc.model and self.start <= inc.end + inc.grace_s and end >= inc.start


def alert_spans(alerts: Iterable[dict[str, Any]]) -> list[AlertSpan]:
    """Pairs each firing transition with the next resolved one of the same alert id."""
    open_: dict[str, dict[str, Any]] = {}
    spans: list[AlertSpan] = []

    def span(f: dict[str, Any], end: float | None) -> AlertSpan:
        start = parse_ts(f["ts"])
        group = f.get("incident_id") or f"{f['id']}@{start:.0f}"
        return AlertSpan(f["id"], key_of(f), f["rule"], f["severity"], start, end, str(group), f.get("segment") or {},
                         str(f.get("owner") or ""))

    for a in alerts:
        if a.get("type", "alert") != "alert" or "state" not in a:
            continue
        if a["state"] == "firing":
            open_.setdefault(a["id"], a)
        elif a["id"] in open_:
            spans.append(span(open_.pop(a["id"]), parse_ts(a["ts"])))
    spans += [span(f, None) for f in open_.values()]
    spans.sort(key=lambda s: (s.start, s.key, s.rule))
    return spans


def flaps(spans: Sequence[AlertSpan], window_s: float = FLAP_WINDOW_S) -> list[AlertSpan]:
    """The re-firings: spans whose alert id resolved at most `window_s` before they fired."""
    last_end: dict[str, float | None] = {}
    out = []
    for s in sorted(spans, key=lambda s: s.start):
        if s.id in last_end:
            prev = last_end[s.id]
            if prev is not None and s.start - prev <= window_s:
                out.append(s)
        last_end[s.id] = s.end
    return out


@dataclass
class IncidentRow:
    """What one injected incident cost the person on call."""

    incident: Incident
    pages: int = 0
    teams: list[str] = field(default_factory=list)  # owner routes paged
    page_keys: list[str] = field(default_factory=list)
    tickets: int = 0
    messages: int = 0
    detect_s: float | None = None
    expected_s: float | None = None
    reset_s: float | None = None
    still_firing: bool = False
    flaps: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident.name,
            "model": self.incident.model,
            "pages": self.pages,
            "teams": self.teams,
            "tickets": self.tickets,
            "messages": self.messages,
            "detect_s": self.detect_s,
            "expected_s": self.expected_s,
            "reset_s": self.reset_s,
            "still_firing": self.still_firing,
            "flaps": self.flaps,
            "page_keys": self.page_keys,
        }


@dataclass
class BenchResult:
    """Per incident rows, and what met no incident."""

    rows: list[IncidentRow]
    pages_outside: list[AlertSpan]
    messages_outside: int
    messages: int
    refires: list[AlertSpan]  # fire-resolve-fire of one alert id within the flap window
    flaps: list[AlertSpan]  # those of them not explained by a new incident starting
    grouped: bool  # the alerts carried incident ids

    @property
    def page_flaps(self) -> int:
        return sum(1 for s in self.flaps if s.severity == "page")

    def to_json(self) -> dict[str, Any]:
        return {
            "incidents": [r.to_json() for r in self.rows],
            "pages_outside": len({s.group for s in self.pages_outside}),
            "pages_outside_keys": sorted({f"{key_label(s.key)} {s.rule}" for s in self.pages_outside}),
            "messages": self.messages,
            "messages_outside": self.messages_outside,
            "refires": len(self.refires),
            "flaps": len(self.flaps),
            "page_flaps": self.page_flaps,
            "flap_keys": sorted({f"{key_label(s.key)} {s.rule}" for s in self.flaps}),
            "grouped_by_incident_id": self.grouped,
        }


def _expected(span: AlertSpan, inc: dict[str, Any]) -> bool:
    """The alert the manifest says the incident should raise (as `sloguard demo` checks it)."""
    return (span.rule == inc.get("rule") and span.segment == inc.get("segment", {})
            and (span.key[1] in inc.get("slos", ()) or inc.get("rule") == "no-data"))


def attribute(span: AlertSpan, incidents: Sequence[Incident], entries: Sequence[dict[str, Any]],
              run_end: float) -> int | None:
    """The one incident a span belongs to (its index), or None: of the incidents it meets, one that
    lists its SLO (or expects `no-data` for a no-data alert) first, then the latest to start at or
    before it fired, else the first to start after it. Incidents' grace periods overlap, so without
    this one page would count for two incidents."""
    best, best_rank = None, None
    for n, (inc, entry) in enumerate(zip(incidents, entries, strict=True)):
        if not span.meets(inc, run_end):
            continue
        listed = span.key[1] in entry.get("slos", ()) or (span.rule == "no-data" and entry.get("rule") == "no-data")
        rank = (not listed, inc.start > span.start, -inc.start if inc.start <= span.start else inc.start)
        if best_rank is None or rank < best_rank:
            best, best_rank = n, rank
    return best


def bench(alerts: Sequence[dict[str, Any]], manifest: dict[str, Any], run_end: float,
          messages: Sequence[Sequence[dict[str, Any]]] = ()) -> BenchResult:
    """Score one run's alerts (and the notifier's messages, each a list of its alerts) against the
    incidents of a `sloguard generate` manifest (see the module docstring)."""
    spans = alert_spans(alerts)
    entries = manifest["incidents"]
    incidents = [Incident.from_manifest(e, manifest.get("scenario")) for e in entries]
    owner = {s: attribute(s, incidents, entries, run_end) for s in spans}
    refires = flaps(spans)
    previous = _previous(spans)
    rows = []
    for n, (inc, entry) in enumerate(zip(incidents, entries, strict=True)):
        mine = [s for s in spans if owner[s] == n]
        pages = [s for s in mine if s.severity == "page"]
        row = IncidentRow(inc, pages=len({s.group for s in pages}), tickets=sum(s.severity != "page" for s in mine))
        row.page_keys = sorted({f"{key_label(s.key)} {s.rule}" for s in pages})
        row.teams = sorted({s.route for s in pages})
        if pages:
            row.detect_s = max(0.0, min(s.start for s in pages) - inc.start)
            row.still_firing = any(s.end is None for s in pages)
            if not row.still_firing:
                row.reset_s = max(0.0, max(s.end for s in pages if s.end is not None) - inc.end)
        expected = [s for s in spans if s.meets(inc, run_end) and _expected(s, entry)]
        if expected:
            row.expected_s = max(0.0, min(s.start for s in expected) - inc.start)
        row.flaps = sum(1 for s in refires if owner[s] == n and owner[previous[s]] == n)
        rows.append(row)
    outside = [s for s in spans if s.severity == "page" and owner[s] is None]
    # a re-firing caused by the next incident is not a flap; one within an incident or outside all is
    flapping = [s for s in refires if owner[s] is None or owner[s] == owner[previous[s]]]
    by_start = {(s.id, s.start): s for s in spans}
    messages_outside = 0
    for message in messages:  # a message counts once per incident, however many of its alerts meet it
        hit = {owner[s] for a in message if (s := _span_of(a, by_start)) is not None} - {None}
        for n in hit:
            rows[n].messages += 1
        messages_outside += not hit
    grouped = any(a.get("incident_id") for a in alerts)
    return BenchResult(rows, outside, messages_outside, len(messages), refires, flapping, grouped)


def _previous(spans: Sequence[AlertSpan]) -> dict[AlertSpan, AlertSpan]:
    """Each span's predecessor of the same alert id."""
    last: dict[str, AlertSpan] = {}
    out = {}
    for s in sorted(spans, key=lambda s: s.start):
        if s.id in last:
            out[s] = last[s.id]
        last[s.id] = s
    return out


def _span_of(alert: dict[str, Any], by_start: dict[tuple[str, float], AlertSpan]) -> AlertSpan | None:
    """The span a firing, resolved or reminder alert message belongs to (by id and firing time)."""
    start = alert.get("ts") if alert.get("state") == "firing" else alert.get("started_at")
    if not isinstance(start, str):
        return None
    return by_start.get((alert.get("id"), parse_ts(start)))
