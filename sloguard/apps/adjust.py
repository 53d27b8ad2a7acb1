"""``sloguard adjust``: append a silence or budget adjustment to a config's ``adjustments:`` section.

The entry is appended as one line of YAML, leaving the rest of the file (comments included) as it
was; the config is validated with the entry first, and nothing is written when it does not pass.
What the effects do is in `sloguard/core/spec/adjustments.py`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from sloguard.core.spec.config import load_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.spec.timeutil import parse_duration, parse_rfc3339, to_rfc3339

_TOP_KEY = re.compile(r"^[^\s#-][^:]*:")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "adjust",
        help="append a silence or budget adjustment (with a reason and an end) to a config",
        description="Append one entry to the config's adjustments: section, validated first. Effects: "
        "exclude (the period does not count toward the budget: planned maintenance), scale (the error "
        "budget times --budget-factor for the period: a launch), silence (alerts are marked silenced and "
        "not posted; the budget is untouched). Times are event time, RFC 3339 with a zone.",
        epilog="example: sloguard adjust --config examples/fraud.yaml --model fraud --slo fraud-latency "
        "--segment region=eu --effect exclude --start 2026-01-01T02:00:00Z --for 1h "
        "--reason 'eu database failover drill'",
    )
    p.add_argument("--config", type=Path, required=True, help="the config file to append to")
    p.add_argument("--model", required=True, help="the model the adjustment applies to")
    p.add_argument("--slo", help="one SLO of the model (default: every SLO, and the model's no-data alert)")
    p.add_argument("--segment", help="one segment key, attr=value (default: every key; '' for the whole model)")
    p.add_argument("--effect", required=True, choices=("exclude", "scale", "silence"),
                   help="exclude: the period counts toward no budget; scale: multiply the error budget by "
                   "--budget-factor; silence: no notifications, the budget untouched")
    p.add_argument("--budget-factor", type=float, help="scale: multiply the error budget (0.5 halves it)")
    p.add_argument("--start", help="RFC 3339 with a zone (default: now, the wall clock)")
    end = p.add_mutually_exclusive_group(required=True)
    end.add_argument("--end", help="RFC 3339 with a zone")
    end.add_argument("--for", dest="for_", metavar="DURATION", help="length from the start, e.g. 90m, 2h, 3d")
    p.add_argument("--reason", required=True, help="why: it is shown in budget events and alerts")
    p.add_argument("--by", help="who asked for it (optional)")
    p.add_argument("--name", help="an id for it (default: a hash of its fields)")
    p.set_defaults(func=cmd)


def entry_of(args: argparse.Namespace, now: float) -> dict[str, Any]:
    """The adjustments: entry the arguments describe (times as RFC 3339 strings)."""
    start = now if args.start is None else parse_rfc3339(args.start)
    if start is None:
        raise ConfigError([f"--start: not an RFC 3339 time with a zone: {args.start!r}"], "sloguard adjust")
    try:
        end = parse_rfc3339(args.end) if args.end is not None else start + parse_duration(args.for_)
    except ValueError as e:
        raise ConfigError([f"--for: {e}"], "sloguard adjust") from None
    if end is None:
        raise ConfigError([f"--end: not an RFC 3339 time with a zone: {args.end!r}"], "sloguard adjust")
    entry: dict[str, Any] = {"model": args.model}
    if args.name:
        entry["name"] = args.name
    if args.slo:
        entry["slo"] = args.slo
    if args.segment is not None:
        attr, sep, value = args.segment.partition("=")
        if args.segment and not sep:
            raise ConfigError([f"--segment: write attr=value, got {args.segment!r}"], "sloguard adjust")
        entry["segment"] = {attr: value} if args.segment else {}
    entry["effect"] = args.effect
    if args.budget_factor is not None:
        entry["budget_factor"] = args.budget_factor
    entry.update(start=to_rfc3339(start), end=to_rfc3339(end), reason=args.reason)
    if args.by:
        entry["by"] = args.by
    return entry


def appended(text: str, entry: dict[str, Any]) -> str:
    """`text` with `entry` appended to its top-level adjustments: list (created at the end if absent)."""
    item = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=1 << 20).strip()
    lines = text.splitlines()
    head = next((n for n, line in enumerate(lines) if re.match(r"^adjustments\s*:", line)), None)
    if head is None:
        tail = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{tail}\nadjustments:   # silences and budget adjustments (sloguard adjust)\n  - {item}\n"
    value = lines[head].split(":", 1)[1].split("#", 1)[0].strip()
    if value not in ("", "[]"):
        raise ConfigError(["adjustments: written inline; make it a block list (one '- {...}' per line) to append "
                           "with sloguard adjust"], "sloguard adjust")
    if value == "[]":
        lines[head] = lines[head].replace("[]", "", 1).rstrip()
    last, indent = head, "  "
    for n in range(head + 1, len(lines)):
        line = lines[n]
        if _TOP_KEY.match(line):
            break
        if line.strip() and not line.lstrip().startswith("#"):
            last = n
            if line.lstrip().startswith("- ") and indent == "  " and n == _first_item(lines, head):
                indent = line[: len(line) - len(line.lstrip())]
    if last == head:  # no entries yet: after the header's own comment lines
        while last + 1 < len(lines) and lines[last + 1].lstrip().startswith("#"):
            last += 1
    lines.insert(last + 1, f"{indent}- {item}")
    return "\n".join(lines) + "\n"


def _first_item(lines: list[str], head: int) -> int:
    return next((n for n in range(head + 1, len(lines)) if lines[n].lstrip().startswith("- ")), -1)


def cmd(args: argparse.Namespace, now: float | None = None) -> int:
    path: Path = args.config
    try:
        text = path.read_text()
    except FileNotFoundError:
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    entry = entry_of(args, time.time() if now is None else now)
    new = appended(text, entry)
    # validate the config with the entry before touching the file (relative paths: same directory)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".yaml", delete=False) as tmp:
        tmp.write(new)
    try:
        config = load_config(tmp.name)
    except ConfigError as e:
        os.unlink(tmp.name)
        raise ConfigError(e.problems, f"{path} with the new adjustment") from None
    os.replace(tmp.name, path)
    added = config.adjustments[-1]
    scope = ", ".join(x for x in (added.model, added.slo, added.segment) if x) or added.model
    print(f"{path}: added adjustment {added.id} ({added.effect} {scope}, {to_rfc3339(added.start_s)} .. "
          f"{to_rfc3339(added.end_s)}): {added.reason}")
    return 0
