"""Silences and budget adjustments, each with a reason and an end (issue 12, item 7).

Planned maintenance should not spend a budget, a launch may deserve a tighter quality budget for
a week, and a known issue being fixed should not page every hour. Alertmanager has silences,
Nobl9 budget adjustments; sloguard has one `adjustments:` config section (`sloguard adjust`
appends to it):

```yaml
adjustments:
  - {model: fraud, slo: fraud-latency, segment: {region: eu}, effect: exclude,
     start: 2026-01-01T02:00:00Z, end: 2026-01-01T03:00:00Z, reason: "eu database failover drill"}
  - {model: fraud, effect: scale, budget_factor: 0.5, start: ..., end: ..., reason: "launch week: half the budget"}
  - {model: recsys, slo: recsys-ctr, effect: silence, start: ..., end: ..., reason: "INC-123, fix deploying"}
```

Each applies to one model, optionally one SLO and one segment key (none: every SLO or every key),
over [start, end) of **event time**, so a replay over the period gives what the live run gave, and
an adjustment whose end has passed stops applying by itself:

* `exclude`: what happens in the period is left out of the budget: events in it count neither
  good nor bad (occurrences), and slices overlapping it are not counted bad (timeslices).
* `scale`: the error budget is multiplied by `budget_factor` for the period (0.5 halves it, 2
  doubles it): each bad event or bad slice in it costs 1 / budget_factor of a bad one.
* `silence`: the budget is untouched; alerts that fire in the period carry `silenced` (the
  notifier posts nothing for them), and an alert still firing when the silence ends is sent again
  then, without it.

Budget events and alerts of a key carry the adjustments in effect at their tick (`adjustments`);
their `good` and `sli` are the adjusted counts. `validate` refuses an adjustment without a reason
or an end, or whose model, SLO or segment attribute does not exist. Times have the evaluation
interval's resolution (a bucket or slice counts as in the period when it overlaps it).

An adjustment applies to what the flow counts after it is configured: declare maintenance ahead
of time. One added afterwards for a period already counted (forgiving an incident) takes effect
in a replay of that history (`sloguard replay`), not in the windows a running flow already holds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sloguard.core.spec.timeutil import epoch_of, to_rfc3339

EFFECTS = ("exclude", "scale", "silence")
KEYS = {"name", "model", "slo", "segment", "effect", "budget_factor", "start", "end", "reason", "by"}


@dataclass(frozen=True)
class Adjustment:
    """One silence or budget adjustment (see the module docstring)."""

    id: str
    model: str
    slo: str | None  # None: every SLO of the model (and its no-data alert)
    segment: str | None  # segment key "attr=value", "" for the whole-model key; None: every key
    effect: str
    start_s: float
    end_s: float
    reason: str
    budget_factor: float = 1.0
    by: str | None = None

    def active(self, t: float) -> bool:
        return self.start_s <= t < self.end_s

    def overlaps(self, start: float, end: float) -> bool:
        return start < self.end_s and end > self.start_s

    def matches(self, segment_key: str, slo: str | None) -> bool:
        return (self.slo is None or self.slo == slo) and (self.segment is None or self.segment == segment_key)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "effect": self.effect, "reason": self.reason,
                             "start": to_rfc3339(self.start_s), "end": to_rfc3339(self.end_s)}
        if self.effect == "scale":
            d["budget_factor"] = self.budget_factor
        return d


def parse_adjustments(raw: Any, segments: dict[str, tuple[str, ...]], slo_models: dict[str, str],
                      fail: Callable[[str, str], None]) -> tuple[Adjustment, ...]:
    """Validate the `adjustments:` section. `segments`: model -> its segment attributes;
    `slo_models`: SLO name -> its model; `fail(path, message)` records a problem."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        fail("adjustments", "must be a list of adjustments")
        return ()
    out: list[Adjustment] = []
    for n, a in enumerate(raw):
        path = f"adjustments[{n}]"
        if not isinstance(a, dict):
            fail(path, "must be a mapping (model, effect, start, end, reason, ...)")
            continue
        problems: list[str] = []

        def bad(field: str, message: str, _p: list = problems, _path: str = path) -> None:
            _p.append(field)
            fail(f"{_path}.{field}", message)

        for k in a:
            if k not in KEYS:
                bad(str(k), f"unknown key (expected one of: {', '.join(sorted(KEYS))})")
        model = a.get("model")
        if model not in segments:
            bad("model", f"unknown model {model!r} (models: {', '.join(segments)})")
        slo = a.get("slo")
        if slo is not None and slo_models.get(slo) != model:
            bad("slo", f"{slo!r} is not an SLO of model {model!r}")
        segment = _segment(a.get("segment"), segments.get(model, ()), bad)
        effect = a.get("effect")
        if effect not in EFFECTS:
            bad("effect", f"must be one of {', '.join(EFFECTS)}, got {effect!r}")
        factor = 1.0
        if effect == "scale":
            f = a.get("budget_factor")
            if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or f <= 0:
                bad("budget_factor", f"required for scale: a number > 0 (0.5 halves the budget), got {f!r}")
            else:
                factor = float(f)
        elif "budget_factor" in a:
            bad("budget_factor", "only a scale adjustment has a budget_factor")
        reason = a.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            bad("reason", "required: say why, for whoever reads the budget later")
        start, end = epoch_of(a.get("start")), epoch_of(a.get("end"))
        if start is None:
            bad("start", f"required: an RFC 3339 time with a zone, got {a.get('start')!r}")
        if end is None:
            bad("end", f"required: an RFC 3339 time with a zone (adjustments must end), got {a.get('end')!r}")
        if start is not None and end is not None and end <= start:
            bad("end", "must be after start")
        if problems:
            continue
        name = a.get("name")
        ident = str(name) if name else "adj-" + hashlib.sha256(
            "\x1f".join(map(str, (model, slo, segment, effect, factor, start, end, reason))).encode()).hexdigest()[:8]
        out.append(Adjustment(ident, str(model), slo, segment, str(effect), float(start), float(end),  # type: ignore[arg-type]
                              reason.strip(), factor, a.get("by")))
    ids = [x.id for x in out]
    for n, x in enumerate(out):
        if ids.index(x.id) != n:
            fail(f"adjustments[{n}].name", f"duplicate adjustment {x.id!r}")
    return tuple(out)


def _segment(raw: Any, attrs: tuple[str, ...], bad: Callable[[str, str], None]) -> str | None:
    if raw is None:
        return None
    if raw == {}:
        return ""
    if not isinstance(raw, dict) or len(raw) != 1 or not all(isinstance(v, str) for v in raw.values()):
        bad("segment", "must be one attribute and its value, e.g. {region: eu} ({} for the whole-model key)")
        return None
    (attr, value), = raw.items()
    if attr not in attrs:
        bad("segment", f"{attr!r} is not a segment attribute of the model ({', '.join(attrs) or 'none'})")
    return f"{attr}={value}"


def describe(adjustments: Iterable[Adjustment]) -> list[str]:
    """Lines for `sloguard validate`: one per adjustment."""
    lines = []
    for a in adjustments:
        segment = None if a.segment is None else a.segment or "(whole model)"
        scope = "/".join(x for x in (a.model, a.slo, segment) if x)
        factor = f" x{a.budget_factor:g}" if a.effect == "scale" else ""
        lines.append(f"  {a.id}: {a.effect}{factor} {scope} {to_rfc3339(a.start_s)} .. {to_rfc3339(a.end_s)}: "
                     f"{a.reason}")
    return lines


class ModelAdjustments:
    """One model's adjustments as the judge applies them (pure, deterministic in event time)."""

    def __init__(self, adjustments: Iterable[Adjustment], slos: tuple[Any, ...], columns: list[Any],
                 metric: list[bool], interval_s: int) -> None:
        self.all = tuple(adjustments)
        self.slos, self.columns, self.metric, self.interval_s = slos, columns, metric, interval_s
        self.budget = tuple(a for a in self.all if a.effect != "silence")

    def __bool__(self) -> bool:
        return bool(self.all)

    def active(self, segment_key: str, slo: str | None, t: float) -> list[Adjustment]:
        """Adjustments of this key and SLO in effect at tick `t`."""
        return [a for a in self.all if a.active(t) and a.matches(segment_key, slo)]

    def changing(self, segment_key: str, t: float) -> bool:
        """Whether any adjustment of this key is in effect at t or was one tick before (its budget
        events must be judged afresh, not repeated)."""
        return any(a.segment in (None, segment_key) and (a.active(t) or a.active(t - self.interval_s))
                   for a in self.all)

    def silence(self, segment_key: str, slo: str | None, t: float) -> Adjustment | None:
        return next((a for a in self.all if a.effect == "silence" and a.active(t) and a.matches(segment_key, slo)),
                    None)

    def rows(self, keys: np.ndarray, starts: np.ndarray, rows: np.ndarray, key_names: list[str]) -> np.ndarray:
        """Counter rows (occurrence SLOs' good/total) with excluded and scaled periods applied."""
        if not self.budget or not len(rows):
            return rows
        names = np.array(key_names, dtype=object)[keys]
        out = None
        for a in self.budget:
            when = (starts < a.end_s) & (starts + self.interval_s > a.start_s)
            if not when.any():
                continue
            sel = when if a.segment is None else when & (names == a.segment)
            if not sel.any():
                continue
            out = rows.copy() if out is None else out
            for i, slo in enumerate(self.slos):
                if self.metric[i] or (a.slo is not None and a.slo != slo.name):
                    continue
                c = self.columns[i]
                if a.effect == "exclude":
                    out[sel, c.good] = 0.0
                    out[sel, c.total] = 0.0
                else:  # scale: a bad event costs 1 / factor of one
                    bad = out[sel, c.total] - out[sel, c.good]
                    out[sel, c.good] = out[sel, c.total] - bad / a.budget_factor
        return rows if out is None else out

    def slice_weight(self, segment_key: str, i: int, start: float) -> float:
        """What a bad slice of SLO i starting at `start` costs: 0 excluded, 1 / factor scaled, else 1."""
        width = self.slos[i].budgeting.slice_s
        w = 1.0
        for a in self.budget:
            if a.matches(segment_key, self.slos[i].name) and a.overlaps(start, start + width):
                w = 0.0 if a.effect == "exclude" else w / a.budget_factor
        return w

    def slice_vector(self, segment_key: str, i: int, start: float, vector: np.ndarray) -> np.ndarray:
        """A judged slice's counter vector with its weight on the bad-slice column."""
        w = self.slice_weight(segment_key, i, start)
        if w == 1.0:
            return vector
        c = self.columns[i]
        out = vector.copy()
        if w == 0.0:  # excluded: the slice is not counted at all
            out[[c.good, c.total, c.unjudged]] = 0.0
        else:
            out[c.total] *= w
        return out

    def weights(self, segment_key: str, i: int, starts: np.ndarray) -> np.ndarray | None:
        """Weights of bad slices starting at `starts` (None when no adjustment touches them)."""
        if not any(a.matches(segment_key, self.slos[i].name) for a in self.budget):
            return None
        return np.array([self.slice_weight(segment_key, i, float(s)) for s in starts.tolist()])
