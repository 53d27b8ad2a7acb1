"""A finished replay read back: its JSONL outputs, the incidents of scenario manifests, and the
workbook score of its pages (shared by `sloguard backtest`, `sloguard report` and the demo).

`read_output` / `read_checked` read output messages as their types
(`sloguard.core.messages.outputs`): one that is not says where it is and which field, as
`UnreadableOutput` (the CLI prints it in one line), instead of a KeyError further on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sloguard.core.backtest.alert_quality import (
    BudgetSummary,
    Incident,
    firing_spans,
    key_stats,
    score,
)
from sloguard.core.messages.outputs import read_as
from sloguard.core.spec.model import ConfigError

T = TypeVar("T")


class UnreadableOutput(ValueError):
    """An output message that is not its type: where it is (file and line, or topic and offset) and the field."""


def _loads(raw: bytes | str, where: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise UnreadableOutput(f"{where}: malformed JSON: {e}") from None


def read_output(message: Any, kind: type[T], where: str) -> T:
    """`message` (a dict, or one JSON text) as `kind`, else `UnreadableOutput` naming `where` and the field."""
    if isinstance(message, bytes | str):
        message = _loads(message, where)
    typed, problem = read_as(message, kind)
    if typed is None:
        raise UnreadableOutput(f"{where}: {problem}")
    return typed


def read_checked(path: Path, kind: type) -> Iterator[dict[str, Any]]:
    """The messages of a JSONL output file as dicts (for readers of dicts, e.g. the rollout policy),
    each checked as `kind` first: `UnreadableOutput` names the file, line and field."""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                where = f"{path}: line {n}"
                message = _loads(line, where)
                read_output(message, kind, where)
                yield message


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
