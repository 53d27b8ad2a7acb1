"""The `alerting:` settings shared by the top level and each SLO: burn-rate rules (a named policy or
a table), their severities, and the resolve hold that keeps a page from flapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sloguard.core.spec.check import Checker
from sloguard.core.spec.model import SEVERITIES
from sloguard.core.spec.policy import AlertRule, PolicyError, load_policy

DEFAULT_HOLD_TICKS = 5  # alerting.resolve_hold default, in evaluation intervals


def parse_hold(c: Checker, value: Any, path: str, default: int) -> int:
    """A resolve hold: a duration, or 0 to resolve as soon as the rule stops holding."""
    if value in (0, "0", "0s"):
        return 0
    held = c.duration(value, path, default)
    return default if held is None else held


def parse_severity(c: Checker, value: Any, path: str, default: str) -> str:
    sev = c.mapping(value, path, {"severity"}).get("severity", default)
    if sev not in SEVERITIES:
        c.fail(f"{path}.severity", f"must be page or ticket, got {sev!r}")
        return default
    return sev


def parse_rules(
    c: Checker,
    alerting: dict,
    path: str,
    base_dir: Path,
    inherited: tuple[AlertRule, ...] | None,
    inherited_window: int | None,
) -> tuple[tuple[AlertRule, ...], int]:
    """The rules of an `alerting:` block: a named policy, a policy file, or an explicit list."""
    if "rules" in alerting:
        try:
            return load_policy({"slo_window": alerting.get("slo_window", "30d"), "rules": alerting["rules"]})
        except PolicyError as e:
            c.fail(f"{path}.{e.field or 'rules'}", e.message)
            return (), 30 * 86_400
    if "policy" in alerting:
        try:
            return load_policy(alerting["policy"], base_dir)
        except PolicyError as e:
            c.fail(f"{path}.policy", str(e))
            return (), 30 * 86_400
    if inherited is not None and inherited_window is not None:
        return inherited, inherited_window
    return load_policy("sre-workbook")
