"""`make reliability`: the fault scenarios of issue 15, replayed, with what became of every input.

    python benchmarks/reliability.py [--events 20000] [--kills 3] [--no-kafka] [--out out/reliability]

Each scenario mixes faults into generated fraud traffic (`sloguard generate`), runs the real
dataflow over it and accounts for every input message: each one must either count as valid in the
model's schema SLI (`good` of the whole-model `fraud-schema` budget at the last tick) or come out
as a dead letter. `lost` is the inputs accounted for neither way, `duplicated` those accounted
for twice; `survived` says the run ended normally and the scenario's own check held:

* poison: 2.4 KB messages nesting 1,000 arrays or 2,000 objects, every 500th line;
* future burst: 1,000 consecutive events stamped 2090 in the middle of the traffic;
* invalid corpus: every line of schemas/samples/*.invalid.jsonl among the traffic;
* invalid only: after the traffic, 10 minutes of inference events with a renamed field; the schema
  page must fire within the workbook bound;
* resume, SLOs changed: state snapshotted half way, resumed with the SLO list reordered and one
  SLO added; every original SLO's messages must equal an uninterrupted run's;
* kill -9 (Kafka, embedded broker): `sloguard run --drain --recovery-dir` killed `--kills` times
  mid-run, restarted each time; its budget and alert messages must equal a replay's (at least
  once: messages written again after a restart count as duplicated, and must be identical);
* broker down (Kafka): `run` started before the broker, which comes 5 s later.

Exit status 0 when nothing was lost and every scenario survived.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sloguard.apps.replay import replay  # noqa: E402
from sloguard.core.spec.config import load_config, parse_config  # noqa: E402
from sloguard.core.synth.scenarios import plan, write_scenario  # noqa: E402

CONFIG = ROOT / "examples" / "fraud.yaml"
KINDS = ("inference", "labels", "features")
FAR_FUTURE = 3_786_912_000.0  # 2090-01-01


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def read(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in lines(path)]


def write(path: Path, messages: list[bytes]) -> Path:
    path.write_bytes(b"".join(m + b"\n" for m in messages))
    return path


def event_ts(line: bytes) -> float:
    """A line's `ts` when it is readable, else 0 (the generated traffic has malformed lines)."""
    from sloguard.core.spec.timeutil import MAX_EPOCH_S, MIN_EPOCH_S, parse_rfc3339

    try:
        ts = orjson.loads(line).get("ts")
    except (orjson.JSONDecodeError, AttributeError):
        return 0.0
    if isinstance(ts, str):
        ts = parse_rfc3339(ts)
    ok = isinstance(ts, int | float) and not isinstance(ts, bool) and MIN_EPOCH_S <= ts < MAX_EPOCH_S
    return float(ts) if ok else 0.0


def account(inputs: int, out: Path) -> tuple[int, int, list[dict]]:
    """(lost, duplicated) of a replay's inputs: valid ones count in fraud-schema's `good`, the rest
    are dead letters; returns the budget events too."""
    from sloguard.core.messages.events import Rejected, decode_event

    budgets = read(out / "budget.jsonl")
    schema = [b for b in budgets if b["slo"] == "fraud-schema" and b["segment"] == {}]
    good = int(schema[-1]["good"]) if schema else 0
    dead = 0
    for d in read(out / "dead_letter.jsonl"):
        if d["topic"] == "ml.labels":  # a well-formed label whose prediction never came counts as valid too
            try:
                decode_event("labels", d["payload"].encode())
                continue
            except Rejected:
                pass
        dead += 1
    return max(0, inputs - good - dead), max(0, good + dead - inputs), budgets


def run_replay(name: str, files: dict[str, list[bytes]], base: Path) -> tuple[int, int, int, list[dict], Path]:
    inputs = {k: write(base / f"{name}.{k}.jsonl", v) for k, v in files.items()}
    out = base / name
    replay(load_config(CONFIG), inputs, out)
    lost, dup, budgets = account(sum(map(len, files.values())), out)
    return sum(map(len, files.values())), lost, dup, budgets, out


def poison(data: dict[str, list[bytes]], base: Path) -> tuple:
    deep = b'{"id":"x","model":"fraud","junk":' + b"[" * 1000 + b"]" * 1000 + b"}"
    objects = b'{"model":"fraud","x":' + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}"
    inference = []
    for i, line in enumerate(data["inference"]):
        inference.append(line)
        if i % 500 == 0:
            inference.append(deep if i % 1000 else objects)
    tried, lost, dup, budgets, out = run_replay("poison", {**data, "inference": inference}, base)
    nested = sum(1 for d in read(out / "dead_letter.jsonl") if (d["payload_bytes"] > 2000 and "junk" in d["payload"])
                 or d["payload"].startswith('{"model":"fraud","x":'))
    return "poison (1,000-deep nesting)", tried, lost, dup, bool(budgets) and nested == len(inference) - len(
        data["inference"])


def future_burst(data: dict[str, list[bytes]], base: Path) -> tuple:
    inference = list(data["inference"])
    mid, stamped = len(inference) // 2, set()
    for i in range(mid, min(mid + 1000, len(inference))):
        if event_ts(inference[i]):
            e = orjson.loads(inference[i])
            e["ts"] = FAR_FUTURE + i
            inference[i] = orjson.dumps(e)
            stamped.add(i)
    tried, lost, dup, budgets, out = run_replay("future", {**data, "inference": inference}, base)
    dead = {d["offset"] for d in read(out / "dead_letter.jsonl") if d["topic"] == "ml.inference"}
    ok = bool(budgets) and stamped <= dead and max(b["ts"] for b in budgets) < "2027"
    return "future burst (1,000 stamped 2090)", tried, lost, dup, ok


def invalid_corpus(data: dict[str, list[bytes]], base: Path) -> tuple:
    files = {k: list(v) for k, v in data.items()}
    corpus = 0
    for kind in KINDS:
        bad = lines(ROOT / "schemas" / "samples" / f"{kind}.invalid.jsonl")
        corpus += len(bad)
        step = max(1, len(files[kind]) // (len(bad) + 1))
        for j, line in enumerate(bad):
            files[kind].insert((j + 1) * step + j, line)
    tried, lost, dup, budgets, out = run_replay("corpus", files, base)
    dead = len(lines(out / "dead_letter.jsonl"))
    return f"invalid corpus ({corpus} kinds of bad input)", tried, lost, dup, bool(budgets) and dead >= corpus


def invalid_only(data: dict[str, list[bytes]], base: Path) -> tuple:
    last = max(map(event_ts, data["inference"]))
    extra = []
    for i in range(600):  # 10 minutes, one a second, `latency_ms` renamed by a deploy
        extra.append(orjson.dumps({"id": f"broken-{i}", "model": "fraud", "version": "v", "ts": last + 1 + i,
                                   "status": "ok", "latency": 12.0}))
    tried, lost, dup, _, out = run_replay("invalid-only", {**data, "inference": data["inference"] + extra}, base)
    pages = [a for a in read(out / "alerts.jsonl") if a["slo"] == "fraud-schema" and a["state"] == "firing"
             and a["severity"] == "page"]
    from sloguard.core.spec.timeutil import parse_rfc3339

    # the workbook's fast burn at 100 % errors: 3600 s x 14.4 x (1 - 0.999), one tick, the lateness
    on_time = any(last < parse_rfc3339(a["ts"]) <= last + 51.84 + 60 + 60 for a in pages)
    return "invalid-only traffic (10 min)", tried, lost, dup, on_time


def resume_changed(data: dict[str, list[bytes]], base: Path) -> tuple:
    import pickle

    import msgspec

    from sloguard.core.evaluate.evaluator import ModelEvaluator, split_by_model
    from sloguard.core.messages.batch import parse_batch
    from sloguard.core.messages.events import RawBatch
    from sloguard.flows.slo_flow import parse_spec

    raw = yaml.safe_load(CONFIG.read_text())
    first = parse_config(raw, base_dir=CONFIG.parent)
    raw2 = {**raw, "slos": [*raw["slos"][::-1], {**raw["slos"][0], "name": "added", "objective": 0.9999}]}
    second = parse_config(raw2, base_dir=CONFIG.parent)
    stream = sorted(((event_ts(x), k, x) for k in KINDS for x in data[k]), key=lambda t: t[0])
    batches = [stream[i : i + 1000] for i in range(0, len(stream), 1000)]

    def feed(ev: ModelEvaluator, config, chunks) -> list:
        out = []
        for chunk in chunks:
            for kind in KINDS:
                part = [x for _, k, x in chunk if k == kind]
                if part:
                    rb = RawBatch(kind, kind, 0, list(range(len(part))), part, source=kind)
                    for _, mb in split_by_model(parse_batch(rb, parse_spec(config)), ["fraud"]):
                        out += ev.process(mb)
        return out

    names = {s["name"] for s in raw["slos"]}

    def mine(out: list) -> Counter:
        return Counter(orjson.dumps({k: v for k, v in msgspec.to_builtins(m).items() if k != "health"},
                                    option=orjson.OPT_SORT_KEYS)
                       for kind, m in out if kind in ("budget", "alert") and m.slo in names)

    half = len(batches) // 2
    whole = ModelEvaluator(first, "fraud", sources=KINDS)
    feed(whole, first, batches[:half])
    snapshot = whole.snapshot()
    want = mine(feed(whole, first, batches[half:]) + whole.finish())
    resumed = ModelEvaluator.from_snapshot(second, "fraud", pickle.loads(pickle.dumps(snapshot)))
    got = mine(feed(resumed, second, batches[half:]) + resumed.finish())
    return ("resume, SLOs reordered + one added", len(stream), sum((want - got).values()),
            sum((got - want).values()), want == got)


# ---- Kafka (embedded broker) ------------------------------------------------------------------


def _kafka(data: dict[str, list[bytes]], base: Path, bootstrap: str, prefix: str) -> tuple[Path, dict]:
    from confluent_kafka import Producer

    from sloguard.connectors.admin import create_topics

    names = {k: f"{prefix}.{k}" for k in (*KINDS, "budget", "alerts", "dead_letter")}
    create_topics({"bootstrap.servers": bootstrap}, list(names.values()))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for kind in KINDS:
        for line in data[kind]:
            producer.produce(names[kind], line)
            producer.poll(0)
    producer.flush(60)
    raw = yaml.safe_load(CONFIG.read_text())
    for model in raw["models"].values():
        if model.get("baseline"):
            model["baseline"] = str(CONFIG.parent / model["baseline"])
    path = base / f"{prefix}.yaml"
    path.write_text(yaml.safe_dump({**raw, "kafka": {"bootstrap_servers": bootstrap, "topics": names}}))
    return path, names


def _consume(bootstrap: str, topic: str) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reliability", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    while True:
        msg = consumer.poll(10)
        if msg is None or msg.error():
            break
        out.append(msg.value())
    consumer.close()
    return out


def _sloguard(*args: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sloguard"
    return subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def kills(data: dict[str, list[bytes]], base: Path, bootstrap: str, n: int, reference: Path) -> tuple:
    """Kill -9 the run each time the budget topic has grown by another 1 / (n + 1) of the reference's
    budget messages, restart it from the recovery dir, and let the last one finish."""
    import shutil

    from confluent_kafka import Consumer, TopicPartition

    path, names = _kafka(data, base, bootstrap, "kills")
    shutil.rmtree(base / "recovery", ignore_errors=True)
    args = ("run", "--config", str(path), "--drain", "--recovery-dir", str(base / "recovery"),
            "--snapshot-interval", "0.5")
    total = len(lines(reference / "budget.jsonl"))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reliability-watch"})
    consumer.assign([TopicPartition(names["budget"], 0, 0)])
    seen, killed = 0, 0
    for k in range(1, n + 1):
        proc = _sloguard(*args)
        deadline = time.time() + 300
        while seen < k * total / (n + 1) and proc.poll() is None and time.time() < deadline:
            seen += len(consumer.consume(1000, 0.2))
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        killed += 1
    consumer.close()
    proc = _sloguard(*args)
    proc.wait(600)
    survived = proc.returncode == 0
    got = Counter(orjson.dumps(orjson.loads(m), option=orjson.OPT_SORT_KEYS)
                  for k in ("budget", "alerts") for m in _consume(bootstrap, names[k]))
    want = Counter(orjson.dumps(m, option=orjson.OPT_SORT_KEYS)
                   for k in ("budget", "alerts") for m in read(reference / f"{k}.jsonl"))
    lost = sum((want - got).values())
    dup = sum((got - want).values())
    unknown = sum(1 for m in got if m not in want)  # a repeat must be identical to a real message
    return (f"kill -9 x{killed}, restart from recovery", sum(map(len, data.values())), lost, dup,
            survived and unknown == 0 and killed == n)


def broker_down(data: dict[str, list[bytes]], base: Path) -> tuple:
    from sloguard.connectors.broker import EmbeddedBroker, free_port

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    raw = yaml.safe_load(CONFIG.read_text())
    for model in raw["models"].values():
        if model.get("baseline"):
            model["baseline"] = str(CONFIG.parent / model["baseline"])
    names = {k: f"late.{k}" for k in (*KINDS, "budget", "alerts", "dead_letter")}
    path = base / "late.yaml"
    path.write_text(yaml.safe_dump({**raw, "kafka": {"bootstrap_servers": bootstrap, "topics": names}}))
    proc = _sloguard("run", "--config", str(path), "--drain")
    time.sleep(5)
    alive = proc.poll() is None
    with EmbeddedBroker(port=port) as broker:
        _kafka(data, base, broker.bootstrap_servers, "late")
        proc.wait(600)
        err = proc.stderr.read().decode() if proc.stderr else ""
        budgets = _consume(bootstrap, names["budget"])
    ok = alive and proc.returncode == 0 and "Traceback" not in err and bool(budgets)
    return "broker down when run starts", sum(map(len, data.values())), 0, 0, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="inference events of the traffic (default 20000)")
    parser.add_argument("--kills", type=int, default=3, help="kill -9s of the Kafka run (default 3)")
    parser.add_argument("--no-kafka", action="store_true", help="replay scenarios only, no embedded broker")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "reliability")
    args = parser.parse_args(argv)
    base = args.out
    base.mkdir(parents=True, exist_ok=True)
    paths = write_scenario(plan("fraud", events=args.events, seed=15), base / "traffic")
    data = {k: lines(paths[k]) for k in KINDS}
    rows = []
    for scenario in (poison, future_burst, invalid_corpus, invalid_only, resume_changed):
        started = time.perf_counter()
        rows.append((*scenario(data, base), time.perf_counter() - started))
        print(f"  {rows[-1][0]}: done in {rows[-1][-1]:.0f} s", file=sys.stderr)
    if not args.no_kafka:
        from sloguard.connectors.broker import EmbeddedBroker

        clean = base / "clean"
        replay(load_config(CONFIG), {k: paths[k] for k in KINDS}, clean)
        with EmbeddedBroker() as broker:
            started = time.perf_counter()
            rows.append((*kills(data, base, broker.bootstrap_servers, args.kills, clean),
                         time.perf_counter() - started))
        started = time.perf_counter()
        rows.append((*broker_down(data, base), time.perf_counter() - started))
    print(f"{'scenario':42} {'inputs tried':>12} {'lost':>6} {'duplicated':>10} {'survived':>8} {'time':>6}")
    for name, tried, lost, dup, ok, secs in rows:
        print(f"{name:42} {tried:>12,} {lost:>6,} {dup:>10,} {'yes' if ok else 'NO':>8} {secs:>5.0f}s")
    return 0 if all(ok and lost == 0 for _, _, lost, _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
