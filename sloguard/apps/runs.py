"""A finished replay read back: its JSONL outputs, the incidents of scenario manifests, and the
workbook score of its pages (shared by `sloguard backtest`, `sloguard report` and the demo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from sloguard.core.backtest.alert_quality import (
    BudgetSummary,
    Incident,
    firing_spans,
    key_stats,
    score,
)
from sloguard.core.spec.model import ConfigError


def read_jsonl(path: Path) -> Any:
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def load_incidents(paths: list[Path]) -> list[Incident]:
    """Incidents of manifest.json files; a bad file raises ConfigError naming the file and field."""
    out = []
    for path in paths:
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError([f"cannot read incidents: {e}"], str(path)) from None
        entries = manifest.get("incidents") if isinstance(manifest, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(
                ["incidents: a list of {name, start, end[, model, detect_within_s]} is required"], str(path)
            )
        for i, entry in enumerate(entries):
            try:
                inc = Incident.from_manifest(entry, manifest.get("scenario"))
            except (KeyError, TypeError, ValueError) as e:
                raise ConfigError([f"incidents[{i}]: missing or bad field {e}"], str(path)) from None
            if not inc.model or inc.end < inc.start:
                raise ConfigError(
                    [f"incidents[{i}]: needs a model (or the manifest's scenario) and end >= start"], str(path)
                )
            out.append(inc)
    return out


def summarize(run_dir: Path, incidents: list[Incident]) -> dict[str, Any]:
    """Per key stats and the workbook score of one replay output directory (streams budget.jsonl)."""
    budget = BudgetSummary()
    for event in read_jsonl(run_dir / "budget.jsonl"):
        budget.add(event)
    spans = firing_spans(read_jsonl(run_dir / "alerts.jsonl"))
    run_end = budget.last_ts if budget.last_ts is not None else max((s.start for s in spans), default=0.0)
    mine = [i for i in incidents if i.model in {k[0] for k in budget.keys} or not budget.keys]
    result = score(spans, mine, run_end)
    return {
        "dir": str(run_dir),
        "start": budget.first_ts,
        "end": run_end,
        "score": result,
        "keys": key_stats(spans, budget, run_end),
        "spans": spans,
    }
