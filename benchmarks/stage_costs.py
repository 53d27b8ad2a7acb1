"""Where one message's CPU goes: each stage of the flow's per-batch work, beside the decode floors.

    python benchmarks/stage_costs.py [--messages N] [--batch 10000] [--shards 8] [--pickle] [--parts 2]
                                     [--data out/bench/fraud-300000-20eps]

Reads the fraud scenario `benchmarks/kafka_throughput.py` uses (out/bench/fraud-1000000, generated
the first time; `--data` names another folder of fraud events, such as one that
`benchmarks/replay_throughput.py --density` wrote) in batches of `--batch` lines per topic, the three
topics in turn as a Kafka source hands them over, and runs the stages one worker runs in order,
without Bytewax: parse (decode, check, columns), route (ids hashed, pieces per shard, the batch's
pre-aggregation), the shards (dedupe, label join) and the judge (merging summaries, judging the ticks
event time passes). Prints the process CPU of each stage per message, and the floors a consumer pays
anyway: `orjson.loads` of every message (the Kafka and replay benchmarks' "plain" side), the msgspec
decode alone, and the same decode with each part's events kept alive together ("decode, kept": less
than that, parsing into columns cannot cost). `--pickle` adds what sending every piece and summary to
another process would cost (Bytewax pickles what crosses processes): bytes and CPU per message.
`--parts N` also runs the judge as N parts (`scale.judge_parts`, one per process in a cluster) on the
same summaries, and prints each part's CPU per message beside the whole judge's: what splitting the
judge by SLOs leaves to each process.

The ratio those benchmarks report is about (floor) / (all stages + source + sinks): a ratio of 0.5
leaves the whole flow twice the floor per message. The floor decodes each message and drops it at
once (its memory reused while still in cache); parse has to keep a batch's events alive to turn them
into columns, which alone costs more than the floor does.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("inference", "labels", "features")


def _batches(data: Path, messages: int, size: int) -> list:
    from sloguard.core.messages.events import RawBatch

    files = {k: (data / f"{k}.jsonl").open("rb") for k in KINDS}
    offsets = dict.fromkeys(KINDS, 0)
    out, done, total = [], set(), 0
    while len(done) < len(KINDS) and total < messages:
        for kind, f in files.items():
            lines = [line.rstrip(b"\n") for line in itertools.islice(f, size)]
            if not lines:
                done.add(kind)
                continue
            out.append(RawBatch(kind, kind, 0, list(range(offsets[kind], offsets[kind] + len(lines))), lines,
                                source=f"{kind}#0"))
            offsets[kind] += len(lines)
            total += len(lines)
    for f in files.values():
        f.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=None,
                        help="messages to run (all three topics; default all 2.35M, as the Kafka benchmark reads: "
                        "the shards and the judge cost more per message as the label store fills, so a prefix "
                        "understates them, e.g. 1.7 against 2.8-3.0 us a message each for the first 600,000)")
    parser.add_argument("--batch", type=int, default=10_000,
                        help="lines per batch (the Kafka source's batch size, connectors/kafka_io.py)")
    parser.add_argument("--shards", type=int, default=None, help="scale.shards (default: the config's, 8)")
    parser.add_argument("--parts", type=int, default=None,
                        help="also judge the same summaries as N judge parts, each timed (not counted in the stages)")
    parser.add_argument("--pickle", action="store_true",
                        help="also pickle every piece and summary, as Bytewax does to send one to another "
                        "process: bytes and CPU per message (not counted in the stages)")
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder of fraud events to read instead (e.g. out/bench/fraud-300000-20eps, written "
                        "by replay_throughput.py --density: sparse event time, where the judge's ticks weigh more)")
    args = parser.parse_args()
    if args.data is not None and not all((args.data / f"{k}.jsonl").is_file() for k in KINDS):
        parser.error(f"--data {args.data}: needs {', '.join(f'{k}.jsonl' for k in KINDS)} (a scenario folder)")
    sys.path.insert(0, str(ROOT))
    import msgspec
    import orjson

    from sloguard.apps.streaming_gc import streaming_gc
    from sloguard.core.evaluate.evaluator import ModelEvaluator, pieces_of, split_by_model
    from sloguard.core.evaluate.judge import Judge
    from sloguard.core.evaluate.plan import ModelPlan
    from sloguard.core.messages.batch import fast_decoder
    from sloguard.core.messages.sub_batches import SUB_BATCH, parse_in_parts
    from sloguard.core.spec.config import load_config
    from sloguard.core.synth.scenarios import plan, write_scenario
    from sloguard.flows.slo_flow import parse_spec

    data = args.data or ROOT / "out" / "bench" / "fraud-1000000"
    if args.data is None and not (data / "manifest.json").exists():
        print(f"generating 1,000,000 fraud events into {data} ...", flush=True)
        write_scenario(plan("fraud", events=1_000_000, seed=7), data)
    config = load_config(ROOT / "examples" / "fraud.yaml")
    if args.shards:
        config = dataclasses.replace(config, shards=args.shards)
    spec = parse_spec(config)
    batches = _batches(data, args.messages or sys.maxsize, args.batch)
    n = sum(len(b.values) for b in batches)
    clock = time.process_time

    floors = {"orjson.loads": 0.0, "msgspec decode": 0.0, "decode, kept": 0.0}
    with streaming_gc():
        for raw in batches:
            decode = fast_decoder(raw.kind)[0]
            start = clock()
            for value in raw.values:
                try:  # noqa: SIM105 - as the plain side of the benchmarks reads
                    orjson.loads(value)
                except orjson.JSONDecodeError:
                    pass
            mid = clock()
            for value in raw.values:
                try:  # noqa: SIM105
                    decode(value)
                except (msgspec.ValidationError, msgspec.DecodeError):
                    pass
            end = clock()
            for i in range(0, len(raw.values), SUB_BATCH):  # as parse must: a part's events alive at once
                try:  # noqa: SIM105
                    list(map(decode, raw.values[i : i + SUB_BATCH]))  # all alive at once, then freed
                except (msgspec.ValidationError, msgspec.DecodeError):
                    pass
            floors["orjson.loads"] += mid - start
            floors["msgspec decode"] += end - mid
            floors["decode, kept"] += clock() - end

    sources = tuple(f"{k}#0" for k in KINDS)
    evaluators = {m: ModelEvaluator(config, m, sources=sources) for m in config.models}
    parted = dataclasses.replace(config, judge_parts=args.parts or 1)
    parts = {m: [Judge(ModelPlan(parted, m), None, sources, p) for p in range(args.parts or 0)] for m in config.models}
    part_spent = [0.0] * (args.parts or 0)
    spent = dict.fromkeys(("parse", "route", "shards", "judge"), 0.0)
    pickled = {"piece": [0, 0.0], "summary": [0, 0.0]}  # bytes, CPU seconds

    def pickle_cost(kind: str, item: object) -> None:
        start = clock()
        pickled[kind][0] += len(pickle.dumps(item, protocol=5))
        pickled[kind][1] += clock() - start

    with streaming_gc():  # the collector's settings of a running flow (sloguard/apps/streaming_gc.py)
        for raw in batches:
            start = clock()
            parsed = parse_in_parts(raw, spec, now=raw.not_after or 2e9)  # as the flow parses
            spent["parse"] += clock() - start
            for model, batch in split_by_model(parsed, list(evaluators)):
                ev = evaluators[model]
                start = clock()
                pieces = pieces_of(ev.plan, batch)
                spent["route"] += clock() - start
                for piece in pieces:
                    if args.pickle:
                        pickle_cost("piece", piece)
                    start = clock()
                    summary, _ = ev.shards[piece.shard].ingest(piece)
                    spent["shards"] += clock() - start
                    if args.pickle:
                        pickle_cost("summary", summary)
                    start = clock()
                    ev.judges[0].merge(summary)
                    spent["judge"] += clock() - start
                    for p, judge in enumerate(parts[model]):
                        start = clock()
                        judge.merge(summary)
                        part_spent[p] += clock() - start

    def us(seconds: float) -> str:
        return f"{1e6 * seconds / n:6.2f} us"

    print(f"{n:,} messages of {data.name} in batches of {args.batch} ({len(batches)} batches), "
          f"{config.shards} shards, CPU per message:")
    for name, seconds in floors.items():
        print(f"  floor  {name:15s} {us(seconds)}")
    for name, seconds in spent.items():
        print(f"  stage  {name:15s} {us(seconds)}")
    after = sum(spent.values()) - spent["parse"]
    print(f"  all stages      {us(sum(spent.values()))}   after parse {us(after)}   "
          f"parse / orjson.loads {spent['parse'] / floors['orjson.loads']:.2f}")
    for p, seconds in enumerate(part_spent):
        print(f"  judge part {p} of {args.parts}  {us(seconds)}   {seconds / spent['judge']:.2f} of the whole judge")
    if args.pickle:  # with N processes, (N - 1) / N of the pieces and each part's summaries cross
        for kind, (size, seconds) in pickled.items():
            print(f"  pickle {kind:15s} {us(seconds)}   {size / n:6.1f} bytes a message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
