"""The ``sloguard controller`` command: check the config, wait for Kafka, start the gate and run the `Controller`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sloguard.connectors.controller_settings import DEFAULT_TOKEN_ENV
from sloguard.core.spec.model import ConfigError

if TYPE_CHECKING:
    from sloguard.connectors.kafka_config import KafkaSettings

log = logging.getLogger("sloguard.controller")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sloguard controller`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "controller",
        help="rollout controller: budgets and alerts -> promote/hold/rollback, plus the HTTP gate",
        description="Consume slo.budget and slo.alerts, publish promote / hold / rollback decisions "
        "to rollout.decisions whenever they change, and serve the deployment gate for Argo Rollouts "
        "(GET /v1/gate/{model}/{version}) and Flagger (POST /v1/flagger/{gate,check,rollback}). "
        f"The gate token comes from ${DEFAULT_TOKEN_ENV} or rollout.controller.token_file.",
    )
    p.add_argument("--config", type=Path, required=True, help="the sloguard YAML (with a rollout: section)")
    p.add_argument("--listen", help="HOST:PORT for the gate (default rollout.controller.listen or 127.0.0.1:8080)")
    p.add_argument("--group-id", help="consumer group (default sloguard-controller)")
    p.add_argument("--audit-log", type=Path, help="JSONL audit log of every decision served")
    p.add_argument("--state", type=Path, help="snapshot file for restarts")
    p.add_argument("--clock", choices=("wall", "event"), help="judge at wall-clock time or newest event time")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level (every message consumed)")
    from sloguard.connectors.service_metrics import add_metrics_args

    add_metrics_args(p)
    p.set_defaults(func=cmd_controller)
    return p


def cmd_controller(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM or Ctrl-C; exit status 0, or 2 for a config problem."""
    from sloguard.apps.checks import check_config_file
    from sloguard.connectors.admin import wait_for_kafka
    from sloguard.connectors.audit import AuditLog
    from sloguard.connectors.controller import Controller
    from sloguard.connectors.controller_settings import ControllerSettings, load_controller_config, parse_listen
    from sloguard.connectors.gate import Gate, GateServer
    from sloguard.connectors.service_metrics import register_controller, serve_from_args

    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_config_file(args.config)  # every section, as validate checks it
    config, spec, settings, kafka = load_controller_config(args.config)
    over: dict[str, Any] = {}
    if args.listen:
        try:
            over["host"], over["port"] = parse_listen(args.listen)
        except ValueError as e:
            print(f"error: --listen {e}", file=sys.stderr)
            return 2
    for attr, key in (
        ("group_id", "group_id"),
        ("audit_log", "audit_log"),
        ("state", "state_path"),
        ("clock", "clock"),
    ):
        if getattr(args, attr, None):
            over[key] = getattr(args, attr)
    if over:
        settings = ControllerSettings(**{**settings.__dict__, **over})
    if kafka.is_embedded:
        print(
            "error: no Kafka configured: set kafka.bootstrap_servers in the config or KAFKA_BOOTSTRAP_SERVERS "
            "(`sloguard broker` starts a local one)",
            file=sys.stderr,
        )
        return 2
    if settings.auth == "bearer" and not settings.tokens:
        print(
            f"error: the gate needs a token: set {settings.token_source.split(' ')[0]} or "
            "rollout.controller.token_file (or rollout.controller.auth: none for a local demo)",
            file=sys.stderr,
        )
        return 2
    stopping = False

    def _stop_waiting(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop_waiting)
    signal.signal(signal.SIGINT, _stop_waiting)
    inputs = [config.topics[k] for k in ("budget", "alerts")]
    if wait_for_kafka(kafka, inputs, sys.stderr, who="sloguard controller", stop=lambda: stopping) is None:
        return 0
    _ensure_topics(kafka, [config.topics[k] for k in ("decisions", "dead_letter", "incidents")])
    controller = Controller(config, spec, settings, kafka, config_path=args.config)
    if (registry := serve_from_args(args)) is not None:
        register_controller(registry, controller)
    audit = AuditLog(settings.audit_log)
    gate = Gate(controller.shared, settings.tokens, audit, settings.auth)
    server = GateServer(gate, settings.host, settings.port).start()
    log.info(
        "gate on %s (auth %s), consuming %s and %s as %s, publishing to %s",
        server.url, settings.auth, controller.topics["budget"], controller.topics["alerts"],
        settings.group_id, controller.topics["decisions"],
    )  # fmt: skip

    def _stop(signum: int, _frame: Any) -> None:
        controller.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        controller.run()
    finally:
        server.stop()
        audit.close()
    log.info("stopped: %s", json.dumps(controller.counters))
    return 0


def _ensure_topics(kafka: KafkaSettings, names: list[str]) -> None:
    from sloguard.connectors.admin import TopicAdminError, create_topics

    try:
        create_topics(kafka, names)
    except (TopicAdminError, Exception) as e:  # no create rights: the topics may exist already
        log.warning("could not create %s: %s", ", ".join(names), e)


def main(argv: list[str] | None = None) -> int:
    """``python -m sloguard.apps.controller --config C`` (the same as ``sloguard controller``)."""
    parser = argparse.ArgumentParser(prog="sloguard")
    sub = parser.add_subparsers()
    add_parser(sub)
    args = parser.parse_args(["controller", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_controller(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
