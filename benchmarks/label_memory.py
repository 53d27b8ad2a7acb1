"""Memory of the label join and the windows over a long replay: it must stay bounded.

    python benchmarks/label_memory.py [--events 1000000] [--scenario fraud] [--every 100000]

Generates the scenario (10 % of its predictions never get a label, so they wait and expire),
feeds it through the core evaluator (no Bytewax, so the state can be inspected), and prints
every `--every` inference events: predictions waiting for a label, labels joined / expired so
far, the label store's approximate bytes, the bytes of every key's windows and slice rings,
and the process's peak RSS. Bounded means: the waiting count and the bytes level off instead of
growing with the events read.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def window_bytes(evaluator) -> int:
    total = 0
    for key in evaluator.state.keys.values():
        for w in (key.windows, key.labelled, key.live):
            if w is not None:
                total += sum(c.nbytes for c in w.counts) + sum(i.nbytes for i in w.index)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--scenario", default="fraud", choices=("fraud", "recsys"))
    ap.add_argument("--every", type=int, default=100_000)
    ap.add_argument("--hours", type=float, default=24.0, help="scenario length (default 24 h)")
    ap.add_argument("--label-delay", default=None, help="override the example's label_delay (e.g. 6h)")
    ap.add_argument("--cap", type=int, default=None, help="override max_pending_labels")
    ap.add_argument("--waiting", type=int, default=None, metavar="N",
                    help="instead: N predictions that never get a label; print bytes per waiting prediction "
                         "and the time to snapshot the shards holding them")
    args = ap.parse_args()
    if args.waiting:
        waiting(args.waiting, args.scenario)
        return

    import subprocess

    from sloguard.apps.live_demo import example_config
    from sloguard.connectors.files import JsonlReplaySource
    from sloguard.core.evaluate.evaluator import ModelEvaluator, split_by_model
    from sloguard.core.messages.batch import parse_batch
    from sloguard.core.spec.config import parse_config
    from sloguard.flows.slo_flow import parse_spec

    data = ROOT / "out" / "bench" / f"labels-{args.scenario}-{args.events}-{args.hours:g}h"
    if not (data / "inference.jsonl").exists():  # in a subprocess: the peak RSS below is the replay's own
        print(f"generating {args.events:,} {args.scenario} events over {args.hours:g} h into {data} ...")
        subprocess.run(
            [sys.executable, "-m", "sloguard.apps.cli", "generate", "--scenario", args.scenario, "--events",
             str(args.events), "--seed", "11", "--duration", f"{int(args.hours * 3600)}s", "--out", str(data)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    raw = example_config(args.scenario)
    for m in raw["models"].values():
        if args.label_delay:
            m["label_delay"] = args.label_delay
        if args.cap:
            m["max_pending_labels"] = args.cap
    config = parse_config(raw)
    model = next(iter(config.models))
    kinds = ("inference", "labels", "features")
    ev = ModelEvaluator(config, model, sources=kinds)
    part = JsonlReplaySource({k: data / f"{k}.jsonl" for k in kinds}).build_part("bench", "replay", None)
    spec = parse_spec(config)
    seen, next_report, start = 0, args.every, time.perf_counter()
    heads = ("events", 10), ("waiting", 9), ("joined", 9), ("expired", 8), ("store MiB", 9), ("windows MiB", 11)
    print(" ".join(f"{h:>{w}}" for h, w in heads), f"{'RSS MiB':>8}")

    def report() -> None:
        r = ev.label_report()
        store = sum(s.state.labels.memory_bytes() for s in ev.shards if s.state.labels is not None)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{seen:>10,} {r['pending']:>9,} {r['joined']:>9,} {r['expired']:>8,} "
            f"{store / 2**20:>9.1f} {window_bytes(ev) / 2**20:>11.1f} {rss:>8.0f}",
            flush=True,
        )

    try:
        while True:
            for raw in part.next_batch():
                parsed = parse_batch(raw, spec)
                for _, batch in split_by_model(parsed, [model]):
                    if batch.inference is not None:
                        seen += len(batch.inference)
                    ev.process(batch)
                if seen >= next_report:
                    report()
                    next_report += args.every
    except StopIteration:
        pass
    ev.finish()
    report()
    m = config.models[model]
    print(
        f"{time.perf_counter() - start:.0f} s, {len(ev.state.keys)} keys, label_delay {m.label_delay_s / 3600:g} h, "
        f"cap {m.max_pending_labels:,}; peak RSS of a plain parse of the same files is not subtracted"
    )


def waiting(n: int, scenario: str) -> None:
    """Bytes per waiting prediction and snapshot time with `n` predictions waiting for labels."""
    import pickle

    import numpy as np
    import orjson

    from sloguard.apps.live_demo import example_config
    from sloguard.core.evaluate.evaluator import ModelEvaluator, split_by_model
    from sloguard.core.messages.batch import parse_batch
    from sloguard.core.messages.events import RawBatch
    from sloguard.core.spec.config import parse_config
    from sloguard.flows.slo_flow import parse_spec

    raw = example_config(scenario)
    for m in raw["models"].values():
        m["max_pending_labels"] = 2 * n
    config = parse_config(raw)
    model = next(iter(config.models))
    ev = ModelEvaluator(config, model, sources=("inference",))
    spec = parse_spec(config)
    rng = np.random.default_rng(3)
    t0, batch = 1_767_225_600.0, 5000
    start = time.perf_counter()
    for k in range(0, n, batch):
        events = [orjson.dumps({"id": f"{model}-{k + j:012d}-{rng.integers(1 << 62):x}", "model": model,
                                "version": "v1", "ts": t0 + (k + j) * 0.001, "status": "ok", "latency_ms": 20.0,
                                "prediction": int(j % 7 == 0), "score": 0.5,
                                "segment": {"region": ("eu", "us", "apac")[j % 3], "merchant_type": "online"},
                                "features": {}}) for j in range(min(batch, n - k))]
        for _, b in split_by_model(parse_batch(RawBatch("inference", "ml.inference", 0, list(range(len(events))),
                                                        events, source="inference"), spec), [model]):
            ev.process(b)
    fed = time.perf_counter() - start
    stores = [s.state.labels for s in ev.shards if s.state.labels is not None]
    pending = sum(st.pending for st in stores)
    store_bytes = sum(st.memory_bytes() for st in stores)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        sizes = [len(pickle.dumps(s.state, protocol=pickle.HIGHEST_PROTOCOL)) for s in ev.shards]
        times.append(time.perf_counter() - t)
    print(f"{pending:,} predictions waiting in {len(ev.shards)} shards (fed in {fed:.1f} s)")
    print(f"  label store: {store_bytes / pending:.1f} bytes per waiting prediction ({store_bytes / 2**20:.1f} MiB)")
    print(f"  snapshot of every shard (pickle): {min(times):.3f} s, {sum(sizes) / 2**20:.1f} MiB "
          f"(largest shard {max(sizes) / 2**20:.1f} MiB); aim <= 0.2 s for 1M waiting")


if __name__ == "__main__":
    main()
