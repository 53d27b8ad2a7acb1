"""The `incidents:` config section: how alerts are grouped into incidents and which alerts mute others.

Alert streams fan out: one regional outage fires fast- and medium-burn pages on the region, on each
merchant type, on each variant and on the whole model. sloguard folds them the way Prometheus
Alertmanager does (https://prometheus.io/docs/alerting/latest/configuration/):

- **Grouping** (Alertmanager's `group_by`). Every alert has labels: `model`, `slo` (empty for
  model-wide alerts such as no-data), `dimension`, `rule`, `severity`, `owner` and `segment` (the
  key, `region=eu`; empty for the whole model). Firing alerts of one owner route whose `group_by`
  labels are equal form one incident. The default, `[model, severity]`, makes every page of a
  model to one owner route, whatever its SLO, dimension, rule and segment, one incident (stale
  features and the data-quality drop they cause; a drifting feature and the precision it costs),
  and its tickets another; `[model, dimension, severity]` keeps dimensions apart, `[model, slo,
  severity]` SLOs, adding `segment` keeps every key apart (no grouping), adding `rule` splits fast-
  from medium-burn pages. The owner is always part of the group, as Alertmanager groups within a
  route: an incident has one owner, so a fairness regression that also lowers precision pages the
  fairness owner and the quality owner once each.
- **Inhibition** (Alertmanager's `inhibit_rules`). While an alert matching `source_matchers` fires,
  alerts matching `target_matchers` whose `equal` labels have the same values are muted: they
  open no incident and join none (one muted after it joined stays), and are listed as inhibited. An alert never
  inhibits itself. Matchers are Alertmanager's: `label="value"`, `label!="value"`, `label=~"regex"`,
  `label!~"regex"` (regexes are anchored, as in Alertmanager).
- **Cause first.** `cause.lookback` (default 1h): of the SLOs and keys of the model that alerted
  within it (or still fire), the one whose burn started first is named as the incident's likely
  cause. A key burns while any of its SLO's page rules burns over its short window at least at the
  rule's rate; for labelled SLOs at the event time their burn windows end (`burn_rates_to`).
- **Explained by.** When one segment's share of the whole model's bad events over the short window
  of the incident's rule (what burns now) is at least `explain_share` (default 0.8), the incident
  says that segment explains it (timeslice SLOs: when it is the only value of its attribute that
  fires).

```yaml
incidents:
  enabled: true
  group_by: [model, severity]
  explain_share: 0.8
  cause: {lookback: 1h}
  inhibit:
    - source_matchers: ['rule="no-data"']     # a silent model: every other alert of it is noise
      target_matchers: ['rule!="no-data"']
      equal: [model]
    - source_matchers: ['severity="page"']    # while an SLO pages, its tickets add nothing
      target_matchers: ['severity="ticket"']
      equal: [model, slo]
```

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sloguard.core.spec.timeutil import format_duration, parse_duration

if TYPE_CHECKING:
    from sloguard.core.messages.outputs import Alert

LABELS = ("model", "slo", "dimension", "rule", "severity", "owner", "segment")
DEFAULT_GROUP_BY = ("model", "severity")
_MATCHER = re.compile(r'^\s*([a-z_]+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


def seg_key(segment: Mapping[str, str] | None) -> str:
    """A segment as label text: `region=eu`, empty for the whole model."""
    if not segment:
        return ""
    if len(segment) == 1:  # the flow's keys: one attribute
        for k, v in segment.items():
            return f"{k}={v}"
    return ",".join(f"{k}={v}" for k, v in sorted(segment.items()))


def alert_labels(alert: Alert) -> dict[str, str]:
    """The labels grouping and inhibition read from an alert message."""
    return {
        "model": alert.model,
        "slo": alert.slo or "",
        "dimension": alert.dimension,
        "rule": alert.rule,
        "severity": alert.severity,
        "owner": alert.owner or "",
        "segment": seg_key(alert.segment),
    }


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager matcher: `label op "value"`."""

    label: str
    op: str  # = != =~ !~
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.label, "")
        if self.op in ("=", "!="):
            return (have == self.value) == (self.op == "=")
        return (re.fullmatch(self.value, have) is not None) == (self.op == "=~")

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True)
class InhibitRule:
    """While a `source` alert fires, `target` alerts with the same `equal` labels are muted."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def mutes(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        return (all(m.matches(source) for m in self.source) and all(m.matches(target) for m in self.target)
                and all(source.get(label, "") == target.get(label, "") for label in self.equal))

    def describe(self) -> str:
        return (f"{', '.join(map(str, self.source)) or 'any'} mutes {', '.join(map(str, self.target)) or 'any'}"
                f" with equal {', '.join(self.equal) or '(nothing)'}")


def _m(text: str) -> Matcher:
    found = _MATCHER.match(text)
    assert found is not None, text
    return Matcher(found.group(1), found.group(2), found.group(3))


DEFAULT_INHIBIT = (
    InhibitRule((_m('rule="no-data"'),), (_m('rule!="no-data"'),), ("model",)),
    InhibitRule((_m('severity="page"'),), (_m('severity="ticket"'),), ("model", "slo")),
)


@dataclass(frozen=True)
class IncidentPolicy:
    """The `incidents:` section, validated (see the module docstring)."""

    enabled: bool = True
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT
    cause_lookback_s: int = 3600
    explain_share: float = 0.8

    def describe(self) -> list[str]:
        """What `sloguard validate` prints: how alerts become incidents."""
        if not self.enabled:
            return ["incidents: off (every alert stands alone; the notifier can only post alerts)"]
        lookback = format_duration(self.cause_lookback_s)
        lines = [f"incidents: firing alerts of one owner route with equal [{', '.join(self.group_by)}] are one "
                 f"incident; a segment with >= {self.explain_share:.0%} of the whole model's bad events explains it; "
                 f"the cause is what started burning first within {lookback}"]
        lines += [f"  inhibit: {rule.describe()}" for rule in self.inhibit] or ["  inhibit: none"]
        return lines

    def group_key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Owner route first (grouping happens within a route), then the group_by labels."""
        return (labels.get("owner", ""), *(labels.get(g, "") for g in self.group_by))


Fail = Callable[[str, str], None]


def _matchers(fail: Fail, value: Any, path: str) -> tuple[Matcher, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        fail(path, 'must be a list of matchers such as \'severity="page"\'')
        return ()
    out = []
    for i, text in enumerate(value):
        found = _MATCHER.match(text) if isinstance(text, str) else None
        if found is None:
            fail(f"{path}[{i}]", f'{text!r} is not a matcher: write label="value", label!="value", '
                 'label=~"regex" or label!~"regex"')
            continue
        label, op, val = found.groups()
        if label not in LABELS:
            fail(f"{path}[{i}]", f"unknown label {label!r} (labels: {', '.join(LABELS)})")
            continue
        if op in ("=~", "!~"):
            try:
                re.compile(val)
            except re.error as e:
                fail(f"{path}[{i}]", f"bad regex {val!r}: {e}")
                continue
        out.append(Matcher(label, op, val))
    return tuple(out)


def _labels(fail: Fail, value: Any, path: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(path, f"must be a list of labels ({', '.join(LABELS)})")
        return default
    bad = [v for v in value if v not in LABELS]
    if bad:
        fail(path, f"unknown label(s) {', '.join(bad)} (labels: {', '.join(LABELS)})")
        return default
    return tuple(value)


def parse_incident_policy(raw: Any, fail: Fail) -> IncidentPolicy:
    """Validate an `incidents:` mapping; each problem is reported with its path through `fail`."""
    if raw is None:
        return IncidentPolicy()
    if not isinstance(raw, dict):
        fail("incidents", f"must be a mapping, got {type(raw).__name__}")
        return IncidentPolicy()
    for key in raw:
        if key not in ("enabled", "group_by", "inhibit", "cause", "explain_share"):
            fail(f"incidents.{key}", "unknown key (expected one of: cause, enabled, explain_share, group_by, inhibit)")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        fail("incidents.enabled", "must be true or false")
        enabled = True
    group_by = _labels(fail, raw.get("group_by"), "incidents.group_by", DEFAULT_GROUP_BY)
    if "model" not in group_by:
        fail("incidents.group_by", "must include model: an incident belongs to one model")
    rules = DEFAULT_INHIBIT
    if "inhibit" in raw:
        items = raw["inhibit"] or []
        if not isinstance(items, list):
            fail("incidents.inhibit", "must be a list of rules ({source_matchers, target_matchers, equal})")
            items = []
        parsed = []
        for i, item in enumerate(items):
            path = f"incidents.inhibit[{i}]"
            if not isinstance(item, dict):
                fail(path, "must be a mapping with source_matchers, target_matchers and equal")
                continue
            for key in item:
                if key not in ("source_matchers", "target_matchers", "equal"):
                    fail(f"{path}.{key}", "unknown key (expected one of: equal, source_matchers, target_matchers)")
            source = _matchers(fail, item.get("source_matchers"), f"{path}.source_matchers")
            target = _matchers(fail, item.get("target_matchers"), f"{path}.target_matchers")
            if not source:
                fail(f"{path}.source_matchers", "needs at least one matcher (an empty one would mute everything)")
            parsed.append(InhibitRule(source, target, _labels(fail, item.get("equal"), f"{path}.equal", ("model",))))
        rules = tuple(parsed)
    cause = raw.get("cause") or {}
    lookback = 3600
    if not isinstance(cause, dict):
        fail("incidents.cause", "must be a mapping ({lookback: 1h})")
    else:
        for key in cause:
            if key != "lookback":
                fail(f"incidents.cause.{key}", "unknown key (expected: lookback)")
        if cause.get("lookback") is not None:
            try:
                lookback = parse_duration(cause["lookback"])
            except ValueError as e:
                fail("incidents.cause.lookback", str(e))
    share = raw.get("explain_share", 0.8)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0.5 <= share <= 1:
        fail("incidents.explain_share", f"must be a number in [0.5, 1], got {share!r}")
        share = 0.8
    return IncidentPolicy(enabled, group_by, rules, lookback, float(share))
