"""`sloguard backtest` and `sloguard report`: several configs replayed over the same history, scored
against known incidents (sloguard/core/backtest/alert_quality.py), ranked, and drawn (sloguard/apps/report.py).

`run_config` is the seam: one config over the inputs into one directory (the `replay` dataflow,
plus `slos.json`, the alert thresholds the report draws). `run_backtest` runs one `run_config` per
config in its own worker process (spawned, at most one per core), so configs replay in parallel:
each parses the input itself, since what is parsed depends on the config (segments, features).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import orjson

from sloguard.apps.runs import load_incidents, summarize
from sloguard.core.backtest.alert_quality import (
    Incident,
    key_label,
    rank_key,
)
from sloguard.core.spec.config import load_config
from sloguard.core.spec.model import Config
from sloguard.core.stats.budget import budget_text

INPUTS = ("inference", "labels", "features")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "backtest",
        help="replay several configs over the same history and rank their alerting",
        description="Replay every --config over the same input files (one worker process per config, "
        "up to the number of cores), then score each: per SLO key pages, tickets, time firing, budget "
        "consumed and time to exhaustion; with --incidents the SRE workbook's precision, recall, detection "
        "and reset time of the pages. Writes OUT/<config>/ (replay outputs), OUT/backtest.json and "
        "OUT/report.html, and prints a table ranking the configs.",
    )
    p.add_argument("--config", type=Path, action="append", required=True, help="a config; repeat to compare")
    p.add_argument("--inference", type=Path, required=True, help="ml.inference events, one JSON per line")
    p.add_argument("--labels", type=Path, help="ml.labels events")
    p.add_argument("--features", type=Path, help="ml.features events")
    p.add_argument(
        "--incidents",
        type=Path,
        action="append",
        default=[],
        help="manifest.json of known incidents (the format `sloguard generate` writes); repeatable (default: none)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--json", action="store_true", help="print backtest.json to stdout instead of the table")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report (charts) of a replay's output directory",
        description="Budget burn-down, burn rates against alert thresholds, alert timeline and per-slice "
        "statistics per SLO and key, from OUT_DIR/budget.jsonl and alerts.jsonl; one HTML file that "
        "opens offline.",
    )
    p.add_argument("out_dir", type=Path, help="a `sloguard replay` (or backtest config) output directory")
    p.add_argument("--config", type=Path, help="the config replayed, for the alert thresholds (default: none drawn)")
    p.add_argument(
        "--incidents",
        type=Path,
        action="append",
        default=[],
        help="manifest.json of known incidents; repeatable (default: none)",
    )
    p.add_argument("--html", type=Path, help="where to write (default OUT_DIR/report.html)")
    p.set_defaults(func=cmd_report)


def slo_meta(config: Config) -> dict[str, Any]:
    """What the report needs of a config: the tick and each SLO's alert rules."""
    return {
        "evaluation_interval_s": config.evaluation_interval_s,
        "slos": {
            s.name: {
                "model": s.model,
                "dimension": s.dimension,
                "objective": s.objective,
                "window": s.window,
                "rules": [
                    {"name": r.name, "severity": r.severity, "burn_rate": r.burn_rate, "windows": list(r.windows)}
                    for r in s.rules
                ],
            }
            for s in config.slos
        },
    }


def run_config(config_path: Path, inputs: dict[str, Path], out: Path, progress: Any = None) -> dict[str, int]:
    """Replay one config over `inputs` into `out` (budget/alerts/dead_letter.jsonl and slos.json)."""
    from sloguard.apps.replay import replay

    config = load_config(config_path)
    counts = replay(config, inputs, out, progress=progress or False)
    (out / "slos.json").write_bytes(orjson.dumps(slo_meta(config), option=orjson.OPT_INDENT_2))
    return dict(counts)


_SHARED: Any = None  # the workers' progress array, inherited at spawn


def _init_worker(shared: Any) -> None:
    global _SHARED
    _SHARED = shared


def _run_in_worker(
    i: int, config_path: Path, inputs: dict[str, Path], out: Path, incidents: list[Incident]
) -> dict[str, Any]:
    def progress(done: int, total: int, _lines: int) -> None:
        _SHARED[i] = done / total if total else 1.0

    run_config(config_path, inputs, out, progress if _SHARED is not None else None)
    return summarize(out, incidents)  # here too, so that configs are also scored in parallel


def run_all(
    configs: list[tuple[str, Path]],
    inputs: dict[str, Path],
    out: Path,
    incidents: list[Incident],
    stream: Any = None,
) -> dict[str, dict[str, Any]]:
    """Every config into out/<label>/ and its `summarize`, in parallel worker processes (one per
    config, at most one per core); progress to `stream` if given."""
    import multiprocessing as mp

    if len(configs) == 1:
        label, path = configs[0]
        run_config(path, inputs, out / label, progress=stream is not None)
        return {label: summarize(out / label, incidents)}
    ctx = mp.get_context("spawn")  # a fresh interpreter: forking a process that may hold threads is unsafe
    shared = ctx.Array("d", len(configs), lock=False)
    workers = min(len(configs), os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(shared,)) as pool:
        futures = [
            pool.submit(_run_in_worker, i, p, inputs, out / label, incidents) for i, (label, p) in enumerate(configs)
        ]
        while wait(futures, timeout=0.5).not_done:
            if stream is not None:
                done = "  ".join(f"{label} {100 * shared[i]:5.1f}%" for i, (label, _) in enumerate(configs))
                stream.write(f"\rbacktest: {done} ")
                stream.flush()
    if stream is not None:
        stream.write("\n")
    return {label: f.result() for (label, _), f in zip(configs, futures, strict=True)}  # re-raises a worker's error


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _dur(x: float | None) -> str:
    return "-" if x is None else f"{x / 60:.1f}m"


def ranking_table(results: dict[str, dict[str, Any]], with_incidents: bool) -> list[str]:
    """The configs ranked best first (alert_quality.rank_key), one line each."""
    order = sorted(results, key=lambda label: rank_key(results[label]["score"]))
    rows = [
        f"{'rank':4} {'config':24} {'pages':>6} {'tickets':>8} {'precision':>9} {'recall':>7} "
        f"{'detect':>8} {'reset':>8}  worst budget left (whole model)"
    ]
    for n, label in enumerate(order, 1):
        r = results[label]
        s = r["score"]
        whole = [k for k in r["keys"] if k.key[2] == "{}" and k.budget_end is not None]
        worst = min(whole, key=lambda k: k.budget_end, default=None)
        worst_text = "-" if worst is None else f"{key_label(worst.key)} {budget_text(worst.budget_end)}"
        rows.append(
            f"{n:<4} {label:24} {s.pages:>6} {s.tickets:>8} {_pct(s.precision):>9} {_pct(s.recall):>7} "
            f"{_dur(s.detection_s):>8} {_dur(s.reset_s):>8}  {worst_text}"
        )
    if not with_incidents:
        rows.append("(no --incidents: precision and recall unknown; ranked by fewest pages)")
    return rows


def to_json(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    order = sorted(results, key=lambda label: rank_key(results[label]["score"]))
    return {
        "ranking": order,
        "configs": {
            label: {
                "dir": r["dir"],
                "start": r["start"],
                "end": r["end"],
                **r["score"].to_json(),
                "keys": [k.to_json() for k in r["keys"]],
            }
            for label, r in results.items()
        },
    }


def _labels(paths: list[Path]) -> list[tuple[str, Path]]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        out.append((p.stem if seen[p.stem] == 1 else f"{p.stem}-{seen[p.stem]}", p))
    return out


def _check_inputs(args: argparse.Namespace) -> dict[str, Path] | None:
    inputs = {k: getattr(args, k) for k in INPUTS if getattr(args, k) is not None}
    missing = [f"--{k} {p}" for k, p in inputs.items() if not p.exists()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return None
    return inputs


def cmd_backtest(args: argparse.Namespace) -> int:
    inputs = _check_inputs(args)
    if inputs is None:
        return 2
    configs = _labels(args.config)
    for _, path in configs:
        load_config(path)  # every config is valid before anything runs (ConfigError: exit 2)
    incidents = load_incidents(args.incidents)
    progress = sys.stderr if sys.stderr.isatty() else None
    began = time.monotonic()
    results = run_all(configs, inputs, args.out, incidents, progress)
    report = to_json(results)
    (args.out / "backtest.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if not args.no_report:
        from sloguard.apps.report import write_report

        write_report(
            [(label, args.out / label) for label, _ in configs], incidents, args.out / "report.html", results=results
        )
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    print("\n".join(ranking_table(results, bool(incidents))))
    where = f"{args.out}/backtest.json" + ("" if args.no_report else f" and {args.out}/report.html")
    print(f"\n{len(configs)} configs replayed in {time.monotonic() - began:.1f} s; wrote {where}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sloguard.apps.report import write_report

    if not (args.out_dir / "budget.jsonl").exists():
        print(
            f"error: {args.out_dir}/budget.jsonl: no such file (give a `sloguard replay --out` directory)",
            file=sys.stderr,
        )
        return 2
    label = args.out_dir.resolve().name
    metas = {label: slo_meta(load_config(args.config))} if args.config is not None else None
    html = args.html or args.out_dir / "report.html"
    write_report([(label, args.out_dir)], load_incidents(args.incidents), html, metas=metas)
    print(f"wrote {html}")
    return 0
