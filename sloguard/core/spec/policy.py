"""Burn-rate alert policies: data (with their source cited) turned into rules by pure functions.

The default policy, `policies/sre_workbook.yaml`, is the SRE workbook's multiwindow,
multi-burn-rate table for a 30-day window. `scale_rules` fits it to another SLO window by
scaling both windows in proportion and keeping the burn rates, so every rule still means "this
share of the budget was spent this fast" (Sloth and Pyrra do the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sloguard.core.spec.timeutil import format_duration, parse_duration
from sloguard.core.spec.yamlfile import load_yaml

POLICY_DIR = Path(__file__).parent / "policies"
NAMED_POLICIES = {"sre-workbook": POLICY_DIR / "sre_workbook.yaml"}


class PolicyError(ValueError):
    """A bad policy; `field` is the path inside the policy (`rules[1].burn_rate`), may be empty."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class AlertRule:
    """Fire when the burn rate over both windows is >= `burn_rate` (SRE workbook, ch. 5)."""

    name: str
    severity: str
    burn_rate: float
    long_window_s: int
    short_window_s: int

    @property
    def budget_consumed(self) -> float:
        """Share of a 30-day budget spent when the rule just fires: burn x long / window."""
        return self.burn_rate * self.long_window_s / (30 * 86_400)

    @property
    def windows(self) -> tuple[str, str]:
        return format_duration(self.long_window_s), format_duration(self.short_window_s)


def load_policy(
    spec: str | dict[str, Any], base_dir: Path | None = None
) -> tuple[tuple[AlertRule, ...], int]:
    """The rules of a policy and the SLO window they are written for.

    `spec` is a named policy (`sre-workbook`), a YAML file path, or an inline mapping with
    `slo_window` and `rules`. Raises `PolicyError` naming the bad field inside the policy.
    """
    if isinstance(spec, str):
        file = NAMED_POLICIES.get(spec)
        if file is None:
            file = (base_dir or Path.cwd()) / spec
            if not file.exists():
                raise PolicyError(
                    "",
                    f"unknown policy {spec!r}: neither a named policy ({', '.join(NAMED_POLICIES)}) nor a file",
                )
        spec = load_yaml(file.read_text())
    if not isinstance(spec, dict):
        raise PolicyError("", "a policy must be a mapping with slo_window and rules")
    try:
        window = parse_duration(spec.get("slo_window", "30d"))
    except ValueError as e:
        raise PolicyError("slo_window", str(e)) from None
    raw_rules = spec.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise PolicyError("rules", "a policy needs a non-empty list of rules")
    rules = []
    names = set()
    for i, r in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(r, dict):
            raise PolicyError(where, "must be a mapping")
        missing = {"name", "severity", "burn_rate", "long_window", "short_window"} - set(r)
        if missing:
            raise PolicyError(where, f"missing {', '.join(sorted(missing))}")
        if r["severity"] not in ("page", "ticket"):
            raise PolicyError(f"{where}.severity", f"must be page or ticket, got {r['severity']!r}")
        burn = r["burn_rate"]
        if isinstance(burn, bool) or not isinstance(burn, int | float) or burn <= 0:
            raise PolicyError(f"{where}.burn_rate", f"must be a positive number, got {burn!r}")
        if r["name"] in names:
            raise PolicyError(f"{where}.name", f"duplicate rule name {r['name']!r}")
        names.add(r["name"])
        long_s, short_s = _window(r, where, "long_window"), _window(r, where, "short_window")
        if short_s >= long_s:
            raise PolicyError(
                f"{where}.short_window",
                f"{r['short_window']} is not shorter than long_window {r['long_window']}",
            )
        rules.append(AlertRule(str(r["name"]), r["severity"], float(burn), long_s, short_s))
    return tuple(rules), window


def _window(rule: dict[str, Any], where: str, key: str) -> int:
    try:
        return parse_duration(rule[key])
    except ValueError as e:
        raise PolicyError(f"{where}.{key}", str(e)) from None


def scale_rules(
    rules: tuple[AlertRule, ...], policy_window_s: int, slo_window_s: int, step_s: int
) -> tuple[AlertRule, ...]:
    """Rules for an SLO window: windows x slo_window / policy_window, rounded to whole steps.

    `step_s` is the evaluation interval (or the time slice for timeslice SLOs); windows never go
    below one step. For a 30-day SLO the workbook table comes back unchanged.
    """
    scaled = []
    for r in rules:

        def fit(w: int) -> int:
            return max(step_s, round(w * slo_window_s / policy_window_s / step_s) * step_s)

        scaled.append(AlertRule(r.name, r.severity, r.burn_rate, fit(r.long_window_s), fit(r.short_window_s)))
    return tuple(scaled)
