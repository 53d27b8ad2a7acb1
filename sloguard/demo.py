"""`sloguard demo`: generated fraud and recommender traffic, the dataflow, and the alerts it raises.

Like `cli.py` this is an edge of the package (it writes files and prints); the core modules stay pure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from sloguard.config import load_config
from sloguard.timeutil import parse_rfc3339, to_rfc3339

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"

_COLOURS = {"page": "\033[31m", "ticket": "\033[33m", "resolved": "\033[32m"}
_RESET = "\033[0m"


def format_alert(alert: dict[str, Any], colour: bool) -> str:
    """One line per alert transition: time, state, severity, rule, SLO, segment, summary."""
    seg = ",".join(f"{k}={v}" for k, v in alert["segment"].items()) or "(whole model)"
    tag = "RESOLVED" if alert["state"] == "resolved" else alert["severity"].upper()
    line = f"{alert['ts'][:19]}  {tag:8} {alert['rule']:16} {seg:24} {alert['summary']}"
    if colour:
        c = _COLOURS["resolved" if alert["state"] == "resolved" else alert["severity"]]
        line = f"{c}{line}{_RESET}"
    return line


def detection_table(manifest: dict[str, Any], alerts: list[dict[str, Any]]) -> list[str]:
    """For each injected incident: the first matching alert and how long after the start it came."""
    rows = [f"{'incident':24} {'segment':18} {'expected':34} {'detected after':>14}"]
    for inc in manifest["incidents"]:
        seg = ",".join(f"{k}={v}" for k, v in inc["segment"].items()) or "(whole model)"
        hits = [
            parse_rfc3339(a["ts"]) - inc["start"]
            for a in alerts
            if a["state"] == "firing"
            and a["rule"] == inc["rule"]
            and a["segment"] == inc["segment"]
            and (a["slo"] in inc["slos"] or inc["rule"] == "no-data")
            and parse_rfc3339(a["ts"]) >= inc["start"]
        ]
        found = f"{min(hits):.0f} s" if hits else "MISSED"
        expected = f"{inc['rule']} on {inc['slos'][0] if inc['rule'] != 'no-data' else 'the model'}"
        rows.append(f"{inc['name']:24} {seg:18} {expected:34} {found:>14}")
    return rows


def run_replay_demo(out: Path, events: int = 150_000, seed: int = 7, stream: TextIO = sys.stdout) -> int:
    """Generate both scenarios, replay them and print alerts as they fire, then a detection table."""
    from sloguard.cli import replay, summary_line
    from sloguard.scenarios import plan, write_scenario

    colour = stream.isatty()
    for scenario in ("fraud", "recsys"):
        config = load_config(EXAMPLES_DIR / f"{scenario}.yaml")
        data = out / scenario
        print(
            f"\n=== {scenario}: generating {events:,} events with injected incidents into {data}/",
            file=stream,
        )
        paths = write_scenario(plan(scenario, events=events, seed=seed), data)
        manifest = orjson.loads(paths["manifest"].read_bytes())
        print(
            f"    {to_rfc3339(manifest['start'])} .. {to_rfc3339(manifest['end'])}, control segment "
            f"{manifest['control']}; running the dataflow, alerts as they fire (pages and resolutions):\n",
            file=stream,
        )
        seen: list[dict[str, Any]] = []

        def show(alert: dict[str, Any], seen: list = seen) -> None:
            seen.append(alert)
            if alert["severity"] == "page" and (not alert["segment"] or "region" in alert["segment"]):
                print("  " + format_alert(alert, colour), file=stream)

        inputs = {k: paths[k] for k in ("inference", "labels", "features")}
        counts = replay(config, inputs, out / f"{scenario}-run", on_alert=show)
        print(f"\n    {summary_line(counts, out / f'{scenario}-run')}", file=stream)
        print("\n    " + "\n    ".join(detection_table(manifest, seen)), file=stream)
        control = [a for a in seen if a["segment"].items() & manifest["control"].items()]
        print(f"\n    alerts in the control segment {manifest['control']}: {len(control)}", file=stream)
        show_notifications(seen, stream)
    return 0


def show_notifications(alerts: list[dict[str, Any]], stream: TextIO, shown: int = 4) -> None:
    """What the notifier would post to Slack for these alerts (grouped per model and route), and
    posts them when SLOGUARD_DEMO_SLACK_WEBHOOK is set."""
    import io
    import os

    from connectors.notifier import preview_alerts

    webhook = os.environ.get("SLOGUARD_DEMO_SLACK_WEBHOOK")
    buffer = io.StringIO()
    batches = preview_alerts(alerts, out=buffer, webhook=webhook)
    previews: list[list[str]] = []
    for line in buffer.getvalue().splitlines():
        if line.startswith("[") or not previews:  # each message starts with its [route]
            previews.append([])
        previews[-1].append(line)
    where = (
        "posted to SLOGUARD_DEMO_SLACK_WEBHOOK" if webhook else "would go to Slack (set SLOGUARD_DEMO_SLACK_WEBHOOK)"
    )
    print(f"\n    notifier: {len(batches)} messages for {len(alerts)} alerts {where}; the first {shown}:", file=stream)
    for lines in previews[:shown]:
        print("\n".join("      " + line for line in lines), file=stream)
