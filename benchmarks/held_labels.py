"""CPU time of the label join when labels are read before their predictions (Kafka reads the labels
and inference topics at once, so a label often waits for its prediction in the held store).

    python benchmarks/held_labels.py [--labels 200000] [--batch 2000] [--unknown 20000] [--cap 1000000]
                                      [--unlabelled 0]
    PYTHONPATH=/path/to/older/checkout python benchmarks/held_labels.py   # the same on older code

Each batch's labels arrive one step before their predictions, then event time advances; prints
the pairs joined and the process CPU seconds. Then `--unknown` labels for ids never predicted are
held and released together, as a burst of late labels after an outage is: the CPU per released label
(each is dead-lettered with its reason); with `--unlabelled` predictions beyond `--cap` first, the store
evicts and remembers the evicted ids, as one at its cap does in a live run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sloguard.core.evaluate.idhash import id_hashes
from sloguard.core.evaluate.labels import LabelRefs, LabelStore
from sloguard.core.evaluate.pieces import RaggedBytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--cap", type=int, default=1_000_000,
                        help="predictions waiting at most (a small cap evicts, as a store at its cap does live)")
    parser.add_argument("--unlabelled", type=int, default=0,
                        help="predictions no label comes for, added before the burst (beyond --cap: evicted)")
    parser.add_argument("--unknown", type=int, default=20_000, help="labels of never-predicted ids released at once")
    args = parser.parse_args()
    n, b = args.labels, args.batch
    store = LabelStore(delay_s=7 * 86_400, cap=args.cap, hold_s=3600)
    ids = [f"fr-{i:012x}" for i in range(n)]
    hashes, ts = id_hashes(ids), np.arange(n, dtype=float) / 20
    start, joined = time.process_time(), 0
    for s in range(0, n, b):
        part = slice(s, s + b)
        k = len(ids[part])
        raw = [f'{{"id":"{i}","model":"fraud","label":1,"ts":1}}'.encode() for i in ids[part]]
        refs = LabelRefs(ts[part] + 5, RaggedBytes.of(raw), "ml.labels", 0, np.arange(s, s + k))
        store.add_labels(hashes[part], ts[part] + 5, {"positive:1": np.ones(k, bool), "number": np.ones(k)}, refs)
        pairs, _ = store.add_predictions(hashes[part], {"ts": ts[part], "p": np.zeros(k, np.int8)})
        joined += 0 if pairs is None else len(pairs)
        store.expire(float(ts[s]))
    print(f"{n:,} labels held before their predictions: {joined:,} joined, "
          f"{time.process_time() - start:.2f} s CPU")
    for s in range(0, args.unlabelled, b):  # predictions no label comes for: over the cap, they are evicted
        extra = [f"none-{i:09x}" for i in range(s, min(s + b, args.unlabelled))]
        store.add_predictions(id_hashes(extra), {"ts": np.full(len(extra), float(ts[-1])),
                                                 "p": np.zeros(len(extra), np.int8)})
    u = args.unknown
    if u:
        lost = [f"lost-{i:09x}" for i in range(u)]
        raw = [f'{{"id":"{i}","model":"fraud","label":1,"ts":1}}'.encode() for i in lost]
        at = float(ts[-1]) + np.zeros(u)
        store.add_labels(id_hashes(lost), at, {"positive:1": np.ones(u, bool), "number": np.ones(u)},
                         LabelRefs(at, RaggedBytes.of(raw), "ml.labels", 0, np.arange(u)))
        start = time.process_time()
        released = store.expire(float(ts[-1]) + 2 * 3600)
        spent = time.process_time() - start
        print(f"{u:,} held labels of unknown ids released at once: {len(released):,} dead letters, "
              f"{spent:.3f} s CPU, {1e6 * spent / max(1, len(released)):.1f} µs a label")


if __name__ == "__main__":
    main()
