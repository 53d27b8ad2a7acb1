"""Live latency: does `sloguard run --recovery-dir` keep up with a steady stream, and how soon does a page come?

    python benchmarks/live_latency.py [--rate 20000] [--duration 600] [--outage-at S] [--outage-seconds 180]
                                      [--features-ratio 0.5] [--partitions 1] [--judge-parts N] [--run-args "-w 2"]
                                      [--scrape-every 15] [--keep]
    python benchmarks/live_latency.py --duration 90 --rate 2000          # a short smoke run

Starts the embedded broker, creates the topics, writes `examples/fraud.yaml` (all its SLOs, its baseline)
with a `kafka:` section pointing at the broker, and starts `sloguard run --config C --recovery-dir D` as a
subprocess. A producer process (its own process, so it does not share a GIL with the measurement) then
writes healthy fraud traffic stamped with the wall clock (`ts = time.time()` when produced), paced by a
token bucket refilled every 10 ms:
  * `--rate` inference events/s, drawn from a healthy `sloguard generate --scenario fraud` pool (the
    distributions the example baseline was made from; ids made unique, timestamps re-stamped);
  * a label for each labelled prediction of the pool (~90 %), 2 s to 5 min later (lognormal, median 30 s),
    stamped when produced;
  * `--features-ratio` ml.features events per inference event (the scenario's 0.5).
At `--outage-at` seconds (default half the duration) every request fails (`status: error`) for
`--outage-seconds`. The wall time of the first error event produced is recorded.

The main process reads slo.budget, slo.alerts and slo.dead-letter as they are written and measures, in
wall-clock seconds:
  * budget lag = (wall time a budget event is read) - (its tick `ts` + allowed_lateness): how long after
    its tick could first be judged the flow delivered it. Keeping up means seconds, not minutes; p50, p95
    and max over the run, per minute on a progress line, and the ticks that came due but never came out;
  * page latency = (wall time the first `fast-burn` page on `fraud-availability` for the whole model after
    the outage is read) - (its tick `ts` + allowed_lateness), the issue's "<= 2 s after the tick that makes
    it true"; and the same page's time after the first error event was produced (allowed lateness plus the
    wait for the next tick: 60 to 120 s with the example's 1m interval and 1m lateness).
If the page has not come when `--duration` ends, production goes on (so event time keeps moving with the
wall clock) for up to `--page-wait` more seconds.

`--scrape-every S` serves the run's Prometheus metrics and scrapes them every S seconds as a Prometheus
would, reporting each minute's slowest scrape and the series count: what a monitored production run
costs, and whether its metrics stay bounded.

Also printed: the producer's achieved rates, CPU seconds and peak RSS (VmHWM) of the run process, the
broker and the producer, every alert that fired, and error lines from the run's log. The last line is a
JSON object with the numbers. Logs, the config and (with --keep) the recovery directory stay under --workdir.
The embedded broker is memory-only and ignores retention: it holds every message (~0.5 KB each), about 14 GB
at the defaults (20k inference/s + 18k labels/s + 10k features/s for 10 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # live_producer, also for the spawned producer
from live_producer import produce, status_mib, vm_hwm_mib  # noqa: E402

LOG_PROBLEMS = ("Traceback", "ERROR", "Error", "error:", "panicked", "Exception")


# --- /proc readings ------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process and all its threads (/proc/<pid>/stat fields 14, 15)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def _host_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine, in clock ticks over every core (/proc/stat `cpu`):
    busy is everything but idle and iowait. Its share over an interval says whether the run shared a
    full machine (producer, broker, run and this reader on the same cores)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        total = sum(values)
        return total - values[3] - values[4], total
    return 0, 0


def _busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Share of the machine's CPU (all cores) that was busy between two `_host_jiffies` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else None


# --- measurement -------------------------------------------------------------------------------


def _epoch(value: Any) -> float:
    from sloguard.core.spec.timeutil import parse_rfc3339

    if isinstance(value, int | float):
        return float(value)
    parsed = parse_rfc3339(str(value))
    if parsed is None:
        raise ValueError(f"unreadable ts {value!r}")
    return parsed


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    import numpy as np

    a = np.asarray(values)
    return {"p50": float(np.quantile(a, 0.5)), "p95": float(np.quantile(a, 0.95)), "max": float(a.max())}


def _fmt(x: float | None, unit: str = " s") -> str:
    return "-" if x is None else f"{x:.2f}{unit}"


def _hhmmss(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def _wait_for_run(run: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    """Until the run has printed its start line (Kafka clients being made) or died."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if run.poll() is not None:
            raise RuntimeError(f"sloguard run exited with status {run.returncode} at start; log {log}:\n"
                               + log.read_text(errors="replace")[-3000:])
        if "sloguard run:" in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"sloguard run did not start within {timeout_s:.0f} s; log {log}")


def _stop_run(run: subprocess.Popen) -> str:
    """SIGINT (Ctrl-C), then SIGTERM, then SIGKILL; how it ended."""
    for sig, grace in ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if run.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, sig)
        try:
            run.wait(timeout=grace)
            return f"stopped by {sig.name}, status {run.returncode}"
        except subprocess.TimeoutExpired:
            continue
    return f"exited by itself, status {run.returncode}"


class _Reader:
    """Budget and alert messages as they arrive, with the wall time each was read."""

    def __init__(self, lateness_s: float, interval_s: float) -> None:
        self.lateness_s, self.interval_s = lateness_s, interval_s
        self.lags: list[float] = []  # per budget event
        self.tick_last: dict[float, float] = {}  # tick -> lag of its last budget event read
        self.minute_lags: list[float] = []
        self.firing: dict[tuple[str, str, str, str], int] = {}
        self.page: dict[str, Any] | None = None
        self.dead: dict[str, int] = {}  # dead letters by their error, numbers cut out (our events should make none)

    def dead_letter(self, msg: dict[str, Any]) -> None:
        why = re.sub(r"\d+(\.\d+)?", "N", str(msg.get("error")))[:100]
        self.dead[why] = self.dead.get(why, 0) + 1

    def budget(self, msg: dict[str, Any], wall: float) -> None:
        tick = _epoch(msg["ts"])
        lag = wall - (tick + self.lateness_s)
        self.lags.append(lag)
        self.minute_lags.append(lag)
        self.tick_last[tick] = lag

    def alert(self, msg: dict[str, Any], wall: float, outage_from: float | None) -> None:
        if msg.get("state") != "firing":
            return
        seg = ",".join(f"{k}={v}" for k, v in sorted((msg.get("segment") or {}).items())) or "(whole model)"
        key = (str(msg.get("slo")), str(msg.get("rule")), str(msg.get("severity")), seg)
        self.firing[key] = self.firing.get(key, 0) + 1
        tick = _epoch(msg["ts"])
        if (self.page is None and outage_from is not None and tick > outage_from and msg.get("severity") == "page"
                and msg.get("rule") == "fast-burn" and msg.get("slo") == "fraud-availability"
                and not msg.get("segment")):
            self.page = {"tick": tick, "read": wall, "after_tick_s": wall - (tick + self.lateness_s),
                         "started_at": msg.get("started_at"), "summary": msg.get("summary")}

    def missing_ticks(self, since: float, until: float) -> list[float]:
        """Ticks in (since, until] that were due (tick + lateness <= until) but have no budget event."""
        step = self.interval_s
        t = (since // step + 1) * step
        out = []
        while t + self.lateness_s <= until:
            if t not in self.tick_last:
                out.append(t)
            t += step
        return out


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20_000, help="inference events/s produced (default 20000)")
    parser.add_argument("--duration", type=float, default=600, help="seconds of production (default 600)")
    parser.add_argument("--outage-at", type=float, default=None,
                        help="seconds after production starts when every request fails (default duration/2)")
    parser.add_argument("--outage-seconds", type=float, default=180, help="seconds the outage lasts (default 180)")
    parser.add_argument("--features-ratio", type=float, default=0.5,
                        help="ml.features events per inference event (default 0.5)")
    parser.add_argument("--page-wait", type=float, default=180,
                        help="seconds production goes on after --duration while no page has come (default 180)")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of each topic (default 1)")
    parser.add_argument("--judge-parts", type=int, default=None,
                        help="scale.judge_parts of the run's config (default: the config's, 2)")
    parser.add_argument("--progress", type=float, default=60, help="seconds between progress lines (default 60)")
    parser.add_argument("--run-args", default="", help="extra arguments for `sloguard run`, e.g. \"-w 2 "
                        "--snapshot-interval 10\" (default none: 1 worker, 10 s snapshots, 30 s heartbeat)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the event pool and label delays (default 11)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="config, logs and recovery dir (default out/bench/live-<random id>)")
    parser.add_argument("--keep", action="store_true", help="keep the recovery directory (default: removed)")
    parser.add_argument("--scrape-every", type=float, default=0.0,
                        help="serve the run's Prometheus metrics (--metrics-port) and scrape them every this many "
                        "seconds, as a Prometheus would: each scrape's time and series are reported (default 0: off)")
    args = parser.parse_args()
    if args.outage_at is None:
        args.outage_at = args.duration / 2
    return args


def _start_run(args: argparse.Namespace, work: Path, bootstrap: str) -> tuple[subprocess.Popen, Path, Any, Any]:
    """Topics, the config and `sloguard run --recovery-dir`; (process, its log, config, Kafka settings)."""
    import yaml

    from sloguard.apps.live_demo import example_config
    from sloguard.apps.run import ensure_topics
    from sloguard.connectors.kafka_config import KafkaSettings
    from sloguard.core.spec.config import parse_config

    kafka = {"bootstrap_servers": bootstrap}
    settings = KafkaSettings.from_mapping(kafka, env={})
    ensure_topics(settings, args.partitions)
    data = {**example_config("fraud"), "kafka": kafka}
    if args.judge_parts is not None:
        data["scale"] = {**(data.get("scale") or {}), "judge_parts": args.judge_parts}
    config_path = work / "fraud.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    log = work / "run.log"
    if args.scrape_every > 0:
        from sloguard.connectors.broker import free_port

        args.metrics_port = free_port()
    metrics = ["--metrics-port", str(args.metrics_port)] if args.scrape_every > 0 else []
    cmd = [sys.executable, "-c", "import sys; from sloguard.apps.cli import main; sys.exit(main())", "run",
           "--config", str(config_path), "--recovery-dir", str(work / "recovery"), *metrics,
           *shlex.split(args.run_args)]
    with log.open("wb") as fh:
        run = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    _wait_for_run(run, log)
    time.sleep(2.0)  # its Kafka consumers assign their partitions
    return run, log, parse_config(data, base_dir=work), settings


class _Scraper(threading.Thread):
    """Scrapes the run's /metrics every `every_s` seconds, as a Prometheus would, and keeps each
    scrape's (seconds, bytes, series); a scrape that fails or takes over 10 s counts as failed."""

    def __init__(self, url: str, every_s: float) -> None:
        super().__init__(name="metrics-scraper", daemon=True)
        self.url, self.every_s = url, every_s
        self.done = threading.Event()
        self.scrapes: list[tuple[float, int, int]] = []
        self.failed = 0
        self.shown = 0  # scrapes already summed up on a progress line

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    body = response.read()
            except OSError:
                self.failed += 1
                continue
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            self.scrapes.append((time.perf_counter() - start, len(body), series))

    def since_shown(self) -> str:
        """The scrapes since the last call: their slowest time and the newest series count."""
        new, self.shown = self.scrapes[self.shown:], len(self.scrapes)
        if not new:
            return f" | scrapes: none ({self.failed} failed)"
        return f" | scrape max {max(d for d, _, _ in new):.2f} s, {new[-1][2]:,} series"


class _Progress:
    """What the producer reported, and the progress line every `every_s` seconds."""

    def __init__(self, queue_: Any, run_pid: int, every_s: float, scraper: _Scraper | None = None) -> None:
        self.queue, self.run_pid, self.every_s, self.scraper = queue_, run_pid, every_s, scraper
        self.start: float | None = None
        self.first_error: float | None = None
        self.done: dict[str, Any] | None = None
        self.last: dict[str, Any] = {"inference": 0, "labels": 0, "features": 0}
        self.prev = {"t": time.time(), "inference": 0, "labels": 0, "features": 0, "cpu": _cpu_s(run_pid) or 0.0,
                     "host": _host_jiffies()}

    def drain(self, wait_s: float = 0.0) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                m = self.queue.get(timeout=wait_s) if wait_s else self.queue.get_nowait()
                kind = m["kind"]
                if kind == "start":
                    self.start = m["t"]
                elif kind == "first_error":
                    self.first_error = m["t"]
                elif kind == "progress":
                    self.last = m
                elif kind == "done":
                    self.done = m
                    return

    def outage_from(self, outage_at: float) -> float | None:
        """Wall time of the first error event, or when it is due."""
        if self.first_error is not None:
            return self.first_error
        return None if self.start is None else self.start + outage_at

    def line(self, reader: _Reader, now: float) -> None:
        if self.start is None or now - self.prev["t"] < self.every_s:
            return
        dt, last, prev = now - self.prev["t"], self.last, self.prev
        cpu = _cpu_s(self.run_pid) or prev["cpu"]
        host = _host_jiffies()
        busy = _busy_share(prev["host"], host)
        q = _quantiles(reader.minute_lags)
        newest = max(reader.tick_last, default=None)
        behind = len(reader.missing_ticks(max(self.start, newest or self.start), now - 5.0))
        print(f"[{now - self.start:5.0f} s] produced {(last['inference'] - prev['inference']) / dt:8,.0f} inf/s "
              f"{(last['labels'] - prev['labels']) / dt:7,.0f} labels/s "
              f"{(last['features'] - prev['features']) / dt:7,.0f} features/s | "
              f"{len(reader.minute_lags):4d} budget events, lag p50 {_fmt(q['p50'])} max {_fmt(q['max'])}, "
              f"newest tick {_hhmmss(newest) if newest else '-'}, {behind} due tick(s) not out | "
              f"run cpu {100 * (cpu - prev['cpu']) / dt:3.0f} % rss {status_mib(self.run_pid, 'VmRSS:') or 0:6.0f} "
              f"MiB | machine busy {'-' if busy is None else f'{100 * busy:.0f} %'} of {os.cpu_count()} cores"
              + (self.scraper.since_shown() if self.scraper is not None else ""), flush=True)
        reader.minute_lags = []
        self.prev = {"t": now, **{k: last[k] for k in ("inference", "labels", "features")}, "cpu": cpu, "host": host}


def _measure(args: argparse.Namespace, run: subprocess.Popen, settings: Any, reader: _Reader,
             progress: _Progress, producer: Any) -> str | None:
    """Read budgets and alerts until the run is over; None, or why it ended early."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(settings.consumer_config("live-latency", extra={"fetch.wait.max.ms": 20}))
    meta = consumer.list_topics(timeout=10)
    topics = {settings.topic(k): k for k in ("budget", "alerts", "dead_letter")}
    consumer.assign([TopicPartition(t, p, 0) for t in topics for p in sorted(meta.topics[t].partitions)])
    try:
        while True:
            progress.drain()
            outage_from = progress.outage_from(args.outage_at)
            for msg in consumer.consume(1000, 0.1):
                wall = time.time()
                if msg.error() is not None:
                    print(f"  consumer: {msg.error()}", flush=True)
                    continue
                value = json.loads(msg.value())
                kind = topics[msg.topic()]
                if kind == "budget":
                    reader.budget(value, wall)
                elif kind == "alerts":
                    reader.alert(value, wall, outage_from)
                else:
                    reader.dead_letter(value)
            now = time.time()
            progress.line(reader, now)
            if run.poll() is not None:
                return f"sloguard run exited by itself with status {run.returncode} during the run"
            if not producer.is_alive():
                return f"the producer died (exit code {producer.exitcode})"
            start = progress.start
            if start is not None and now >= start + args.duration and (
                    reader.page is not None or args.outage_at >= args.duration
                    or now >= start + args.duration + args.page_wait):
                return None
    finally:
        consumer.close()


def _log_problems(log: Path, at_stop: int) -> tuple[list[str], list[str]]:
    """Error-looking lines of the run's log, before and after it was asked to stop."""
    text = log.read_bytes()
    return tuple([line for line in part.decode(errors="replace").splitlines() if any(p in line for p in LOG_PROBLEMS)]
                 for part in (text[:at_stop], text[at_stop:]))  # type: ignore[return-value]


def _report(args: argparse.Namespace, reader: _Reader, progress: _Progress, usage: dict[str, Any],
            log: Path, at_stop: int) -> dict[str, Any]:
    """Print the summary table; the numbers as one dict."""
    start = progress.start or usage["end"]
    wall_s = usage["end"] - start
    lag = _quantiles(reader.lags)
    tick_lag = _quantiles(list(reader.tick_last.values()))
    missing = reader.missing_ticks(start, usage["end"] - 5.0)
    page, produced = reader.page, progress.done or {}
    seconds = produced.get("seconds") or wall_s
    rates = {k: produced.get(k, 0) / seconds for k in ("inference", "labels", "features")}
    problems, at_stop_lines = _log_problems(log, at_stop)

    def r(x: float | None, nd: int = 3) -> float | None:
        return None if x is None else round(x, nd)

    result = {
        "rate_target": args.rate, "duration_s": r(seconds, 1), "run_args": args.run_args,
        "achieved_per_s": {k: round(v) for k, v in rates.items()},
        "messages": sum(produced.get(k, 0) for k in ("inference", "labels", "features")),
        "error_events": produced.get("errors"), "delivery_errors": produced.get("delivery_errors"),
        "budget_events": len(reader.lags), "ticks": len(reader.tick_last), "ticks_due_missing": len(missing),
        "budget_lag_s": {k: r(v) for k, v in lag.items()}, "tick_lag_s": {k: r(v) for k, v in tick_lag.items()},
        "page_after_tick_s": None if page is None else r(page["after_tick_s"]),
        "page_after_first_error_s": None if page is None or progress.first_error is None else r(
            page["read"] - progress.first_error),
        "run_cpu_s": r(usage["run_cpu_s"], 1), "run_cpu_share": r(usage["run_cpu_s"] / wall_s),
        "run_peak_rss_mib": r(usage["run_hwm"], 1),
        "broker_cpu_s": r(usage["broker_cpu_s"], 1), "broker_peak_rss_mib": r(usage["broker_hwm"], 1),
        "producer_cpu_s": r(produced.get("cpu_s"), 1), "producer_peak_rss_mib": r(produced.get("peak_rss_mib"), 1),
        "machine_busy_share": r(usage["host_busy"]), "cores": os.cpu_count(), "scrapes": usage.get("scrapes"),
        "dead_letters": sum(reader.dead.values()),
        "run_log_problem_lines": len(problems), "run_log_problem_lines_at_stop": len(at_stop_lines),
        "ended": usage["ended"] or "completed", "run_stop": usage["how_stopped"],
    }
    print()
    print(f"live latency, fraud.yaml, {seconds:.0f} s of production ({result['ended']}); run {usage['how_stopped']}")
    print(f"  produced       : {rates['inference']:,.0f} inference/s (target {args.rate:,.0f}), "
          f"{rates['labels']:,.0f} labels/s, {rates['features']:,.0f} features/s; {result['messages']:,} messages,"
          f" {produced.get('errors', 0):,} in the outage, {produced.get('delivery_errors', 0)} delivery errors")
    print(f"  budget events  : {len(reader.lags):,} over {len(reader.tick_last)} ticks; {len(missing)} tick(s) due "
          "before the end never came out" + (f" (first {_hhmmss(missing[0])})" if missing else ""))
    print(f"  budget lag     : p50 {_fmt(lag['p50'])}   p95 {_fmt(lag['p95'])}   max {_fmt(lag['max'])}   after "
          f"tick + lateness (per tick, its last event: p50 {_fmt(tick_lag['p50'])}, max {_fmt(tick_lag['max'])}; "
          "aim: seconds)")
    if page is not None:
        print(f"  first page     : fast-burn fraud-availability (whole model), tick {_hhmmss(page['tick'])} UTC: "
              f"read {page['after_tick_s']:.2f} s after tick + lateness (aim <= 2 s), "
              f"{_fmt(result['page_after_first_error_s'])} after the first error event was produced")
    else:
        print("  first page     : none (no fast-burn page on fraud-availability, whole model, after the outage)")
    print(f"  sloguard run   : cpu {usage['run_cpu_s']:.1f} s ({100 * usage['run_cpu_s'] / wall_s:.0f} % of one "
          f"core), peak RSS {_fmt(usage['run_hwm'], ' MiB')}")
    print(f"  broker         : cpu {usage['broker_cpu_s']:.1f} s, peak RSS {_fmt(usage['broker_hwm'], ' MiB')};   "
          f"producer: cpu {_fmt(produced.get('cpu_s'))}, peak RSS {_fmt(produced.get('peak_rss_mib'), ' MiB')}")
    if usage["host_busy"] is not None:
        print(f"  machine        : {100 * usage['host_busy']:.0f} % of its {os.cpu_count()} cores busy over the run "
              "(all processes: near 100 % the run waits for a core, and its lag says as much about the machine)")
    if usage.get("scrapes"):
        sc = usage["scrapes"]
        print(f"  metrics        : scraped every {sc['every_s']:g} s: {sc['count']} scrapes, {sc['failed']} failed, "
              f"slowest {sc['max_s']:.2f} s, at most {sc['max_series']:,} series (last page {sc['last_kib']} KiB)")
    print("  alerts fired   : " + ("none" if not reader.firing else ""))
    for (slo, rule, severity, seg), count in sorted(reader.firing.items()):
        print(f"      {count:3d} x {severity:6s} {rule:12s} {slo:28s} {seg}")
    print(f"  dead letters   : {sum(reader.dead.values()):,}" + (":" if reader.dead else ""))
    for why, count in sorted(reader.dead.items(), key=lambda kv: -kv[1])[:10]:
        print(f"      {count:9,d} x {why}")
    for when, lines in (("while running", problems), ("when stopped", at_stop_lines)):
        print(f"  run log {when}: {len(lines)} line(s) with errors" + (":" if lines else ""))
        for line in lines[:10]:
            print(f"      {line[:200]}")
    print(f"  (log: {log})")
    return result


def main() -> int:
    args = _args()
    sys.path.insert(0, str(ROOT))
    import shutil

    from sloguard.connectors.broker import EmbeddedBroker

    work = (args.workdir or ROOT / "out" / "bench" / f"live-{uuid.uuid4().hex[:8]}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    recovery = work / "recovery"
    shutil.rmtree(recovery, ignore_errors=True)
    ctx = mp.get_context("spawn")  # the parent holds Kafka clients' threads: never fork it
    stop = ctx.Event()
    broker = EmbeddedBroker(log_dir=work / "broker").start()
    run = producer = None
    try:
        run, log, config, settings = _start_run(args, work, broker.bootstrap_servers)
        cpu0, broker_cpu0, host0 = _cpu_s(run.pid) or 0.0, _cpu_s(broker.pid) or 0.0, _host_jiffies()
        reader = _Reader(float(config.allowed_lateness_s), float(config.evaluation_interval_s))
        scraper = None
        if args.scrape_every > 0:
            scraper = _Scraper(f"http://127.0.0.1:{args.metrics_port}/metrics", args.scrape_every)
            scraper.start()
        progress = _Progress(ctx.Queue(), run.pid, args.progress, scraper)
        spec = {"bootstrap": broker.bootstrap_servers, "seed": args.seed, "rate": args.rate,
                "features_ratio": args.features_ratio, "outage_at": args.outage_at,
                "outage_seconds": args.outage_seconds,
                "topics": {k: settings.topic(k) for k in ("inference", "labels", "features")}}
        producer = ctx.Process(target=produce, args=(spec, progress.queue, stop), name="live-producer")
        producer.start()
        print(f"live latency: fraud.yaml ({len(config.slos)} SLOs, tick {reader.interval_s:.0f} s, allowed "
              f"lateness {reader.lateness_s:.0f} s), target {args.rate:,.0f} inference/s + labels + "
              f"{args.features_ratio:g} features per inference for {args.duration:.0f} s, outage at "
              f"{args.outage_at:.0f} s for {args.outage_seconds:.0f} s; sloguard run pid {run.pid} "
              f"{args.run_args} --recovery-dir {recovery}"
              + (f" --metrics-port {args.metrics_port} (scraped every {args.scrape_every:g} s)" if scraper else ""),
              flush=True)
        ended = _measure(args, run, settings, reader, progress, producer)
        # read before stopping anything: the run's totals while it is still alive
        usage = {"end": time.time(), "ended": ended, "run_cpu_s": (_cpu_s(run.pid) or cpu0) - cpu0,
                 "run_hwm": vm_hwm_mib(run.pid), "broker_cpu_s": (_cpu_s(broker.pid) or broker_cpu0) - broker_cpu0,
                 "broker_hwm": vm_hwm_mib(broker.pid), "host_busy": _busy_share(host0, _host_jiffies())}
        if scraper is not None:
            scraper.done.set()
            usage["scrapes"] = {"every_s": args.scrape_every, "count": len(scraper.scrapes), "failed": scraper.failed,
                                "max_s": round(max((d for d, _, _ in scraper.scrapes), default=0.0), 3),
                                "max_series": max((n for _, _, n in scraper.scrapes), default=0),
                                "last_kib": round(scraper.scrapes[-1][1] / 1024, 1) if scraper.scrapes else None}
        stop.set()
        deadline = time.time() + 60
        while progress.done is None and time.time() < deadline and producer.is_alive():
            progress.drain(wait_s=1.0)
        progress.drain()
        producer.join(timeout=10)
        at_stop = log.stat().st_size
        usage["how_stopped"] = _stop_run(run)
    finally:
        stop.set()
        if producer is not None and producer.is_alive():
            producer.terminate()
        if run is not None and run.poll() is None:
            _stop_run(run)
        broker.stop()
        if not args.keep:
            shutil.rmtree(recovery, ignore_errors=True)
    result = _report(args, reader, progress, usage, log, at_stop)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
