"""Output messages as types: one msgspec Struct per message sloguard writes.

`Budget` (`slo.budget`), `Alert` (`slo.alerts`), `Incident` (`slo.incidents`), `DeadLetter`
(`slo.dead-letter`), `Decision` (`rollout.decisions`) and `LabelStore` (the label join's counters,
for metrics only, on no topic). Each matches what its writer emits field for field and forbids
unknown fields, so a field renamed on one side fails a test (tests/core/messages/test_messages.py), and the JSON
Schemas in `schemas/` are tested against them both ways.

The flow builds its budgets and alerts (report.py), incidents (incidents.py) and dead letters (the
parser and the shards, through `dead_letter(...)`) as these Structs and carries them to its sinks,
which write them with `encode` / `encode_lines`: one msgspec encoder (dicts too, e.g. the
metrics-only label store counters).
A Struct's fields are written in the order it declares them, so that
order is part of the format (tests/golden/ holds it): declare a new field where it should be
written. Nothing checks a message again before it is written: its type is the check, and the tests
decode everything a replay writes strictly.

Readers check what they consume against them: the notifier (alerts, incidents) and the rollout
controller (budgets, alerts, incidents) check every message with `read_message` against
`BudgetRead` / `AlertRead` / `IncidentRead` (the same fields and types; a top-level field a newer
writer adds is ignored, so an upgrade in the wrong order does not dead-letter pages), and a wrong
type is refused with the field's path. `read_as` also hands back the converted message, for
readers that go on with its attributes (the flow's metrics when handed a dict, the demo).

Dead letters have one format and one builder, `dead_letter(...)`, used by every writer: the
parser, the dedupe and label join in the shards, the notifier and the rollout controller. It keeps
the first `MAX_DEAD_LETTER_PAYLOAD_BYTES` of the payload (decoded as UTF-8, bad bytes replaced),
`payload_bytes` the full size, and `stage` names the step that refused the message.

Pure: std lib and msgspec only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Struct, UnsetType

__all__ = [
    "MAX_DEAD_LETTER_PAYLOAD_BYTES",
    "Adjustment",
    "AdjustmentRef",
    "Alert",
    "AlertRead",
    "Budget",
    "BudgetRead",
    "CalendarPeriod",
    "Check",
    "Counted",
    "DeadLetter",
    "Decision",
    "Incident",
    "IncidentMember",
    "IncidentRead",
    "LabelCoverage",
    "LabelStore",
    "LowTraffic",
    "Output",
    "OutputMessage",
    "RuleWindows",
    "Stage",
    "dead_letter",
    "encode",
    "encode_lines",
    "read_as",
    "read_message",
    "upgraded",
]

T = TypeVar("T")

#: Bytes of the refused message a dead letter keeps (its full size is in `payload_bytes`).
MAX_DEAD_LETTER_PAYLOAD_BYTES = 4096

Dimension = Literal["infrastructure", "quality", "drift", "data", "fairness"]
Severity = Literal["page", "ticket"]
AlertState = Literal["firing", "resolved"]
#: The step that refused a message: input parsing, id dedupe, the label join, the notifier, the
#: rollout controller.
Stage = Literal["parse", "dedupe", "label_join", "notifier", "controller"]


class _Message(Struct, forbid_unknown_fields=True):
    """Base of every message: unknown fields are errors. An optional field is `UNSET` when the
    message does not carry it (and is then not written); a present field may still be null. Fields
    are written in the order they are declared."""


# ---- pieces -------------------------------------------------------------------------------------


class Counted(_Message):
    """What one tick added: good and total events (occurrences) or newly judged slices (timeslices)."""

    good: float
    total: float


class LabelCoverage(_Message):
    """Labelled SLOs: when a slice is judged, and how many of this key's slices wait for labels."""

    min_share: float
    wait: str
    waiting_slices: int


class LowTraffic(_Message):
    """A rule held back by the low-traffic guard: too few events in its window."""

    window: str
    events: int
    min_events: int


class Adjustment(_Message):
    """A silence or budget adjustment in effect (adjustments.py); `budget_factor` for `scale` only."""

    id: str
    effect: Literal["exclude", "scale", "silence"]
    reason: str
    start: str
    end: str
    budget_factor: float | UnsetType = UNSET


class AdjustmentRef(_Message):
    """The silence an alert was sent under: the adjustment, or only its id once it left the config."""

    id: str
    effect: Literal["exclude", "scale", "silence"] | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    start: str | UnsetType = UNSET
    end: str | UnsetType = UNSET
    budget_factor: float | UnsetType = UNSET


class CalendarPeriod(_Message):
    """The calendar period a calendar SLO's budget event reports (start inclusive, end exclusive)."""

    calendar: Literal["month", "week"]
    timezone: str
    start: str
    end: str


class RuleWindows(_Message):
    """A burn-rate rule's long and short windows."""

    long: str
    short: str


# ---- slo.budget ---------------------------------------------------------------------------------


class Budget(_Message, tag="budget", tag_field="type"):
    """Budget-burn state of one SLO and key at one evaluation tick (report.py writes it).

    `sli` is good / total: for occurrence SLOs the share of good events over the SLO window, for
    timeslice SLOs the share of good slices among the judged ones (`value` is then the newest
    slice's metric, e.g. the p99 latency in ms, and `slices_unjudged` the slices with too few
    samples). `target` is the share that must be good: the objective for ratio SLIs, the budgeting
    target for timeslice ones.
    """

    slo: str
    dimension: Dimension
    model: str
    version: str | None
    segment: dict[str, str]
    ts: str
    sli: float | None
    objective: float
    target: float
    window: str
    budgeting: Literal["occurrences", "timeslices"]
    good: float
    total: float
    budget_remaining: float
    burn_rates: dict[str, float]
    events: dict[str, int]
    counted: Counted
    firing: list[str]
    period: CalendarPeriod | UnsetType = UNSET
    slices_unjudged: float | UnsetType = UNSET
    value: float | UnsetType | None = UNSET
    drift: list[dict[str, Any]] | dict[str, Any] | UnsetType = UNSET  # per feature; multivariate: one object
    fairness: dict[str, Any] | UnsetType = UNSET
    details: Any = UNSET
    burn_rates_to: str | UnsetType = UNSET
    label_coverage: LabelCoverage | UnsetType = UNSET
    baseline: float | UnsetType = UNSET
    low_traffic: dict[str, LowTraffic] | UnsetType = UNSET
    resolving: dict[str, str] | UnsetType = UNSET
    adjustments: list[Adjustment] | UnsetType = UNSET
    late_dropped: int | UnsetType = UNSET
    health: dict[str, Any] | UnsetType = UNSET


# ---- slo.alerts ---------------------------------------------------------------------------------


class Alert(_Message, tag="alert", tag_field="type"):
    """A firing or resolved transition of one alert rule of an SLO and key (report.py, incidents.py)."""

    id: str
    state: AlertState
    severity: Severity
    rule: str
    slo: str | None
    dimension: Dimension
    model: str
    version: str | None
    segment: dict[str, str]
    owner: str | None
    burn_rates: dict[str, float]
    budget_remaining: float | None
    started_at: str
    ts: str
    summary: str
    actions: list[str]
    runbook: str | None
    windows: RuleWindows | UnsetType = UNSET
    threshold: float | UnsetType = UNSET
    cleared_at: str | UnsetType = UNSET
    adjustments: list[Adjustment] | UnsetType = UNSET
    silenced: AdjustmentRef | UnsetType = UNSET
    silence_ended: str | UnsetType = UNSET
    drift: list[dict[str, Any]] | dict[str, Any] | UnsetType = UNSET  # per feature; multivariate: one object
    fairness: dict[str, Any] | UnsetType = UNSET
    details: Any = UNSET
    inhibited_by: str | UnsetType = UNSET
    incident_id: str | UnsetType = UNSET


# ---- slo.incidents ------------------------------------------------------------------------------


class IncidentMember(_Message):
    """One alert episode of an incident."""

    alert_id: str
    slo: str | None
    dimension: Dimension
    rule: str
    severity: Severity
    segment: dict[str, str]
    started_at: str
    state: AlertState
    resolved_at: str | None
    inhibited_by: str | None
    burn_rates: dict[str, float]
    budget_remaining: float | None
    windows: RuleWindows | UnsetType = UNSET
    threshold: float | UnsetType = UNSET


class Incident(_Message, tag="incident", tag_field="type"):
    """One change of an incident: alerts grouped by cause (incidents.py)."""

    id: str
    seq: int
    state: AlertState
    change: Literal["opened", "joined", "left", "resolved"]
    severity: Severity
    model: str
    owner: str | None
    group: dict[str, str]
    slo: str | None
    dimension: Dimension | None
    opened_at: str
    ts: str
    resolved_at: str | None
    keys: int
    members: list[IncidentMember]
    inhibited: list[dict[str, Any]]
    explained_by: dict[str, Any] | None
    cause: dict[str, Any] | None
    summary: str
    actions: list[str]
    runbook: str | None


# ---- slo.dead-letter ----------------------------------------------------------------------------


class DeadLetter(_Message, tag="dead_letter", tag_field="type"):
    """A message that could not be used, where it came from, and why (build it with `dead_letter`).

    `topic`, `partition` and `offset` locate the refused message (for files: the file and line);
    `offset` is -1 when it has none (a notice the notifier built itself). `model` and `ts` (RFC 3339)
    are null when they cannot be read. The notifier adds `alert_id`, and for a notice a receiver
    refused for good, the `route` and the notice `kind` (firing | resolved | reminder for alerts,
    post | update | open | resolve for incidents).
    """

    topic: str
    partition: int
    offset: int
    stage: Stage
    error: str
    payload: str
    payload_bytes: int
    model: str | None
    ts: str | None
    alert_id: str | UnsetType = UNSET
    route: str | UnsetType = UNSET
    kind: str | UnsetType = UNSET

    def to_dict(self) -> dict[str, Any]:
        """The message as JSON-ready builtins (what the sinks write)."""
        return msgspec.to_builtins(self)


def dead_letter(topic: str, partition: int, offset: int, stage: Stage, error: str, payload: bytes | None, *,
                model: str | None = None, ts: str | None = None, **notifier: str | None) -> DeadLetter:
    """The one way to build a dead letter: the payload cut to `MAX_DEAD_LETTER_PAYLOAD_BYTES`
    (trailing newline dropped, invalid UTF-8 replaced), its full size in `payload_bytes`."""
    raw = (payload or b"").rstrip(b"\r\n")
    text = raw[:MAX_DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", "replace")
    extra = {k: v for k, v in notifier.items() if v is not None}
    return DeadLetter(topic=topic, partition=partition, offset=offset, stage=stage, error=error, payload=text,
                      payload_bytes=len(raw), model=model, ts=ts, **extra)


# ---- rollout.decisions --------------------------------------------------------------------------


class Check(_Message):
    """One finding behind a rollout decision."""

    code: str
    outcome: Literal["hold", "rollback"]
    message: str
    dimension: str | None


class Decision(_Message, tag="rollout_decision", tag_field="type"):
    """What the rollout controller decided for one model version, and why (rollout.py)."""

    model: str
    version: str
    decision: Literal["promote", "hold", "rollback"]
    result: Literal[1, 0, -1]
    allow: bool
    reasons: list[str]
    checks: list[Check]
    budgets: dict[str, Any]
    overrides: list[dict[str, Any]]
    canary: list[dict[str, Any]]
    stable_version: str | None
    ts: str


# ---- label store (metrics only) -----------------------------------------------------------------


class LabelStore(_Message):
    """How far the label join has read, summed over shards (judge.py; flows/metrics.py reads it)."""

    model: str
    segment: dict[str, str]
    ts: str
    pending: int = 0
    held_labels: int = 0
    joined: int = 0
    late: int = 0
    expired: int = 0
    evicted: int = 0
    rejected_labels: int = 0
    unanswered: int = 0
    late_labels: int = 0


#: Any message on an output topic, told apart by its `type` tag:
#: `msgspec.json.Decoder(OutputMessage).decode(raw)` returns a Budget, Alert, Incident, DeadLetter or Decision.
OutputMessage = Budget | Alert | Incident | DeadLetter | Decision

#: What the flow's steps hand on: `(kind, message)`, kind "budget" | "alert" | "incident" |
#: "dead_letter" (their Structs) or "label_store" (a dict), or a judge part's `("tick", TickPart)`.
Output = tuple[str, Any]


# ---- writing ------------------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()  # encodes under the GIL: safe to share between Bytewax worker threads


def encode(message: Any) -> bytes:
    """A message (a Struct, or a dict of builtins) as one JSON text."""
    return _ENCODER.encode(message)


def encode_lines(messages: Iterable[Any]) -> bytes:
    """Messages as JSON Lines: one JSON text and a newline each."""
    return _ENCODER.encode_lines(messages)


_STRUCT_OF: dict[str, type[Any]] = {"budget": Budget, "alert": Alert, "incident": Incident}


def upgraded(kind: str, message: Any) -> Any:
    """A message a recovery state kept from before the flow carried Structs (a dict) as its Struct;
    anything else as it is. For the `__setstate__` of the states that hold messages."""
    struct = _STRUCT_OF.get(kind)
    return msgspec.convert(message, struct) if struct is not None and isinstance(message, dict) else message


# ---- reading ------------------------------------------------------------------------------------


class BudgetRead(Budget, forbid_unknown_fields=False):
    """A `Budget` as a reader takes it: top-level fields it does not know are ignored."""


class AlertRead(Alert, forbid_unknown_fields=False):
    """An `Alert` as a reader takes it: top-level fields it does not know are ignored."""


class IncidentRead(Incident, forbid_unknown_fields=False):
    """An `Incident` as a reader takes it: top-level fields it does not know are ignored."""


def read_as(message: Any, kind: type[T]) -> tuple[T | None, str | None]:
    """(`message` converted to `kind`, None), or (None, the first problem with its field path, as
    `read_message` says it)."""
    try:
        return msgspec.convert(message, type=kind, strict=True), None
    except msgspec.ValidationError as e:
        text, _, where = str(e).partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    missing = text.removeprefix("Object missing required field `")
    if missing != text:
        name = missing.rstrip("`")
        return None, f"{path + '.' if path else ''}{name}: required field missing"
    text = text.replace("`", "")
    return None, f"{path or 'message'}: {text[:1].lower()}{text[1:]}"


def read_message(message: dict[str, Any], kind: type[Any]) -> str | None:
    """None when `message` converts to `kind`, else the first problem with its field path
    (msgspec's "Expected `str`, got `int` - at `$.segment.region`" reads "segment.region: expected
    str, got int")."""
    return read_as(message, kind)[1]
