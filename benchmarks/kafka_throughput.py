"""Kafka flow throughput as a ratio to a plain consume-and-parse of the same topics, and its memory.

    python benchmarks/kafka_throughput.py [--events 1000000] [--scenario fraud] [--repeat 1] [--partitions 1]
                                          [--processes 2] [--client KEY=VALUE ...] [--front] [--step-cpu]
                                          [--epoch-s S] [--judge-apart]

Generates the scenario once (cached under out/bench/, as benchmarks/replay_throughput.py does), starts
the embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS), creates fresh input topics and produces every
line of inference + labels + features to them (timed). Then in fresh subprocesses, in `--repeat` rounds
run back to back (each ratio is taken within its round: this host's speed drifts between minutes):
  * plain: one confluent_kafka Consumer assigned every input partition at offset 0, consume(10000)
    in a loop and orjson.loads each value until every partition reports its end (the floor; with
    fetch.queue.backoff.ms lowered, see PLAIN_EXTRA);
  * flow: the sloguard dataflow on one worker (`build_kafka_flow(..., RunOptions(tail=False))` under
    `bytewax.testing.run_main`) over the same topics until drained, into fresh budget/alerts/
    dead-letter topics.
  * with `--processes N` (and `--partitions` >= N), also the flow as N Bytewax processes of one worker
    each (`-i/-a`), started together, timed as the one worker is (from building the flow to its end: the first
    process's start to the last one's end, with no interpreter start-up on either side), in the same run.
Prints messages/s of each (and each process's CPU seconds: how evenly the work spreads), the ratio
flow / plain (the figure to watch: wall times vary by machine and broker, the ratio much less), the
CPU time of each (with the embedded broker's CPU while each ran: on 2 shared cores, what the
broker takes serving fetches is not there for the flow) and the flow's peak RSS. `--client` passes
librdkafka options (kafka.client) to the clients of both runs. CPU seconds close to wall seconds
mean the run is bound by its own process, not by the broker. `--front` runs only the flow's front
(parse, route, and a keyed step that counts the pieces, so they still cross processes): work with no
keyed state, whose speed-up with N processes is what Kafka and Bytewax themselves allow on this machine.
`--step-cpu` also prints each flow process's CPU seconds per step (each step's function wrapped with a
thread-CPU counter in the child): where N processes together spend more than the one worker; and the
wall seconds the worker spent blocked in the source's `consume()` ("source waited": time lost waiting
on librdkafka's fetch queue, which CPU figures cannot show).
`--epoch-s` sets the flow runs' Bytewax epoch interval (default `sloguard run`'s). `--judge-apart` (with
`--processes 2`) is an experiment in placement: the judge whole on one process, every shard on the other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from rounds import each_round, median_round

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ("budget", "alerts", "dead_letter")
# librdkafka >= 2.1 pauses a partition's fetches for fetch.queue.backoff.ms (default 1 s) whenever its local
# queue passes queued.min.messages: a single consumer that parses as it reads then idles for most of the run
# (about 3x slower here). The floor is a plain reader without that stall (0 would busy-spin the fetcher).
PLAIN_EXTRA = {"fetch.queue.backoff.ms": 20}


def _settings(spec: dict):
    from sloguard.connectors.kafka_config import KafkaSettings

    kafka = {"bootstrap_servers": spec["bootstrap"], "topics": spec["topics"], "client": spec["client"]}
    return kafka, KafkaSettings.from_mapping(kafka, env={})


def _partitions(settings, topics: list[str]) -> list:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    meta = AdminClient(settings.admin_config()).list_topics(timeout=10)
    return [TopicPartition(t, p, 0) for t in topics for p in sorted(meta.topics[t].partitions)]


def _drain(settings, parts: list, group: str) -> int:
    """Read `parts` from offset 0 to their ends, orjson.loads every value; the number of messages.

    Ends are the partition-EOF events, not ListOffsets: Tansu answers that with the last batch's base
    offset + 1, short of the end whenever the last batch holds more than one message.
    """
    import orjson
    from confluent_kafka import Consumer, KafkaError

    consumer = Consumer(settings.consumer_config(group, extra={**PLAIN_EXTRA, "enable.partition.eof": True}))
    consumer.assign(parts)  # at offset 0: OFFSET_BEGINNING would first ask for the start offset
    left = {(tp.topic, tp.partition) for tp in parts}
    n = 0
    while left:
        for msg in consumer.consume(10000, 1.0):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    left.discard((msg.topic(), msg.partition()))
                    continue
                raise RuntimeError(f"error reading {msg.topic()}#{msg.partition()}: {err}")
            try:  # noqa: SIM105 - contextlib.suppress adds ~0.5 us a message to a ~3 us floor
                orjson.loads(msg.value())
            except orjson.JSONDecodeError:  # the scenario's malformed burst
                pass
            n += 1
    consumer.close()
    return n


def _vm_hwm_mib(pid: int | str = "self") -> float | None:
    """Peak RSS of a process from /proc (Linux), else None."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM where there is one, as on Linux getrusage's ru_maxrss carries the
    parent's peak over fork + exec (and the parent may just have generated the scenario)."""
    hwm = _vm_hwm_mib()
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of another process so far (Linux /proc), None where unreadable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _plain(spec: dict) -> dict:
    from sloguard.apps.run import INPUTS

    _, settings = _settings(spec)
    parts = _partitions(settings, [settings.topic(k) for k in INPUTS])
    start, cpu = time.perf_counter(), _cpu_s()
    n = _drain(settings, parts, "bench-plain")
    seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
    return {"messages": n, "seconds": seconds, "cpu_s": cpu, "peak_rss_mib": _peak_rss_mib()}


def _front_flow(config, settings):
    """The flow's steps up to its shards' input, over the same topics: Kafka source, parse, route, and
    a keyed step that only counts the pieces it gets (so they cross workers as in the whole flow)."""
    from functools import partial

    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink

    from sloguard.apps.run import INPUTS
    from sloguard.connectors.kafka_io import KafkaRawSource
    from sloguard.core.evaluate.plan import ModelPlan
    from sloguard.flows.operators import route_batch
    from sloguard.flows.slo_flow import _parse, parse_spec

    plans = {m: ModelPlan(config, m) for m in config.models}
    source = KafkaRawSource(settings, {k: settings.topic(k) for k in INPUTS}, tail=False)
    flow = Dataflow("front")
    parsed = op.map("parse", op.input("input", flow, source), partial(_parse, spec=parse_spec(config), metrics=None))
    pieces = op.flat_map("route", parsed, partial(route_batch, plans))
    counted = op.stateful_map("count", pieces, lambda seen, _piece: ((seen or 0) + 1, None))
    op.output("out", op.filter("nothing", counted, lambda _item: False), TestingSink([]))
    return flow


def _count_step_cpu() -> dict[str, float]:
    """Wrap the flow's step functions so that each adds the CPU seconds of its calls (`thread_time`:
    the Bytewax worker thread's own) to `spent[step]`; called before the flow is built, so its steps
    call the wrappers. What no step accounts for is Bytewax itself: moving items, pickling those that
    cross to another process, its other threads, and start-up."""
    from sloguard.connectors import kafka_io
    from sloguard.flows import incident_step, operators, slo_flow

    spent: dict[str, float] = {}

    def wrap(owner: object, name: str, step: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            start, wall = time.thread_time(), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                cpu = time.thread_time() - start
                spent[step] = spent.get(step, 0.0) + cpu
                if step == "source":  # the worker blocked in consume(): waiting on librdkafka's queue
                    spent[WAITED] = spent.get(WAITED, 0.0) + time.perf_counter() - wall - cpu

        setattr(owner, name, timed)

    wrap(kafka_io._KafkaRawPartition, "next_batch", "source")
    wrap(slo_flow, "_parse", "parse")
    wrap(slo_flow, "route_batch", "route")
    for logic, step in ((operators.ShardLogic, "shards"), (operators.JudgeLogic, "judge"),
                        (operators.GatherLogic, "gather"), (incident_step.IncidentLogic, "incidents")):
        wrap(logic, "on_item", step)
        wrap(logic, "on_eof", step)
    wrap(kafka_io._JsonSinkPartition, "write_batch", "sinks")
    return spent


def _judge_apart(config):
    """An experiment in placement (`--judge-apart`, two processes): each model's judge whole, in one
    part, on the worker its key goes to, and all of its shards on the other worker, instead of the
    judge in two parts (each merging and folding every summary) beside half the shards each."""
    import dataclasses
    from functools import cache

    from sloguard.flows import operators
    from sloguard.flows.routing import key_on, worker_of

    @cache
    def apart_key(model: str, shard: int) -> str:
        return key_on(f"{model}#{shard}", 1 - worker_of(model, 2), 2)  # a one-part judge is keyed by its model

    operators.shard_key = apart_key  # route_batch keys the pieces with it
    return dataclasses.replace(config, judge_parts=1)


STEPS = ("source", "parse", "route", "shards", "judge", "gather", "incidents", "sinks")


WAITED = "source waited"  # wall seconds, not CPU: not one of the steps


def _steps_line(result: dict) -> str:
    steps = result["steps"]
    rest = result["cpu_s"] - sum(v for k, v in steps.items() if k != WAITED)
    return ", ".join([*(f"{k} {steps[k]:.1f}" for k in STEPS if k in steps), f"Bytewax and the rest {rest:.1f}",
                      f"({WAITED} {steps.get(WAITED, 0.0):.1f} s of wall time)"])


def _flow(spec: dict) -> dict:
    import yaml
    from bytewax.testing import run_main

    from sloguard.apps.run import RunOptions, build_kafka_flow
    from sloguard.apps.streaming_gc import streaming_gc
    from sloguard.core.spec.config import parse_config

    kafka, settings = _settings(spec)
    yaml_path = ROOT / "examples" / f"{spec['scenario']}.yaml"
    config = parse_config({**yaml.safe_load(yaml_path.read_text()), "kafka": kafka}, base_dir=yaml_path.parent)
    steps = _count_step_cpu() if spec.get("step_cpu") else None
    if spec.get("judge_apart") and "process_id" in spec:
        config = _judge_apart(config)
    start, cpu, wall_start = time.perf_counter(), _cpu_s(), time.time()
    # as `sloguard run -i N -a ...` would: the cluster's addresses (the judge runs in one part per process)
    options = RunOptions(tail=False, addresses=spec.get("addresses"))
    # the epoch interval of `sloguard run` without --recovery-dir (`--epoch-s` to compare others)
    epoch = timedelta(seconds=spec.get("epoch_s") or options.epoch_interval_s)
    flow = _front_flow(config, settings) if spec.get("front") else build_kafka_flow(config, settings, options)
    if "process_id" in spec:  # one of several processes of one cluster
        from bytewax.run import cli_main

        with streaming_gc():  # as `sloguard run` runs its flow
            cli_main(flow, workers_per_process=1, process_id=spec["process_id"], addresses=spec["addresses"],
                     epoch_interval=epoch)
        return {"seconds": time.perf_counter() - start, "cpu_s": _cpu_s() - cpu, "peak_rss_mib": _peak_rss_mib(),
                "wall": (wall_start, time.time()), "steps": steps}
    with streaming_gc():
        run_main(flow, epoch_interval=epoch)
    seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
    peak_mib = _peak_rss_mib()

    outputs = {k: _drain(settings, _partitions(settings, [settings.topic(k)]), "bench-count") for k in OUTPUTS}
    return {"seconds": seconds, "cpu_s": cpu, "peak_rss_mib": peak_mib, "outputs": outputs, "steps": steps}


def _child(mode: str, spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(spec)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cluster(spec: dict, processes: int) -> dict:
    """The flow as `processes` single-worker processes of one cluster, timed as the one worker is: from
    the first process starting to build its flow to the last one's end (each reads the wall clock
    there), so neither side counts interpreter start-up and imports. `outside_s` is also kept: from
    the first start to the last exit, seen from here."""
    from sloguard.connectors.broker import free_port

    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--child", "flow",
                               json.dumps({**spec, "process_id": i, "addresses": addresses})],
                              stdout=subprocess.PIPE, text=True) for i in range(processes)]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"flow process exited {p.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    outside_s = time.perf_counter() - start
    seconds = max(r["wall"][1] for r in results) - min(r["wall"][0] for r in results)
    _, settings = _settings(spec)
    outputs = {k: _drain(settings, _partitions(settings, [settings.topic(k)]), "bench-count") for k in OUTPUTS}
    return {"seconds": seconds, "outside_s": outside_s, "cpu_s": sum(r["cpu_s"] for r in results), "outputs": outputs,
            "cpu_each": [r["cpu_s"] for r in results], "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "each": results}


def _produce(settings, topics: dict[str, str], files: dict[str, Path], partitions: int) -> dict:
    """Every line to its topic, round robin over the partitions: equal partitions, as keying by a
    hash of the id gives (librdkafka's sticky partitioner without keys splits them unevenly, and the
    processes' shares of the work with them)."""
    from confluent_kafka import Producer

    producer = Producer(settings.producer_config({"linger.ms": 20, "batch.num.messages": 100_000,
                                                  "queue.buffering.max.messages": 1_000_000}))
    failed = []

    def report(err, _msg) -> None:
        if err is not None:
            failed.append(str(err))

    n = 0
    start = time.perf_counter()
    for kind, path in files.items():
        topic = topics[kind]
        with path.open("rb") as f:
            for line in f:
                value = line.rstrip(b"\n")
                while True:
                    try:
                        producer.produce(topic, value, partition=n % partitions, on_delivery=report)
                        break
                    except BufferError:  # local queue full: let deliveries drain
                        producer.poll(0.1)
                producer.poll(0)
                n += 1
    left = producer.flush(120)
    seconds = time.perf_counter() - start
    if left or failed:
        raise RuntimeError(f"produce failed: {left} still queued, {len(failed)} errors, e.g. {failed[:3]}")
    return {"messages": n, "seconds": seconds}


def _broker(result: dict) -> str:
    cpu = result.get("broker_cpu_s")
    return "" if cpu is None else f", broker cpu {cpu:.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scenario", default="fraud", choices=("fraud", "recsys"))
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of plain, flow and cluster run back to back; each ratio is taken within "
                        "its round, the median round is shown in full")
    parser.add_argument("--front", action="store_true",
                        help="run only the flow's front (parse, route, a keyed step that counts the pieces): "
                        "work with no keyed state, so its speed-up is what Kafka and Bytewax give here")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of each topic")
    parser.add_argument("--processes", type=int, default=None,
                        help="also run the flow as N one-worker processes (needs --partitions >= N)")
    parser.add_argument("--client", action="append", default=[], metavar="KEY=VALUE",
                        help="librdkafka option for the clients of both runs (kafka.client); repeatable")
    parser.add_argument("--step-cpu", action="store_true",
                        help="also count each flow process's CPU seconds per step (source, parse, route, shards, "
                        "judge, gather, incidents, sinks; the worker thread's own CPU) and print them: where a "
                        "second process spends more than the one worker")
    parser.add_argument("--epoch-s", type=float, default=None,
                        help="Bytewax epoch interval of the flow runs (default: sloguard run's without --recovery-dir)")
    parser.add_argument("--judge-apart", action="store_true",
                        help="experiment, with --processes 2: each model's judge whole on one worker and its shards "
                        "all on the other (see _judge_apart), instead of the judge in two parts beside half the shards")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.judge_apart and args.processes != 2:
        parser.error("--judge-apart places work on two processes: use it with --processes 2")
    if args.child:
        mode, spec = args.child
        result = (_plain if mode == "plain" else _flow)(json.loads(spec))
        print(json.dumps(result))
        return 0

    from sloguard.apps.run import INPUTS
    from sloguard.connectors.admin import create_topics, delete_topics
    from sloguard.connectors.kafka_config import ENV_BOOTSTRAP, KafkaSettings
    from sloguard.core.synth.scenarios import plan, write_scenario

    data = ROOT / "out" / "bench" / f"{args.scenario}-{args.events}"
    if not (data / "manifest.json").exists():
        print(f"generating {args.events:,} {args.scenario} events into {data} ...", flush=True)
        write_scenario(plan(args.scenario, events=args.events, seed=7), data)

    client = dict(kv.split("=", 1) for kv in args.client)
    broker = None
    bootstrap = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if not bootstrap:
        from sloguard.connectors.broker import EmbeddedBroker

        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap_servers
    settings = KafkaSettings.from_mapping({"bootstrap_servers": bootstrap, "client": client}, env={})
    run_id = uuid.uuid4().hex[:8]
    inputs = {k: f"bench.{k}.{run_id}" for k in INPUTS}
    made: list[str] = []

    def topics(names: list[str]) -> None:
        create_topics(settings, names, partitions=args.partitions)
        made.extend(names)

    try:
        topics(list(inputs.values()))
        print(f"producing {args.scenario}-{args.events} to {bootstrap} "
              f"({'embedded broker' if broker else ENV_BOOTSTRAP}) ...", flush=True)
        produced = _produce(settings, inputs, {k: data / f"{k}.jsonl" for k in INPUTS}, args.partitions)

        def spec(run: int | None) -> dict:
            outs = {k: f"bench.{k.replace('_', '-')}.{run_id}.{run}" for k in OUTPUTS} if run is not None else {}
            if outs:
                topics(list(outs.values()))
            return {"bootstrap": bootstrap, "topics": {**inputs, **outs}, "scenario": args.scenario, "client": client,
                    "epoch_s": args.epoch_s}

        broker_pid = broker.pid if broker else None

        def with_broker_cpu(result: Callable[[], dict]) -> dict:
            """`result()`, with the embedded broker's CPU seconds while it ran: on 2 cores, what the
            broker takes serving the fetches is not there for the flow's processes."""
            before = _proc_cpu_s(broker_pid)
            out = result()
            after = _proc_cpu_s(broker_pid)
            return {**out, "broker_cpu_s": None if before is None or after is None else after - before}

        # rounds of plain, flow and cluster back to back: this host's speed drifts by 20 % and more
        # over minutes, so each ratio compares runs made a minute apart, never one side's best of N
        # against the other's
        rounds = []
        for i in range(args.repeat):
            plain = with_broker_cpu(lambda: _child("plain", spec(None)))
            flow = with_broker_cpu(lambda i=i: _child("flow", {**spec(i), "front": args.front,
                                                               "step_cpu": args.step_cpu}))
            cluster = (with_broker_cpu(lambda i=i: _cluster({**spec(100 + i), "front": args.front,
                                                              "step_cpu": args.step_cpu,
                                                              "judge_apart": args.judge_apart}, args.processes))
                       if args.processes else None)
            rounds.append((plain, flow, cluster))
        broker_rss = _vm_hwm_mib(broker.pid) if broker else None
    finally:
        if broker is not None:
            broker.stop()
        elif made:
            with contextlib.suppress(Exception):
                delete_topics(settings, made, timeout=30)

    n = produced["messages"]
    ratios = [p["seconds"] / f["seconds"] for p, f, _ in rounds]
    speedups = [f["seconds"] / c["seconds"] for _, f, c in rounds if c is not None]
    for p, _, _ in rounds:
        if p["messages"] != n:
            print(f"  WARNING: plain consumer read {p['messages']:,} of {n:,} messages")
    plain, flow, cluster = rounds[median_round(ratios)]  # shown in full
    p_rate, f_rate = n / plain["seconds"], n / flow["seconds"]
    print(f"scenario {args.scenario}, {args.events:,} inference events, {args.partitions} partition(s) per topic, "
          f"{args.repeat} round(s), the median round shown" + (f", kafka.client {client}" if client else "")
          + (" -- FRONT ONLY: parse, route and a keyed count, no shards or judge" if args.front else "")
          + (" -- JUDGE APART: the processes' judge whole on one, the shards on the other" if args.judge_apart else ""))
    print(f"  inference + labels + features ({n:,} messages)")
    print(f"    produce (linger.ms=20)    : {n / produced['seconds']:12,.0f} messages/s   "
          f"({produced['seconds']:.1f} s)")
    extra = ", ".join(f"{k}={v}" for k, v in PLAIN_EXTRA.items())
    print(f"    plain consume + orjson    : {p_rate:12,.0f} messages/s   ({plain['seconds']:.1f} s, "
          f"cpu {plain['cpu_s']:.1f} s{_broker(plain)}; {extra})")
    print(f"    sloguard flow, 1 worker   : {f_rate:12,.0f} messages/s   ({flow['seconds']:.1f} s, "
          f"cpu {flow['cpu_s']:.1f} s{_broker(flow)})   outputs {flow['outputs']}")
    print(f"    ratio flow / plain        : {f_rate / p_rate:12.2f}   (aim >= 0.50)" + each_round(ratios))
    if cluster is not None:
        c_rate = n / cluster["seconds"]
        print(f"    sloguard flow, {args.processes} processes: {c_rate:12,.0f} messages/s   "
              f"({cluster['seconds']:.1f} s; {cluster['outside_s']:.1f} s with start-up, "
              f"cpu {cluster['cpu_s']:.1f} s = "
              f"{' + '.join(f'{c:.1f}' for c in cluster['cpu_each'])}{_broker(cluster)}, "
              f"peak RSS {cluster['peak_rss_mib']:.0f} MiB)   outputs {cluster['outputs']}")
        print(f"    speed-up {args.processes} processes / 1  : {c_rate / f_rate:12.2f}   (aim >= 1.6 for 2)"
              + each_round(speedups))
    if args.step_cpu:
        print("  CPU seconds per step (median round)")
        print(f"    1 worker   : {_steps_line(flow)}")
        for k, each in enumerate(cluster["each"] if cluster is not None else []):
            print(f"    process {k}  : {_steps_line(each)}")
    print(f"  peak RSS, flow over {n:>10,} messages: {flow['peak_rss_mib']:7.1f} MiB"
          f"   (plain consumer {plain['peak_rss_mib']:.1f} MiB)")
    if broker_rss is not None:
        print(f"  peak RSS, embedded broker holding them: {broker_rss:7.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
