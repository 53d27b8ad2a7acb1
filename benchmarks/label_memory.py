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
    for key in evaluator.state["keys"].values():
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
    args = ap.parse_args()

    import subprocess

    from connectors.files import JsonlReplaySource
    from flows.slo_flow import parse_spec
    from sloguard.batch import parse_batch
    from sloguard.config import parse_config
    from sloguard.evaluator import ModelEvaluator, split_by_model
    from sloguard.live_demo import example_config

    data = ROOT / "out" / "bench" / f"labels-{args.scenario}-{args.events}-{args.hours:g}h"
    if not (data / "inference.jsonl").exists():  # in a subprocess: the peak RSS below is the replay's own
        print(f"generating {args.events:,} {args.scenario} events over {args.hours:g} h into {data} ...")
        subprocess.run(
            [sys.executable, "-m", "sloguard.cli", "generate", "--scenario", args.scenario, "--events",
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
        join = ev.state["labels"]
        r = join.report()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{seen:>10,} {r['pending']:>9,} {r['joined']:>9,} {r['expired']:>8,} "
            f"{join.memory_bytes() / 2**20:>9.1f} {window_bytes(ev) / 2**20:>11.1f} {rss:>8.0f}",
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
        f"{time.perf_counter() - start:.0f} s, {len(ev.state['keys'])} keys, label_delay {m.label_delay_s / 3600:g} h, "
        f"cap {m.max_pending_labels:,}; peak RSS of a plain parse of the same files is not subtracted"
    )


if __name__ == "__main__":
    main()
