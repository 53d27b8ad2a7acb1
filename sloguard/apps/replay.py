"""`sloguard replay`: the dataflow over JSONL files, one worker, into out/{budget,alerts,incidents,dead_letter}.jsonl.

Also what the demo, the backtest and the scenarios call to replay a config over generated files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sloguard.apps.checks import check_config_file
from sloguard.core.spec.model import Config


def cmd_replay(args: argparse.Namespace) -> int:
    config = check_config_file(args.config).config  # every section, as validate checks it
    inputs = {"inference": args.inference, "labels": args.labels, "features": args.features}
    missing = [f"--{k} {p}" for k, p in inputs.items() if p is not None and not p.exists()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    # a progress line redrawn in place belongs on a terminal, not in a CI log or a pipe
    progress = not args.quiet and sys.stderr.isatty()
    counts = replay(config, {k: p for k, p in inputs.items() if p is not None}, args.out, progress=progress)
    print(summary_line(counts, args.out))
    return 0


def replay(
    config: Config, inputs: dict[str, Path], out: Path, *, progress: Any = False, on_alert: Any = None,
    now: float | None = None, keep_scale: bool = False,
) -> Counter:
    """Run the dataflow over JSONL inputs into out/{budget,alerts,dead_letter}.jsonl; returns counts.

    `progress`: True prints progress to stderr; a callable gets `(bytes read, bytes total, lines)`.
    `on_alert` gets each alert as it is written (the flow's `Alert` Struct).
    `now` (default: the wall clock, read once here at the edge) bounds how far in the future an
    event may be stamped (`limits.max_future_skew`). `keep_scale` keeps the config's shards and
    judge parts (tests: the outputs do not depend on them).
    """
    import time

    from bytewax.testing import run_main

    from sloguard.apps.streaming_gc import streaming_gc
    from sloguard.connectors.files import JsonlReplaySource, JsonlSink, ProgressPrinter
    from sloguard.flows.slo_flow import Sinks, build_flow

    # Replay runs one worker without recovery: shards and judge parts only spread keyed state over
    # workers and keep a recovery dir's layout, so one of each per model gives the same outputs for
    # less work per batch and tick.
    if not keep_scale:
        config = dataclasses.replace(config, shards=1, judge_parts=1)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("budget", "alerts", "dead_letter", "incidents"):  # an output with nothing in it is an empty file
        (out / f"{name}.jsonl").write_bytes(b"")
    topics = {k: config.topics[k] for k in ("inference", "labels", "features")}
    printer = ProgressPrinter(sys.stderr) if progress is True else None
    source = JsonlReplaySource(inputs, topics, progress=printer or (progress if callable(progress) else None),
                               not_after=time.time() if now is None else now,
                               max_future_skew_s=config.max_future_skew_s)
    alerts_sink: Any = JsonlSink(out / "alerts.jsonl")
    if on_alert is not None:
        from sloguard.connectors.files import TeeSink

        alerts_sink = TeeSink(alerts_sink, on_alert)
    sinks = Sinks(JsonlSink(out / "budget.jsonl"), alerts_sink, JsonlSink(out / "dead_letter.jsonl"),
                  JsonlSink(out / "incidents.jsonl"))
    flow = build_flow(config, source, sinks, sources=tuple(inputs))
    with streaming_gc():
        run_main(flow)
    if printer is not None:
        sys.stderr.write("\n")
    counts: Counter = Counter()
    for name in ("budget", "alerts", "dead_letter", "incidents"):
        with (out / f"{name}.jsonl").open("rb") as f:
            counts[name] = sum(1 for _ in f)
    return counts


def summary_line(counts: Counter, out: Path) -> str:
    return (
        f"wrote {counts['budget']:,} budget events, {counts['alerts']:,} alerts, {counts['incidents']:,} incident "
        f"messages and {counts['dead_letter']:,} dead letters to {out}/"
    )
