"""Alert quality per injected incident: what one incident costs the person on call (issue 12).

    python benchmarks/alert_quality_bench.py [--events 100000] [--seeds 7,11] [--scenarios fraud,recsys]
    python benchmarks/alert_quality_bench.py --score-only      # re-score the replays already in --out

For each seed and scenario: `sloguard generate` (seed 7 is `make demo`'s), a replay of the example
config over it (the same dataflow as `sloguard run`), then per injected incident
(sloguard/core/backtest/alert_bench.py):
pages and tickets raised, the messages the notifier would send (its default, one incident's open
and resolve through an incoming webhook, `sloguard.connectors.notifier_preview.preview_incidents`; per-alert
messages, `preview_alerts`, for a run without incidents.jsonl), detection time (first page; and of
the alert the manifest expects, as `sloguard demo` prints it), reset time, flaps (fire-resolve-fire
of one alert id within an hour); and per run the pages and messages that met no incident. When alerts carry an
`incident_id` (grouping by cause), the pages of one incident id count as one page; `teams` is how many
owner routes were paged (incidents group within a route, so one page per team is the goal).

Prints one table per run and a total line; `--json FILE` writes everything. The default of 100k
events per scenario is the density of `make demo` (live), where low-traffic segments flap most.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from sloguard.core.backtest.alert_bench import BenchResult, bench  # noqa: E402
from sloguard.core.backtest.alert_quality import parse_ts  # noqa: E402


def _last_ts(path: Path) -> float:
    """The `ts` of the last line of a JSONL file (the replay's last tick)."""
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 65_536))
        lines = [x for x in f.read().splitlines() if x.strip()]
    return parse_ts(orjson.loads(lines[-1])["ts"])


def run_one(scenario: str, seed: int, events: int, out: Path, config: Path, score_only: bool) -> dict[str, Any]:
    """Generate, replay and score one scenario; returns the timings and the bench result."""
    data, run = out / f"seed{seed}" / scenario, out / f"seed{seed}" / f"{scenario}-run"
    timings: dict[str, float] = {}
    if not score_only:
        from sloguard.apps.replay import replay
        from sloguard.core.spec.config import load_config
        from sloguard.core.synth.scenarios import plan, write_scenario

        t0 = time.perf_counter()
        write_scenario(plan(scenario, events=events, seed=seed), data)
        t1 = time.perf_counter()
        replay(load_config(config), {k: data / f"{k}.jsonl" for k in ("inference", "labels", "features")}, run)
        timings = {"generate_s": round(t1 - t0, 1), "replay_s": round(time.perf_counter() - t1, 1)}
    from sloguard.connectors.notifier_preview import preview_alerts, preview_incidents

    alerts = [orjson.loads(x) for x in (run / "alerts.jsonl").read_bytes().splitlines() if x.strip()]
    incidents_file = run / "incidents.jsonl"
    incidents = ([orjson.loads(x) for x in incidents_file.read_bytes().splitlines() if x.strip()]
                 if incidents_file.exists() else [])
    if incidents:  # the notifier's default: one incident, its open and resolve (incoming webhooks)
        sends = preview_incidents(incidents).sends
        messages = [[{"id": m["alert_id"], "state": "resolved", "started_at": m["started_at"]}
                     for m in s.message["members"]] for s in sends]
    else:  # per-alert mode (notifier.source: alerts), or a run without incidents
        batches = preview_alerts(alerts, out=io.StringIO())
        messages = [[p.alert for p in b.items] for b in batches]
    manifest = orjson.loads((data / "manifest.json").read_bytes())
    result = bench(alerts, manifest, _last_ts(run / "budget.jsonl"), messages)
    return {"scenario": scenario, "seed": seed, "events": events, "alerts": len(alerts), **timings,
            "result": result}


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def table(r: dict[str, Any]) -> list[str]:
    res: BenchResult = r["result"]
    head = (f"{r['scenario']} seed {r['seed']} ({r['events']:,} events): {r['alerts']} alert messages, "
            f"{res.messages} notifier messages{', grouped by incident_id' if res.grouped else ''}")
    rows = [head, f"  {'incident':26} {'pages':>5} {'teams':>5} {'tickets':>7} {'msgs':>5} {'detect s':>8} "
                  f"{'expected s':>10} {'reset s':>8} {'flaps':>5}"]
    for row in res.rows:
        reset = "firing" if row.still_firing else _s(row.reset_s)
        rows.append(f"  {row.incident.name:26} {row.pages:5} {len(row.teams):5} {row.tickets:7} {row.messages:5} "
                    f"{_s(row.detect_s):>8} "
                    f"{_s(row.expected_s):>10} {reset:>8} {row.flaps:5}")
    outside = res.to_json()
    rows.append(f"  {'outside incidents':26} {outside['pages_outside']:5} {'':5} {'':7} {res.messages_outside:5} "
                f"{'':8} {'':10} {'':8} {len(res.flaps):5} flaps in total ({res.page_flaps} of pages; "
                f"{len(res.refires)} re-firings within 1 h, counting those a new incident caused)")
    rows += [f"    page outside: {k}" for k in outside["pages_outside_keys"][:8]]
    rows += [f"    flap: {k}" for k in outside["flap_keys"][:8]]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="inference events per scenario (default 100000)")
    p.add_argument("--seeds", default="7,11", help="comma-separated seeds (default 7,11; 7 is the demo's)")
    p.add_argument("--scenarios", default="fraud,recsys")
    p.add_argument("--config-dir", type=Path, default=ROOT / "examples", help="where <scenario>.yaml is")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "alert-bench")
    p.add_argument("--score-only", action="store_true", help="score the replays already in --out")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for scenario in args.scenarios.split(","):
            r = run_one(scenario, seed, args.events, args.out, args.config_dir / f"{scenario}.yaml", args.score_only)
            print("\n".join(table(r)) + "\n", flush=True)
            results.append(r)
    rows = [row for r in results for row in r["result"].rows]
    total = {
        "incidents": len(rows),
        "pages": sum(x.pages for x in rows),
        "incidents_with_one_page": sum(x.pages == 1 for x in rows),
        "incidents_with_one_page_per_team": sum(x.pages == len(x.teams) >= 1 for x in rows),
        "missed": sum(x.pages == 0 for x in rows),
        "messages": sum(r["result"].messages for r in results),
        "pages_outside": sum(r["result"].to_json()["pages_outside"] for r in results),
        "refires": sum(len(r["result"].refires) for r in results),
        "flaps": sum(len(r["result"].flaps) for r in results),
        "page_flaps": sum(r["result"].page_flaps for r in results),
    }
    print("total: " + ", ".join(f"{k} {v}" for k, v in total.items()))
    if args.json:
        doc = {"total": total, "runs": [{**{k: v for k, v in r.items() if k != "result"},
                                         **r["result"].to_json()} for r in results]}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
