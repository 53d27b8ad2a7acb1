"""``sloguard baseline``: read known-good JSONL history, write the baseline file(s) a config points at.

The files are read in event-time order (the replay source's merge, without a Bytewax run), parsed
like the flow parses them, and folded into `sloguard.core.evaluate.baseline.BaselineBuilder`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``baseline`` subcommand to the ``sloguard`` parser."""
    p = subparsers.add_parser(
        "baseline",
        help="reference distributions and baseline metrics from known-good history",
        description="Replays known-good inference (and labels) through the evaluator and writes, per model, "
        "the median per-slice value of every metric SLO (precision, F1, FPR gap, p99 latency, ...) and the "
        "reference distribution of every feature (quantile bins for numbers, category shares for strings). "
        "Relative objectives ({relative_to_baseline: 0.95}) and drift SLOs read this file. Example:\n"
        "  sloguard baseline --config examples/fraud.yaml --inference good/inference.jsonl "
        "--labels good/labels.jsonl --out examples/baselines/fraud.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", required=True, type=Path, help="the sloguard config (its baseline file may not exist yet)"
    )
    p.add_argument("--inference", required=True, type=Path, help="inference JSONL of a known-good period")
    p.add_argument("--labels", type=Path, help="labels JSONL for that period (needed for quality/fairness metrics)")
    p.add_argument("--features", type=Path, help="ml.features JSONL for that period (optional)")
    p.add_argument("--model", help="the model to write (default: every model of the config)")
    p.add_argument("--out", type=Path, help="where to write (default: the model's `baseline:` path in the config)")
    p.add_argument("--bins", type=int, default=50, help="reference quantile bins per numeric feature (default 50)")
    p.add_argument("--segment-min-values", type=int, default=1000,
                   help="values of a feature a segment key needs for its own drift reference; keys with fewer "
                   "are compared with the model's (default 1000)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd)
    return p


def cmd(args: argparse.Namespace) -> int:
    from sloguard.apps.checks import check_config_file
    from sloguard.connectors.files import JsonlReplaySource, ProgressPrinter
    from sloguard.core.evaluate.baseline import BaselineBuilder
    from sloguard.core.messages.batch import parse_batch
    from sloguard.flows.slo_flow import parse_spec

    config = check_config_file(args.config, baseline_pending=True).config
    inputs = {"inference": args.inference, "labels": args.labels, "features": args.features}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    missing = [f"--{k} {p}" for k, p in inputs.items() if not p.exists()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    models = [args.model] if args.model else list(config.models)
    if args.model and args.model not in config.models:
        print(f"error: unknown model {args.model!r} (models: {', '.join(config.models)})", file=sys.stderr)
        return 2
    if args.out and len(models) > 1:
        print("error: --out needs --model when the config has several models", file=sys.stderr)
        return 2
    targets = {m: args.out or config.models[m].baseline for m in models}
    unset = [m for m, t in targets.items() if t is None]
    if unset:
        print(f"error: no --out and no models.{unset[0]}.baseline in {args.config}", file=sys.stderr)
        return 2
    builder = BaselineBuilder(config, bins=args.bins, segment_min_values=args.segment_min_values)
    printer = None if args.quiet else ProgressPrinter(sys.stderr)
    topics = {k: config.topics[k] for k in inputs}
    part = JsonlReplaySource(inputs, topics, progress=printer, not_after=time.time(),  # the future starts now
                             max_future_skew_s=config.max_future_skew_s).build_part("baseline", "replay", None)
    spec = parse_spec(config)
    rejected = 0
    try:
        while True:
            for raw in part.next_batch():
                parsed = parse_batch(raw, spec)
                rejected += len(parsed.dead_letters)
                builder.add(parsed)
    except StopIteration:
        pass
    finally:
        part.close()
    if printer is not None:
        sys.stderr.write("\n")
    result = builder.result()
    for m, target in targets.items():
        doc = result[m]
        path = Path(target)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        metrics = ", ".join(f"{k}={v:g}" for k, v in doc["metrics"].items()) or "none"
        print(
            f"wrote {path}: {doc['events']:,} events, {doc['labels']:,} labels, "
            f"{len(doc['reference'])} feature references (own references for {len(doc['segment_references'])} "
            f"segment keys); metrics (median per slice): {metrics}"
        )
    if rejected:
        print(f"note: {rejected:,} input lines were rejected (as the flow would dead-letter them)", file=sys.stderr)
    return 0
