"""The ``sloguard notifier`` command line, kept free of heavy imports so that building the
``sloguard`` parser stays instant: the notifier itself (Kafka, slack_sdk, requests) is imported
only when the subcommand runs."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from sloguard.apps.args import duration_arg
from sloguard.core.notify.notify_policy import DEFAULT_GROUP_ID

__all__ = ["add_parser", "cmd", "main"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``notifier`` subcommand to a ``sloguard`` argparse subparsers object; running it
    calls :func:`sloguard.connectors.notifier.cmd` (imported only then)."""
    p = subparsers.add_parser(
        "notifier",
        help="post slo.alerts to Slack (and generic webhooks), deduplicated and grouped",
        description="Consume the alerts topic in a consumer group and post each alert to its owner's "
        "route (Slack incoming webhook or generic JSON webhook). Offsets are committed only after "
        "the post was accepted; permanent failures go to the dead-letter topic. Webhook URLs come "
        "from environment variables or files named in the config's notifier.routes.",
    )
    p.add_argument("--config", help="sloguard config (its notifier:, kafka: and owners: sections)")
    p.add_argument("--notifier-config", help="a separate notifier config file (wins over --config)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the config's kafka.bootstrap_servers, "
                   "or KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--group-id", help=f"consumer group (default: notifier.group_id or {DEFAULT_GROUP_ID})")
    p.add_argument("--state-file", help="ledger of delivered notices (default: notifier.state_file)")
    p.add_argument("--dry-run", action="store_true", help="print what would be posted; post and commit nothing")
    p.add_argument("--alerts", metavar="JSONL", help="preview an alerts file (no Kafka, nothing posted)")
    p.add_argument("--check", action="store_true", help="check the config and that every route's secret "
                   "is readable, then exit")
    p.add_argument("--stop-after", type=duration_arg, metavar="DURATION",
                   help="stop after this long, e.g. 30s or 1h (default: run until SIGTERM or Ctrl-C)")
    from sloguard.connectors.service_metrics import add_metrics_args

    add_metrics_args(p)
    p.set_defaults(func=cmd)
    return p


def cmd(args: argparse.Namespace) -> int:
    """Run the ``notifier`` subcommand; exit status 0, or 2 for a config problem."""
    import orjson

    from sloguard.connectors.notifier import run_notifier
    from sloguard.connectors.notifier_config import NotifierConfigError, build_senders, load_notifier_config
    from sloguard.connectors.notifier_messages import parse_alert
    from sloguard.connectors.notifier_preview import iter_jsonl, preview_alerts, preview_incidents
    from sloguard.core.notify.notify_policy import NotifyPolicy
    from sloguard.core.spec.model import ConfigError

    try:
        if args.alerts:
            if not Path(args.alerts).is_file():
                print(f"error: --alerts: no such file: {args.alerts}", file=sys.stderr)
                return 2
            policy = NotifyPolicy()
            if args.config or args.notifier_config:
                policy = load_notifier_config(args.config, notifier_path=args.notifier_config).settings.policy
            messages = list(iter_jsonl(args.alerts))
            if messages and all(m.get("type") == "incident" for m in messages):
                p = preview_incidents(messages, policy, sys.stdout)
                print(f"{p.incidents} incidents -> {p.webhook_messages} webhook messages (opens and resolves, "
                      f"{p.escalations} escalations, {p.reminders} reminders); Slack API: {p.api_posts} messages, "
                      f"edited {p.api_edits} times, {p.api_replies} replies in their threads")
                return 0
            alerts = [a for m in messages if (a := parse_alert(orjson.dumps(m))[0]) is not None]
            batches = preview_alerts(alerts, policy)
            print(f"{sum(len(b.items) for b in batches)} alerts -> {len(batches)} messages")
            return 0
        from sloguard.apps.checks import check_config_file, is_whole_config

        if args.config and is_whole_config(args.config):  # every section, as `validate` checks it
            check_config_file(args.config)
        if args.check:
            cfg = load_notifier_config(args.config, notifier_path=args.notifier_config)
            if not cfg.settings.routes:  # the run refuses this too (without --dry-run)
                raise NotifierConfigError(["notifier.routes: no routes configured (add at least a default "
                                           "route; `--dry-run` prints what would be sent without any)"],
                                          str(args.notifier_config or args.config))
            build_senders(cfg.settings)
            for t in cfg.settings.targets():
                print(f"route {t.name}: {t.kind} via {t.source} (ok)")
            print(f"alerts topic {cfg.alerts_topic}, dead letters to {cfg.dead_letter_topic}")
            return 0
        from sloguard.connectors.service_metrics import serve_from_args

        if not logging.getLogger().handlers:  # a long-running command: say what it does
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        stats = run_notifier(args.config, notifier_config=args.notifier_config, bootstrap=args.bootstrap,
                             stop_after=args.stop_after, stop=stop, group_id=args.group_id,
                             state_file=args.state_file, dry_run=args.dry_run,
                             registry=serve_from_args(args))
        print(f"notifier stopped: {stats.as_dict()}", file=sys.stderr)
        return 0
    except (NotifierConfigError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m sloguard.apps.notifier ...``: the same as ``sloguard notifier ...``."""
    parser = argparse.ArgumentParser(prog="sloguard")
    sub = parser.add_subparsers()
    add_parser(sub).set_defaults(func=cmd)
    args = parser.parse_args(["notifier", *(sys.argv[1:] if argv is None else argv)])
    return cmd(args)


if __name__ == "__main__":
    raise SystemExit(main())
