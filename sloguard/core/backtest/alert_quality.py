"""How good a config's alerting was on history: the scoring behind `sloguard backtest` (pure, no I/O).

Inputs are the flow's own outputs (slo.alerts and slo.budget messages, as dicts) and a list of
known incidents (manifest.json, see README "Backtest"). Per SLO key (model, SLO, segment; a key's
`version` field is only the newest version it saw, so it is not part of the key):

    pages, tickets        firing transitions of that severity
    firing_s              length of the union of the key's firing spans (any rule), clipped to the run
    budget_end            budget_remaining of the key's last budget message
    exhausted_after_s     first budget message with budget_remaining <= 0, minus the key's first one

Per config, against the incidents (SRE workbook, ch. 5 "Alerting on SLOs"), counting pages only:

    a page matches an incident of its model when its span [fired, resolved] meets
    [start, end + grace_s] (grace_s: the incident's `detect_within_s`, 0 when absent)
    precision       = pages matching some incident / pages
    recall          = incidents matched by some page / incidents
    detection time  = first matching page's firing time - incident start (0 if already firing)
    reset time      = last matching page's resolve time - incident end (0 if it resolved before;
                      None while still firing at the end of the run)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sloguard.core.spec.timeutil import parse_rfc3339

Key = tuple[str, str, str]  # (model, slo, segment as canonical JSON)


def key_of(message: dict[str, Any]) -> Key:
    """The SLO key of a budget or alert message; no-data alerts (slo null) get the SLO `no-data`."""
    return (
        message["model"],
        message.get("slo") or "no-data",
        json.dumps(message.get("segment") or {}, sort_keys=True),
    )


def key_label(key: Key) -> str:
    """`slo segment=value`, `(whole model)` for the empty segment."""
    return f"{key[1]} {segment_label(key)}"


def segment_label(key: Key) -> str:
    return ",".join(f"{k}={v}" for k, v in json.loads(key[2]).items()) or "(whole model)"


def parse_ts(text: Any) -> float:
    """Epoch seconds of an RFC 3339 `ts`; ValueError otherwise."""
    value = parse_rfc3339(text) if isinstance(text, str) else None
    if value is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return value


@dataclass(frozen=True)
class Span:
    """One alert from firing to resolved (`end` None: still firing when the run ended)."""

    key: Key
    rule: str
    severity: str
    start: float
    end: float | None

    def end_or(self, run_end: float) -> float:
        return run_end if self.end is None else self.end


def firing_spans(alerts: Iterable[dict[str, Any]]) -> list[Span]:
    """Pairs each firing transition with the next resolved transition of the same alert `id`."""
    open_: dict[str, dict[str, Any]] = {}
    spans: list[Span] = []
    for a in alerts:
        if a["state"] == "firing":
            open_.setdefault(a["id"], a)
        elif a["id"] in open_:
            f = open_.pop(a["id"])
            spans.append(Span(key_of(f), f["rule"], f["severity"], parse_ts(f["ts"]), parse_ts(a["ts"])))
    spans += [Span(key_of(f), f["rule"], f["severity"], parse_ts(f["ts"]), None) for f in open_.values()]
    spans.sort(key=lambda s: (s.start, s.key, s.rule))
    return spans


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by [a, b) intervals (overlaps counted once)."""
    total, cur_a, cur_b = 0.0, None, None
    for a, b in sorted(intervals):
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return total


@dataclass
class KeyBudget:
    first_ts: float
    last_ts: float
    budget_end: float | None
    exhausted_at: float | None = None


class BudgetSummary:
    """Folds budget messages one at a time (memory per key, not per message)."""

    def __init__(self) -> None:
        self.keys: dict[Key, KeyBudget] = {}
        self.meta: dict[tuple[str, str], dict[str, Any]] = {}  # (model, slo) -> dimension, objective, window
        self.first_ts: float | None = None
        self.last_ts: float | None = None

    def add(self, event: dict[str, Any]) -> None:
        t = parse_ts(event["ts"])
        self.first_ts = t if self.first_ts is None else min(self.first_ts, t)
        self.last_ts = t if self.last_ts is None else max(self.last_ts, t)
        key = key_of(event)
        remaining = event.get("budget_remaining")
        kb = self.keys.get(key)
        if kb is None:
            kb = self.keys[key] = KeyBudget(t, t, remaining)
            self.meta.setdefault(key[:2], {k: event.get(k) for k in ("dimension", "objective", "window", "budgeting")})
        kb.last_ts = max(kb.last_ts, t)
        kb.budget_end = remaining
        if remaining is not None and remaining <= 0 and kb.exhausted_at is None:
            kb.exhausted_at = t


@dataclass
class KeyStats:
    key: Key
    pages: int = 0
    tickets: int = 0
    firing_s: float = 0.0
    budget_end: float | None = None
    exhausted_after_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        model, slo, seg = self.key
        return {
            "model": model,
            "slo": slo,
            "segment": json.loads(seg),
            "pages": self.pages,
            "tickets": self.tickets,
            "firing_s": round(self.firing_s, 3),
            "budget_remaining_end": self.budget_end,
            "budget_consumed_end": None if self.budget_end is None else round(1 - self.budget_end, 6),
            "exhausted_after_s": self.exhausted_after_s,
        }


def key_stats(spans: list[Span], budget: BudgetSummary, run_end: float) -> list[KeyStats]:
    """Per key: pages and tickets raised, time firing, budget at the end, time to exhaustion."""
    stats: dict[Key, KeyStats] = {}
    for key, kb in budget.keys.items():
        stats[key] = KeyStats(
            key,
            budget_end=kb.budget_end,
            exhausted_after_s=None if kb.exhausted_at is None else kb.exhausted_at - kb.first_ts,
        )
    by_key: dict[Key, list[tuple[float, float]]] = {}
    for s in spans:
        st = stats.setdefault(s.key, KeyStats(s.key))
        if s.severity == "page":
            st.pages += 1
        else:
            st.tickets += 1
        by_key.setdefault(s.key, []).append((s.start, max(s.start, s.end_or(run_end))))
    for key, intervals in by_key.items():
        stats[key].firing_s = union_length(intervals)
    return [stats[k] for k in sorted(stats)]


@dataclass(frozen=True)
class Incident:
    """A known incident: what a manifest.json entry needs (README "Backtest")."""

    name: str
    model: str
    start: float
    end: float
    grace_s: float = 0.0

    @staticmethod
    def from_manifest(entry: dict[str, Any], model: str | None = None) -> Incident:
        return Incident(
            entry["name"],
            entry.get("model") or model or "",
            float(entry["start"]),
            float(entry["end"]),
            float(entry.get("detect_within_s") or 0.0),
        )


@dataclass
class IncidentResult:
    incident: Incident
    pages: int = 0
    detection_s: float | None = None
    reset_s: float | None = None
    still_firing: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident.name,
            "model": self.incident.model,
            "pages": self.pages,
            "detected": self.pages > 0,
            "detection_s": self.detection_s,
            "reset_s": self.reset_s,
            "still_firing": self.still_firing,
        }


@dataclass
class Score:
    """The workbook's four measures for one config (None where undefined: no pages, no incidents)."""

    pages: int
    tickets: int
    precision: float | None
    recall: float | None
    detection_s: float | None  # mean over detected incidents
    reset_s: float | None  # mean over detected incidents that resolved
    incidents: list[IncidentResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "tickets": self.tickets,
            "precision": self.precision,
            "recall": self.recall,
            "detection_s": self.detection_s,
            "reset_s": self.reset_s,
            "incidents": [i.to_json() for i in self.incidents],
        }


def _meets(s: Span, inc: Incident, run_end: float) -> bool:
    return s.key[0] == inc.model and s.start <= inc.end + inc.grace_s and s.end_or(run_end) >= inc.start


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score(spans: list[Span], incidents: list[Incident], run_end: float) -> Score:
    """Precision, recall, detection and reset time of the pages in `spans` against `incidents`."""
    pages = [s for s in spans if s.severity == "page"]
    tickets = len(spans) - len(pages)
    results = []
    for inc in incidents:
        hits = [s for s in pages if _meets(s, inc, run_end)]
        r = IncidentResult(inc, pages=len(hits))
        if hits:
            r.detection_s = max(0.0, min(s.start for s in hits) - inc.start)
            r.still_firing = any(s.end is None for s in hits)
            if not r.still_firing:
                r.reset_s = max(0.0, max(s.end for s in hits if s.end is not None) - inc.end)
        results.append(r)
    matched = sum(1 for s in pages if any(_meets(s, inc, run_end) for inc in incidents))
    return Score(
        pages=len(pages),
        tickets=tickets,
        precision=matched / len(pages) if pages and incidents else None,
        recall=sum(r.pages > 0 for r in results) / len(results) if results else None,
        detection_s=_mean([r.detection_s for r in results if r.detection_s is not None]),
        reset_s=_mean([r.reset_s for r in results if r.reset_s is not None]),
        incidents=results,
    )


def rank_key(s: Score) -> tuple:
    """Sort key, best first: recall, then precision, then fewer pages, faster detection, fewer tickets.

    Without incidents recall and precision are None for every config and the quietest config wins.
    """
    return (
        -(s.recall or 0.0),
        -(s.precision or 0.0),
        s.pages,
        s.detection_s if s.detection_s is not None else float("inf"),
        s.tickets,
    )
