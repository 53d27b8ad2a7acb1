"""`sloguard demo` (live): an embedded broker, generated traffic in compressed real time, the flow
and the rollout controller per model, and a terminal view of budgets, alerts as they fire and
resolve, and the controller's promote / hold / rollback decisions. It ends by itself.

An edge of the package like `cli.py`: it starts processes, produces to Kafka and draws the screen.
Budgets, alerts and decisions are read as their types (`read_kafka`); one that is not ends the demo
with its topic, offset and field.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from sloguard.apps.demo import EXAMPLES_DIR, detection_table, format_alert, format_decision, rollout_summary
from sloguard.apps.runs import UnreadableOutput, read_output
from sloguard.core.messages.outputs import AlertRead, BudgetRead, Decision
from sloguard.core.stats.budget import budget_text

SCENARIOS = ("fraud", "recsys")
INPUTS = ("inference", "labels", "features")
OUTPUTS = ("budget", "alerts", "dead_letter")
_READ_AS = {"budget": BudgetRead, "alerts": AlertRead, "decisions": Decision}  # the rest: dicts


def _topics(scenario: str) -> dict[str, str]:
    names = {
        "budget": "slo.budget",
        "alerts": "slo.alerts",
        "dead_letter": "slo.dead-letter",
        "decisions": "rollout.decisions",
        "incidents": "slo.incidents",
    }
    return {k: f"{scenario}.{names.get(k, 'ml.' + k)}" for k in (*INPUTS, *OUTPUTS, "decisions", "incidents")}


def example_config(scenario: str) -> dict[str, Any]:
    """The scenario's example config as a mapping that still works when written to another
    directory: its baseline path is made absolute."""
    config = yaml.safe_load((EXAMPLES_DIR / f"{scenario}.yaml").read_text())
    for model in config["models"].values():
        if model.get("baseline"):
            model["baseline"] = str((EXAMPLES_DIR / model["baseline"]).resolve())
    return config


def read_kafka(kind: str, topic: str, partition: int, offset: int, value: bytes) -> Any:
    """A message of one of the demo's topics: budgets, alerts and decisions as their types (else
    `UnreadableOutput` naming the topic, offset and field), dead letters and incidents as dicts."""
    if kind not in _READ_AS:
        return orjson.loads(value)
    return read_output(value, _READ_AS[kind], f"topic {topic} partition {partition} offset {offset}")


def _timeline(files: dict[tuple[str, str], Path]) -> list[tuple[float, int, str, bytes]]:
    """Every message of every scenario, in event-time order: (ts, seq, topic, payload)."""
    from sloguard.connectors.files import _line_ts

    streams = []
    seq = 0
    for (scenario, kind), path in files.items():
        topic = _topics(scenario)[kind]
        rows = []
        last = 0.0
        for line in path.read_bytes().splitlines():
            ts = _line_ts(line)
            if ts is not None:
                last = ts  # malformed and absurd lines go out with their neighbours: merge needs order
            rows.append((last, seq, topic, line))
            seq += 1
        streams.append(rows)
    return list(heapq.merge(*streams))


class _View:
    """Latest whole-model budget per SLO, firing alerts, the newest transitions and decisions."""

    def __init__(self) -> None:
        self.budget: dict[tuple[str, str], BudgetRead] = {}
        self.firing: dict[str, AlertRead] = {}
        self.recent: list[AlertRead] = []
        self.alerts: list[AlertRead] = []
        self.decisions: list[Decision] = []
        self.incidents: list[dict[str, Any]] = []
        self.dead = 0
        self.latest: dict[str, str] = {}  # model -> newest budget tick seen
        self.lock = threading.Lock()

    def add(self, kind: str, message: Any) -> None:
        """`message` as `read_kafka` read it from the topic of `kind`."""
        with self.lock:
            if kind == "budget" and not message.segment:
                self.budget[(message.model, message.slo)] = message
                self.latest[message.model] = max(self.latest.get(message.model, ""), message.ts)
            elif kind == "alerts":
                self.alerts.append(message)
                if message.state == "firing":
                    self.firing[message.id] = message
                else:
                    self.firing.pop(message.id, None)
                self.recent = [*self.recent[-7:], message]
            elif kind == "dead_letter":
                self.dead += 1
            elif kind == "decisions":
                self.decisions.append(message)
            elif kind == "incidents":
                self.incidents.append(message)

    def render(self, clock: str, elapsed: float, duration: float, colour: bool) -> str:
        with self.lock:
            lines = [
                f"sloguard live demo  event time {clock}  {elapsed:4.0f}/{duration:.0f} s  "
                f"(firing: {len(self.firing)}, dead letters: {self.dead})",
                "",
            ]
            lines.append(
                f"  {'model':8} {'slo':30} {'dimension':15} {'sli':>8} {'budget left':>22} "
                f"{'burn 5m':>8} {'burn 1h':>8}"
            )
            for (model, slo), b in sorted(self.budget.items()):
                sli = "-" if b.sli is None else f"{b.sli:.4f}"
                burns = b.burn_rates
                lines.append(
                    f"  {model:8} {slo:30} {b.dimension:15} {sli:>8} {budget_text(b.budget_remaining):>22} "
                    f"{burns.get('5m', 0):>8.1f} {burns.get('1h', 0):>8.1f}"
                )
            lines += ["", "  latest alert transitions:"]
            lines += ["  " + format_alert(a, colour)[:160] for a in self.recent]
            latest: dict[tuple[str, str], Decision] = {}
            for d in self.decisions:
                latest[(d.model, d.version)] = d
            lines += ["", "  rollout controller, latest decision per canary:"]
            lines += ["  " + format_decision(d, colour)[:160] for _, d in sorted(latest.items())] or ["  (none yet)"]
            return "\n".join(lines)


def _start_controller(path: Path, port: int, log: Any) -> subprocess.Popen:
    """`sloguard controller` on the demo's topics, its gate on loopback behind a one-off token."""
    env = {**os.environ, "SLOGUARD_GATE_TOKEN": secrets.token_urlsafe(16)}
    return subprocess.Popen([sys.executable, "-m", "sloguard.apps.cli", "controller", "--config", str(path),
                             "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _wait_ready(ports: list[int], timeout_s: float = 30.0) -> bool:
    """True once every controller's gate answers /readyz with 200 (its consumer has joined)."""
    deadline = time.monotonic() + timeout_s
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        port = pending[0]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            resp.read()
            ready = resp.status == 200
            conn.close()
        except OSError:
            ready = False
        if ready:
            pending.pop(0)
        else:
            time.sleep(0.2)
    return not pending


def run_live_demo(
    out: Path, duration_s: float = 90.0, events: int = 100_000, seed: int = 7, stream: TextIO = sys.stdout
) -> int:
    """The live demo; returns 0 when every injected incident was detected and the rollout controller
    rolled back the regressing canary and promoted the healthy one."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from sloguard.connectors.admin import create_topics
    from sloguard.connectors.broker import EmbeddedBroker, free_port
    from sloguard.core.synth.scenarios import plan, write_scenario

    tty = stream.isatty()
    print(f"generating {events:,} events per scenario into {out}/ ...", file=stream, flush=True)
    files: dict[tuple[str, str], Path] = {}
    manifests = {}
    for scenario in SCENARIOS:
        paths = write_scenario(plan(scenario, events=events, seed=seed), out / scenario)
        manifests[scenario] = orjson.loads(paths["manifest"].read_bytes())
        files.update({(scenario, k): paths[k] for k in INPUTS})
    timeline = _timeline(files)
    procs: list[subprocess.Popen] = []
    view = _View()
    stop = threading.Event()
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        print(f"embedded Kafka-protocol broker on {bootstrap}; starting one flow and one rollout controller per "
              "model", file=stream, flush=True)
        ports = []
        for scenario in SCENARIOS:
            topics = _topics(scenario)
            create_topics({"bootstrap.servers": bootstrap}, list(topics.values()))
            config = example_config(scenario)
            config["kafka"] = {"bootstrap_servers": bootstrap, "topics": topics}
            path = out / f"{scenario}-live.yaml"
            path.write_text(yaml.safe_dump(config))
            log = (out / f"{scenario}-flow.log").open("w")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sloguard.apps.cli", "run", "--config", str(path), "--heartbeat", "0"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            # the controller judges in event time (the demo compresses it) and joins its group fast
            config["kafka"]["client"] = {"session.timeout.ms": 6000}
            config.setdefault("rollout", {})["controller"] = {
                "clock": "event", "evaluate_every": "1s", "group_id": f"demo-controller-{scenario}",
            }  # fmt: skip
            path = out / f"{scenario}-controller.yaml"
            path.write_text(yaml.safe_dump(config))
            ports.append(free_port())
            procs.append(_start_controller(path, ports[-1], (out / f"{scenario}-controller.log").open("w")))
        if not _wait_ready(ports):
            print("warning: a rollout controller is not ready yet; its decisions may come late", file=stream)
        failed = [p for p in procs if p.poll() is not None]
        if failed:  # a flow or controller that exits at once (a bad config) would leave an empty screen
            for log in sorted(out.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=stream)
            print("error: a demo process exited at start (its log is above)", file=stream)
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
            return 1
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-view"})
        kinds = (*OUTPUTS, "decisions", "incidents")
        consumer.assign([TopicPartition(_topics(s)[k], 0, 0) for s in SCENARIOS for k in kinds])
        kind_of = {_topics(s)[k]: k for s in SCENARIOS for k in kinds}

        printed: dict[tuple[str, str], str] = {}  # (model, version) -> last decision printed
        (out / "live").mkdir(exist_ok=True)  # every output message, for the report at the end
        files = {k: (out / "live" / f"{k}.jsonl").open("wb") for k in OUTPUTS}

        unreadable: list[UnreadableOutput] = []

        def show(kind: str, msg: Any) -> None:
            message = read_kafka(kind, msg.topic(), msg.partition(), msg.offset(), msg.value())
            if kind in files:
                files[kind].write(msg.value() + b"\n")
            view.add(kind, message)
            if not tty and kind == "alerts" and message.severity == "page":
                print("  " + format_alert(message, False), file=stream, flush=True)
            if not tty and kind == "decisions":  # when the decision changes
                key = (message.model, message.version)
                if printed.get(key) != message.decision:
                    printed[key] = message.decision
                    print("  " + format_decision(message, False), file=stream, flush=True)

        def watch() -> None:
            try:
                while not stop.is_set():
                    for msg in consumer.consume(500, 0.2):
                        if msg.error() is None:
                            show(kind_of[msg.topic()], msg)
            except UnreadableOutput as e:  # ends the demo: the main thread raises it
                unreadable.append(e)
                stop.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
        # pace by the scenarios' real span: the malformed burst carries absurd timestamps
        start_ts = min(m["start"] for m in manifests.values())
        end_ts = max(m["end"] for m in manifests.values())
        speed = (end_ts - start_ts) / (duration_s * 0.8)  # event seconds per wall second
        began = time.monotonic()
        last_draw = 0.0
        clock = ""
        try:
            for ts, _, topic, line in timeline:
                if stop.is_set():  # the view could not read an output
                    break
                due = began + (min(max(ts, start_ts), end_ts) - start_ts) / speed
                while (now := time.monotonic()) < due:
                    if tty and now - last_draw > 0.5:
                        last_draw = now
                        stream.write("\033[H\033[J" + view.render(clock, now - began, duration_s, True) + "\n")
                        stream.flush()
                    producer.poll(0)
                    time.sleep(min(0.05, due - now))
                clock = time.strftime("%H:%M", time.gmtime(ts))
                producer.produce(topic, line)
                producer.poll(0)
            producer.flush(30)
            # let the flows finish the scenario (they may lag on a busy machine), within a bound
            target = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(end_ts - 300))
            deadline = time.monotonic() + max(30.0, duration_s / 2)
            while time.monotonic() < deadline and not stop.is_set():
                with view.lock:
                    done = len(view.latest) == len(SCENARIOS) and min(view.latest.values()) >= target
                if done and time.monotonic() - began >= duration_s:
                    break
                if tty:
                    stream.write("\033[H\033[J" + view.render(clock, time.monotonic() - began, duration_s, True) + "\n")
                    stream.flush()
                time.sleep(0.5)
            settle = time.monotonic() + 10  # the controllers judge the flows' last ticks
            seen = -1
            while time.monotonic() < settle and seen != len(view.decisions) and not stop.is_set():
                seen = len(view.decisions)
                time.sleep(2)
        finally:
            stop.set()
            watcher.join(5)
            consumer.close()
            for f in files.values():
                f.close()
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
    if unreadable:
        raise unreadable[0]
    print(("\033[H\033[J" if tty else "\n") + view.render(clock, duration_s, duration_s, tty), file=stream)
    missed = 0
    for scenario in SCENARIOS:
        alerts = [a for a in view.alerts if a.model == scenario]
        rows = detection_table(manifests[scenario], alerts)
        missed += sum("MISSED" in r for r in rows)
        control = [a for a in alerts if a.segment.items() & manifests[scenario]["control"].items()]
        print(
            f"\n{scenario}: detection of the injected incidents (control segment alerts: {len(control)})", file=stream
        )
        print("  " + "\n  ".join(rows), file=stream)
    print("\nrollout controller: what it decided on each canary, in event time", file=stream)
    for scenario in SCENARIOS:
        lines, ok = rollout_summary(manifests[scenario], view.decisions)
        missed += not ok
        print("  " + "\n  ".join(lines), file=stream)
    from sloguard.apps.demo import show_notifications

    show_notifications(view.alerts, stream, incidents=view.incidents)
    from sloguard.apps.demo import write_demo_report

    producer = None  # a live client would log the stopped broker's refusals while the report is written
    write_demo_report([("live", out / "live")], list(SCENARIOS), [manifests[s] for s in SCENARIOS],
                      out / "report.html", stream)
    from sloguard.apps.demo import run_depth_demo  # a replay: estimated quality pages before any label

    run_depth_demo(out, stream, seed=seed)
    return 0 if not missed else 1
