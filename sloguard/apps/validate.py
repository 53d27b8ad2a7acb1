"""`sloguard validate`: every section of a config file checked the way the commands read it, and a
description of what it defines (models, SLOs, alert policy, rollout), with warnings."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from sloguard.apps.checks import check_config_file
from sloguard.core.spec import adjustments
from sloguard.core.spec.model import Config
from sloguard.core.spec.timeutil import format_duration, to_rfc3339

if TYPE_CHECKING:
    from sloguard.core.rollout.spec import RolloutSpec


def cmd_validate(args: argparse.Namespace) -> int:
    from sloguard.core.spec.objective_check import objective_warnings, segment_warnings

    if args.schema:
        import json

        from sloguard.core.spec.config_schema import config_schema

        print(json.dumps(config_schema(), indent=2))
        return 0
    if args.config is None:
        print("error: validate needs a config file (or --schema)", file=sys.stderr)
        return 2
    checked = check_config_file(args.config)  # every section, all problems at once (what commands call)
    config, spec = checked.config, checked.rollout
    warnings = checked.warnings + segment_warnings(config) + objective_warnings(config)
    print(describe(config))
    if spec is not None:
        print("\n" + describe_rollout(spec))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"\n{args.config}: OK")
    return 0


def describe_rollout(spec: RolloutSpec) -> str:
    """A human summary of the rollout policy: floors, stops, canary analysis and overrides."""
    policy, canary = spec.policy, spec.canary
    floors = ", ".join(f"{k} {v:.0%}" for k, v in policy.min_budget_remaining.items()) or "no floors"
    which = "whole-model budgets" if policy.segments == "whole" else "the worst segment's budgets"
    stale = f"data older than {format_duration(policy.max_staleness_s)}" if policy.max_staleness_s else "no data"
    lines = [
        f"rollout: promote only with budget left >= {floors} ({which})"
        + ("; an exhausted budget freezes promotions" if policy.freeze_when_exhausted else ""),
        f"  hard stops [{', '.join(sorted(policy.hard_stop))}]: a page rolls back; "
        f"soft stops [{', '.join(sorted(policy.soft_stop))}]: a page holds; {stale} counts as missing",
    ]
    if canary.enabled:
        over = f" over {canary.lookback}" if canary.lookback else " over the SLO window"
        test = (
            f"one-sided p < {canary.alpha:g}, >= {canary.min_samples} requests per variant{over}"
            + (f", worse by > {canary.min_effect:g}" if canary.min_effect else "")
            + ("; blast-radius check on" if canary.blast_radius else "")
        )
        for model in spec.models:
            slos = ", ".join(s.name for s in spec.canary_slos(model)) or "nothing (set rollout.canary.slos)"
            lines.append(f"  canary vs stable of {model} on {slos}: {test}")
    else:
        lines.append("  canary analysis off")
    for o in spec.overrides:
        scope = " ".join(x for x in (o.model, o.version) if x) or "every model"
        lines.append(f"  override #{o.index}: {o.effect} {scope} until {to_rfc3339(o.expires_s)}: {o.reason}")
    return "\n".join(lines)


def _describe_scale(config: Config) -> str:
    """Where each model's work runs (scale.shards, scale.judge_parts): what a resume must keep."""
    parts = ("one part per worker (-w x processes of `sloguard run`; replay runs one shard and one part)"
             if config.judge_parts is None else f"{config.judge_parts} part{'s' if config.judge_parts > 1 else ''}")
    return f"scale: each model's events in {config.shards} shards, its judge in {parts}"


def describe(config: Config) -> str:
    """A human summary of a config: models, SLOs and their scaled alert rules."""
    lines = [
        f"evaluation every {format_duration(config.evaluation_interval_s)}, "
        f"allowed lateness {_duration_or_zero(config.allowed_lateness_s)}, "
        f"alerts resolve after {_duration_or_zero(config.resolve_hold_s)} without their rule holding",
        _describe_scale(config),
    ]
    for m in config.models.values():
        segs = ", ".join(f"{a} (added for fairness)" if a in m.added_segments else a for a in m.segments) or "none"
        lines.append(f"\nmodel {m.name}: segments [{segs}], no-data after {format_duration(m.no_data_after_s)}")
        for s in config.slos_of(m.name):
            how = (
                f"{s.budgeting.method} of {format_duration(s.budgeting.slice_s)}, "
                f"target {s.slo_target:g}, min {s.budgeting.min_samples} samples"
                if s.budgeting.method == "timeslices"
                else "occurrences"
            )
            obj = f"{s.objective:g}" + (
                f" (= {s.raw_objective.relative_to_baseline or 1 - (s.raw_objective.max_degradation or 0):g}"
                f" x baseline {s.baseline:g})"
                if s.baseline is not None
                else ""
            )
            lines.append(
                f"  {s.name} [{s.dimension}] {s.sli.kind}{_params(s.sli.params)} "
                f"objective {obj} over {s.calendar.describe() if s.calendar else s.window} ({how})"
            )
            if s.budgeting.min_label_share:
                lines.append(f"      a slice is judged once {s.budgeting.min_label_share:.0%} of its predictions have "
                             f"labels, or {_duration_or_zero(s.budgeting.label_wait_s)} after it ends")
            if s.resolve_hold_s != config.resolve_hold_s:
                hold = _duration_or_zero(s.resolve_hold_s)
                lines.append(f"      alerts resolve after {hold} without their rule holding (at least a slice)")
            for r in s.rules:
                lines.append(
                    f"      {r.severity:6} {r.name:12} burn >= {r.burn_rate:g} over {r.windows[0]} and {r.windows[1]}"
                )
    lines += ["", *config.incidents.describe()]
    if config.adjustments:  # sloguard.core.spec.adjustments is imported by the config already
        lines += ["\nadjustments (event time):", *adjustments.describe(config.adjustments)]
    return "\n".join(lines)


def _duration_or_zero(seconds: int) -> str:
    return format_duration(seconds) if seconds else "0s"


def _params(params: dict[str, Any]) -> str:
    return "" if not params else "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
