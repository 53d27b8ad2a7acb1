"""`sloguard run`: the dataflow on Kafka, live, with Bytewax recovery and cluster options.

Without `kafka.bootstrap_servers` (or `KAFKA_BOOTSTRAP_SERVERS`) the embedded broker is started
and the topics created, so `sloguard run` works on a laptop with nothing else installed.

Recovery: with `--recovery-dir`, Bytewax snapshots every model's state (windows, open slices,
firing alerts, recent ids) and the input offsets every `--snapshot-interval`; a restarted flow
resumes from the last snapshot, replays what came after, and repeats alerts with the same ids.
The number of recovery partitions (`--recovery-partitions`, fixed when the directory is first made)
bounds how far the flow can later be rescaled: keep it >= the number of workers you may run.

Stopping: SIGINT (Ctrl-C) or SIGTERM (`docker stop`, Kubernetes) ends every input partition after
its current batch, so the flow finishes its last epoch, flushes its outputs and exits 130 or 143
with one line, keeping for the resume what only looks finished (held labels, ticks not yet judged).
A second signal stops at once (exit 130). In a cluster, signal every process (a terminal's Ctrl-C does).
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sloguard.connectors.admin import create_topics, wait_for_kafka
from sloguard.connectors.kafka_config import KafkaSettings
from sloguard.connectors.kafka_io import KafkaJsonSink, KafkaRawSource, dead_letter_headers
from sloguard.core.spec.model import Config
from sloguard.flows.metrics import FlowMetrics
from sloguard.flows.slo_flow import Sinks, build_flow

INPUTS = ("inference", "labels", "features")
OUTPUTS = ("budget", "alerts", "dead_letter")


@dataclass
class RunOptions:
    """How to run the flow; the defaults are those of `sloguard run`."""

    workers: int = 1
    process_id: int | None = None
    addresses: list[str] | None = None
    recovery_dir: Path | None = None
    recovery_partitions: int = 8
    snapshot_interval_s: float = 10.0
    # Without recovery an epoch only paces the sources: at each epoch's end a source partition waits
    # for every process to finish the last epoch, and Bytewax 0.21 re-activates a waiting partition
    # at once, so in a cluster the faster process spins (perf: 378 of its worker's 2,967 samples in
    # Bytewax's loop with 1 s epochs, 36 of 2,838 with 10 s). 10 s is Bytewax's default and what
    # `--snapshot-interval` gives a run with recovery; outputs do not wait for an epoch to end.
    epoch_interval_s: float = 10.0
    tail: bool = True
    heartbeat_s: float | None = 30.0
    partitions: int = 1
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    metrics_retire_ticks: int = 10
    reset_state: frozenset[str] = frozenset()  # SLOs whose resumed state starts afresh (--reset-state)
    kafka_retry_max_s: float = 30.0  # longest wait between attempts while Kafka does not answer


def kafka_settings(config: Config) -> KafkaSettings:
    return KafkaSettings.from_mapping(config.kafka or None)


class StopRequest:
    """Whether a stop was asked for (see the module docstring); installed as the SIGINT and SIGTERM
    handler while the flow runs."""

    def __init__(self, out: Any = sys.stderr) -> None:
        self.signal: int | None = None
        self.out = out

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:  # the second: at once, as without this handler
            raise KeyboardInterrupt
        self.signal = signum
        print(f"sloguard run: {signal.Signals(signum).name}, stopping after the current batches "
              "(signal again to stop at once)", file=self.out, flush=True)

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM inside the block (from the main thread only, as Python allows)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        before = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in before.items():
                if handler is not None:  # None: installed outside Python, nothing to put back
                    signal.signal(s, handler)


def build_kafka_flow(config: Config, settings: KafkaSettings, options: RunOptions,
                     metrics: FlowMetrics | None = None, stop: StopRequest | None = None) -> Any:
    """The sloguard dataflow between the configured Kafka topics. Without `scale.judge_parts` in
    the config, each model's judge runs in as many parts as the run has workers, so each judges its
    share of the SLOs (one part on one worker, where a second would only fold the windows twice).
    Once `stop()` is true the sources end and the flow finishes without judging the input as over."""
    if config.judge_parts is None:
        workers = options.workers * max(1, len(options.addresses or ()))
        config = dataclasses.replace(config, judge_parts=max(1, min(64, workers)))
    source = KafkaRawSource(settings, {k: settings.topic(k) for k in INPUTS}, tail=options.tail,
                            heartbeat_s=options.heartbeat_s if options.tail else None,
                            on_lag=metrics.set_lag if metrics is not None else None, stop=stop)
    sinks = Sinks(
        KafkaJsonSink(settings, settings.topic("budget")),
        KafkaJsonSink(settings, settings.topic("alerts")),
        KafkaJsonSink(settings, settings.topic("dead_letter"), headers=dead_letter_headers),
        KafkaJsonSink(settings, settings.topic("incidents")) if config.incidents.enabled else None,
    )
    # the input really ends when a drained backlog reaches its end, not when a stop cut a partition
    # short (asked of the source, not of the signal: one that comes after the end changes nothing)
    drained = not options.tail
    return build_flow(config, source, sinks, finish_at_eof=(lambda: drained and not source.cut_short),
                      sources=tuple(source.list_parts()),
                      metrics=metrics, recovery=options.recovery_dir is not None, reset_state=options.reset_state)


def ensure_topics(settings: KafkaSettings, partitions: int, replication: int = 1) -> dict[str, str]:
    """Create the input and output topics, and rollout.decisions, if missing (idempotent)."""
    names = [settings.topic(k) for k in (*INPUTS, *OUTPUTS, "decisions", "incidents")]
    return create_topics(settings, names, partitions=partitions, replication=replication)


def run(config: Config, options: RunOptions, out: Any = sys.stderr) -> int:
    """Run the flow until stopped by SIGINT or SIGTERM (exit 128 + the signal, after a graceful stop:
    the module docstring) or, with `tail=False`, until the topics are drained.

    Exits 2 with a message (never a traceback) for what the user can fix: a recovery directory that
    is another flow's or writable by others; waits, saying so, for a Kafka that does not answer yet
    and for input topics that do not exist yet.
    """
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from sloguard.apps.streaming_gc import streaming_gc
    from sloguard.connectors import recovery as recovery_dir

    settings = kafka_settings(config)
    broker = None
    if settings.is_embedded:
        from sloguard.connectors.broker import EmbeddedBroker

        broker = EmbeddedBroker().start()
        settings = settings.with_bootstrap(broker.bootstrap_servers)
        print(f"no Kafka configured: embedded broker on {broker.bootstrap_servers}", file=out)
        ensure_topics(settings, options.partitions)
    try:
        inputs = [settings.topic(k) for k in INPUTS]
        meta = wait_for_kafka(settings, inputs, out, options.kafka_retry_max_s, who="sloguard run")
        parts = [f"{t}#{p}" for t in inputs for p in sorted(meta.topics[t].partitions)]
        recovery = None
        if options.recovery_dir is not None:
            recovery_dir.prepare(options.recovery_dir, options.recovery_partitions, parts)
            recovery = RecoveryConfig(str(options.recovery_dir), backup_interval=timedelta(0))
        metrics = None
        if options.metrics_port is not None:
            from prometheus_client import CollectorRegistry

            from sloguard.flows.metrics import rule_severities, serve

            metrics = FlowMetrics(CollectorRegistry(), rule_severities(config), options.metrics_retire_ticks)
            serve(metrics, options.metrics_port, options.metrics_address)
            print(f"metrics on http://{options.metrics_address}:{options.metrics_port}/metrics", file=out)
        print(f"sloguard run: {settings!r}, {options.workers} worker(s) per process", file=out)
        stop = StopRequest(out)
        flow = build_kafka_flow(config, settings, options, metrics, stop)
        with stop.installed(), streaming_gc():
            cli_main(
                flow,
                workers_per_process=options.workers,
                process_id=options.process_id,
                addresses=options.addresses,
                epoch_interval=timedelta(seconds=options.snapshot_interval_s if recovery else options.epoch_interval_s),
                recovery_config=recovery,
            )
    finally:
        if broker is not None:
            broker.stop()
    if stop.signal is not None:
        resume = (f"; run it again with --recovery-dir {options.recovery_dir} to go on from here"
                  if options.recovery_dir is not None else "")
        print(f"sloguard run: stopped ({signal.Signals(stop.signal).name}), outputs flushed{resume}", file=out)
        return 128 + stop.signal
    return 0
