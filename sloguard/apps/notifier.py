"""The ``sloguard notifier`` command line, kept free of heavy imports so that building the
``sloguard`` parser stays instant: the notifier itself (Kafka, slack_sdk, requests) is imported
only when the subcommand runs."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["DEFAULT_GROUP_ID", "add_parser"]

DEFAULT_GROUP_ID = "sloguard-notifier"


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
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides the config)")
    p.add_argument("--group-id", help=f"consumer group (default: notifier.group_id or {DEFAULT_GROUP_ID})")
    p.add_argument("--state-file", help="ledger of delivered notices (default: notifier.state_file)")
    p.add_argument("--dry-run", action="store_true", help="print what would be posted; post and commit nothing")
    p.add_argument("--alerts", metavar="JSONL", help="preview an alerts file (no Kafka, nothing posted)")
    p.add_argument("--check", action="store_true", help="check the config and that every route's secret "
                   "is readable, then exit")
    p.add_argument("--stop-after", type=float, metavar="SECONDS", help="stop after this long")
    from sloguard.connectors.service_metrics import add_metrics_args

    add_metrics_args(p)
    p.set_defaults(func=_cmd)
    return p


def _cmd(args: argparse.Namespace) -> int:
    from sloguard.connectors.notifier import cmd

    return cmd(args)
