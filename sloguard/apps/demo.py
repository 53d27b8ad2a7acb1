"""`sloguard demo`: generated fraud and recommender traffic, the dataflow, and the alerts it raises.

Like `cli.py` this is an edge of the package (it writes files and prints); the core modules stay pure.
The alerts shown as they fire are the flow's own `Alert` Structs, handed over as the replay writes
them; the budgets, alerts and incidents the rollout policy replays from the output files are checked
against their types (`sloguard.apps.runs`): a renamed field stops the demo naming the file and
field. A scenario's manifest is no output message: it stays a dict.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import msgspec
import orjson

from sloguard.apps.runs import read_checked
from sloguard.core.messages.outputs import Alert, AlertRead, BudgetRead, Decision, IncidentRead
from sloguard.core.spec.config import load_config
from sloguard.core.spec.timeutil import parse_rfc3339, to_rfc3339

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

_COLOURS = {"page": "\033[31m", "ticket": "\033[33m", "resolved": "\033[32m",
            "rollback": "\033[31m", "hold": "\033[33m", "promote": "\033[32m"}
_RESET = "\033[0m"
_TIMELINE_SHOWN = 8


def format_alert(alert: Alert, colour: bool) -> str:
    """One line per alert transition: time, state, severity, rule, SLO, segment, summary."""
    seg = ",".join(f"{k}={v}" for k, v in alert.segment.items()) or "(whole model)"
    tag = "RESOLVED" if alert.state == "resolved" else alert.severity.upper()
    line = f"{alert.ts[:19]}  {tag:8} {alert.rule:16} {seg:24} {alert.summary}"
    if colour:
        c = _COLOURS["resolved" if alert.state == "resolved" else alert.severity]
        line = f"{c}{line}{_RESET}"
    return line


def detection_table(manifest: dict[str, Any], alerts: list[Alert]) -> list[str]:
    """For each injected incident: the first matching alert and how long after the start it came."""
    rows = [f"{'incident':24} {'segment':18} {'expected':34} {'detected after':>14}"]
    for inc in manifest["incidents"]:
        seg = ",".join(f"{k}={v}" for k, v in inc["segment"].items()) or "(whole model)"
        hits = [
            parse_rfc3339(a.ts) - inc["start"]
            for a in alerts
            if a.state == "firing"
            and a.rule == inc["rule"]
            and a.segment == inc["segment"]
            and (a.slo in inc["slos"] or inc["rule"] == "no-data")
            and parse_rfc3339(a.ts) >= inc["start"]
        ]
        found = f"{min(hits):.0f} s" if hits else "MISSED"
        expected = f"{inc['rule']} on {inc['slos'][0] if inc['rule'] != 'no-data' else 'the model'}"
        rows.append(f"{inc['name']:24} {seg:18} {expected:34} {found:>14}")
    return rows


def main_reasons(decision: Decision, n: int = 2) -> list[str]:
    """The reasons that decided a ``rollout.decisions`` message, most telling first: for a rollback
    the canary comparison (it carries the test and p-value), then the pages; for a hold the first
    holds; for a promote the canary comparisons that passed."""
    if decision.decision == "promote":
        return [c["message"] for c in decision.canary][:n] or ["every check passed"]
    checks = [c for c in decision.checks if c.outcome == decision.decision]
    checks.sort(key=lambda c: not c.code.startswith("canary-worse"))
    return [c.message for c in checks][:n]


def format_decision(decision: Decision, colour: bool) -> str:
    """One line per published rollout decision: event time, decision, model and version, why."""
    reasons = main_reasons(decision, 1)
    more = len(decision.reasons) - (1 if decision.decision != "promote" else 0)
    tail = f" (+{more} more)" if more > 0 else ""
    line = (f"{decision.ts[:19]}  {decision.decision.upper():8} {decision.model} {decision.version}: "
            f"{reasons[0] if reasons else ''}{tail}")
    if colour:
        line = f"{_COLOURS[decision.decision]}{line}{_RESET}"
    return line


def rollout_summary(manifest: dict[str, Any], decisions: list[Decision]) -> tuple[list[str], bool]:
    """What the rollout controller decided on the scenario's canary, in order, and whether that is
    what the scenario calls for: a canary with a `canary_regression` incident is rolled back and
    never promoted; a healthy canary is promoted and never rolled back."""
    model = manifest["scenario"]
    mine = [d for d in decisions if d.model == model]
    regression = next((i for i in manifest["incidents"] if i["kind"] == "canary_regression"), None)
    kinds = {d.decision for d in mine}
    if regression is not None:
        want = f"rollback ({regression['name']})"
        ok = "rollback" in kinds and "promote" not in kinds
    else:
        want = "promote (a healthy canary)"
        ok = "promote" in kinds and "rollback" not in kinds
    if not mine:
        return [f"{model}: no rollout decision published; expected {want}: MISSED"], False
    versions = sorted({(d.version, d.stable_version or "?") for d in mine})
    changes = [d for i, d in enumerate(mine) if i == 0 or d.decision != mine[i - 1].decision]
    steps = [f"{d.ts[11:16]} {d.decision.upper() if d.decision != 'hold' else 'hold'}" for d in changes]
    if len(steps) > _TIMELINE_SHOWN:
        steps = [*steps[:_TIMELINE_SHOWN], f"... {len(steps) - _TIMELINE_SHOWN} more"]
    lines = [
        f"{model} canary {', '.join(f'{v} (stable {s})' for v, s in versions)}: expected {want}: "
        + ("as expected" if ok else "NOT AS EXPECTED"),
        "  " + "  ->  ".join(steps),
    ]
    verdict = next((d for d in mine if d.decision != "hold"), mine[-1])
    lines.append(f"  {verdict.decision.upper()} at {verdict.ts[11:16]}:")
    lines += [f"    - {r}" for r in main_reasons(verdict)]
    if verdict.decision == "rollback" and not any(c.code.startswith("canary-worse") for c in verdict.checks):
        tested = next((d for d in mine if any(c.code.startswith("canary-worse") for c in d.checks)), None)
        if tested is not None:  # once the canary has the traffic for a verdict, the test confirms it
            lines.append(f"  canary analysis at {tested.ts[11:16]}:")
            lines += [f"    - {r}" for r in main_reasons(tested, 1)]
    return lines, ok


def decisions_from_outputs(config_path: Path, out: Path) -> list[Decision]:
    """The decisions `sloguard controller` would publish over a replay's budget and alert files,
    judged in event time (`sloguard.core.rollout.policy.replay_decisions`). Each message is checked
    against its type first, as the controller does: the policy would skip one it cannot read."""
    import yaml

    from sloguard.core.rollout.policy import replay_decisions
    from sloguard.core.rollout.spec import parse_rollout

    raw = yaml.safe_load(config_path.read_text()).get("rollout") or {}
    spec = parse_rollout(raw, load_config(config_path), str(config_path))
    kinds = {"budget": BudgetRead, "alerts": AlertRead, "incidents": IncidentRead}
    events = [e for name, kind in kinds.items() if (out / f"{name}.jsonl").exists()
              for e in read_checked(out / f"{name}.jsonl", kind)]
    events.sort(key=lambda e: parse_rfc3339(e["ts"]) or 0.0)  # stable: a tick's budgets, then its alerts
    return [d.message() for d in replay_decisions(spec, events)]


def run_replay_demo(out: Path, events: int = 250_000, seed: int = 7, stream: TextIO = sys.stdout) -> int:
    """Generate both scenarios, replay them and print alerts as they fire, then a detection table."""
    from sloguard.apps.replay import replay, summary_line
    from sloguard.core.synth.scenarios import plan, write_scenario

    colour = stream.isatty()
    manifests: list[dict[str, Any]] = []
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
        seen: list[Alert] = []
        run = out / f"{scenario}-run"

        def show(alert: Alert, seen: list = seen) -> None:
            seen.append(alert)
            if alert.severity == "page" and (not alert.segment or "region" in alert.segment):
                print("  " + format_alert(alert, colour), file=stream)

        inputs = {k: paths[k] for k in ("inference", "labels", "features")}
        counts = replay(config, inputs, run, on_alert=show)
        print(f"\n    {summary_line(counts, run)}", file=stream)
        print("\n    " + "\n    ".join(detection_table(manifest, seen)), file=stream)
        control = [a for a in seen if a.segment.items() & manifest["control"].items()]
        print(f"\n    alerts in the control segment {manifest['control']}: {len(control)}", file=stream)
        decisions = decisions_from_outputs(EXAMPLES_DIR / f"{scenario}.yaml", run)
        lines, _ok = rollout_summary(manifest, decisions)
        print("\n    rollout controller (the same policy over these budgets and alerts):", file=stream)
        print("      " + "\n      ".join(lines), file=stream)
        show_notifications(seen, stream, incidents=list(read_checked(run / "incidents.jsonl", IncidentRead)))
        manifests.append(manifest)
    run_depth_demo(out, stream, seed=seed)
    scenarios = ["fraud", "recsys"]
    write_demo_report([(f"{s}-run", out / f"{s}-run") for s in scenarios], scenarios, manifests,
                      out / "report.html", stream)
    return 0


def write_demo_report(runs: list[tuple[str, Path]], scenarios: list[str], manifests: list[dict[str, Any]],
                      html: Path, stream: TextIO) -> None:
    """The HTML report (sloguard/apps/report.py) of the demo's outputs, incidents shaded; prints its path."""
    from sloguard.apps.backtest import slo_meta
    from sloguard.apps.report import write_report
    from sloguard.core.backtest.alert_quality import Incident

    incidents = [Incident.from_manifest(i, m["scenario"]) for m in manifests for i in m["incidents"]]
    metas = [slo_meta(load_config(EXAMPLES_DIR / f"{s}.yaml")) for s in scenarios]
    meta = {"evaluation_interval_s": min(m["evaluation_interval_s"] for m in metas),
            "slos": {k: v for m in metas for k, v in m["slos"].items()}}
    write_report(runs, incidents, html, metas={label: meta for label, _ in runs})
    print(f"\nreport: {html} (open it in a browser; it needs no network)", file=stream)


def show_notifications(alerts: list[Alert], stream: TextIO, shown: int = 4,
                       incidents: list[dict[str, Any]] | None = None) -> None:
    """What the notifier would post to Slack: one message per incident (its open and its resolve
    through an incoming webhook; one message edited in place through the Slack Web API), beside
    what posting every alert would take; posts the incident notices when
    SLOGUARD_DEMO_SLACK_WEBHOOK is set."""
    import io
    import os

    from sloguard.connectors.notifier_preview import preview_alerts, preview_incidents

    webhook = os.environ.get("SLOGUARD_DEMO_SLACK_WEBHOOK")
    where = (
        "posted to SLOGUARD_DEMO_SLACK_WEBHOOK" if webhook else "would go to Slack (set SLOGUARD_DEMO_SLACK_WEBHOOK)"
    )
    per_alert = preview_alerts(msgspec.to_builtins(alerts), out=io.StringIO())  # the notifier reads dicts
    if incidents is None:
        print(f"\n    notifier: {len(per_alert)} messages for {len(alerts)} alerts {where}", file=stream)
        return
    buffer = io.StringIO()
    incidents = sorted(incidents, key=lambda m: str(m["ts"]))  # the live demo reads two models' topics
    p = preview_incidents(incidents, out=buffer, webhook=webhook)
    print(f"\n    notifier: {len(alerts)} alerts fold into {p.incidents} incidents: {p.webhook_messages} Slack "
          f"messages through incoming webhooks (open and resolve of each, {p.escalations} escalations, "
          f"{p.reminders} reminders), or {p.api_posts} through the Slack Web API, edited {p.api_edits} times "
          f"as keys join and resolve (+{p.api_replies} escalations and reminders in their threads); "
          f"{len(per_alert)} messages when every alert is posted; {where}; the first {shown}:", file=stream)
    previews: list[list[str]] = []
    for line in buffer.getvalue().splitlines():
        if line.startswith("[") or not previews:  # each notice starts with its [route]
            previews.append([])
        previews[-1].append(line)
    for lines in previews[:shown]:
        print("\n".join("      " + line for line in lines), file=stream)


def run_depth_demo(out: Path, stream: Any, events: int = 108_000, seed: int = 7) -> None:
    """`sloguard demo`'s epilogue: replay ml-depth and print its whole-model pages, the estimated
    precision's first (before any label of its predictions exists), then the detection table."""
    from sloguard.apps.replay import replay
    from sloguard.core.spec.config import load_config
    from sloguard.core.spec.timeutil import to_rfc3339
    from sloguard.core.synth.depth_scenario import DEFAULT_DURATION_S, generate_depth

    print(f"\n=== ml-depth: quality before the labels, fairness across intersections, joint drift "
          f"({EXAMPLES_DIR / 'ml-depth.yaml'})", file=stream)
    paths = generate_depth(out / "ml-depth", seed, rate=events / DEFAULT_DURATION_S)
    manifest = orjson.loads(paths["manifest"].read_bytes())
    withheld = manifest["labels_withheld"][0]
    print(f"    chargebacks of predictions from {to_rfc3339(withheld['from'])} to {to_rfc3339(withheld['to'])} "
          "come 3 days late; "
          "whole-model pages as they fire:\n", file=stream)
    seen: list[Alert] = []
    run = out / "ml-depth-run"

    def show(alert: Alert) -> None:
        seen.append(alert)
        if alert.severity == "page" and alert.state == "firing" and not alert.segment:
            d = alert.details or {}  # UNSET when the alert has none
            note = (f" [estimated {d['estimated']:.2f}, realised {d['realised']:.2f}]" if "realised" in d else
                    " [no label of these predictions yet]" if "expected" in d else "")
            print("  " + format_alert(alert, stream.isatty()) + note, file=stream)

    replay(load_config(EXAMPLES_DIR / "ml-depth.yaml"), {k: paths[k] for k in ("inference", "labels", "features")},
           run, on_alert=show)
    print("\n    " + "\n    ".join(detection_table(manifest, seen)), file=stream)
