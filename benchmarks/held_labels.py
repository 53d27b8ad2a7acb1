"""CPU time of the label join when labels are read before their predictions (Kafka reads the labels
and inference topics at once, so a label often waits for its prediction in the held store).

    python benchmarks/held_labels.py [--labels 200000] [--batch 2000]
    PYTHONPATH=/path/to/older/checkout python benchmarks/held_labels.py   # the same on older code

Each batch's labels arrive one step before their predictions, then event time advances; prints
the pairs joined and the process CPU seconds.
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
    args = parser.parse_args()
    n, b = args.labels, args.batch
    store = LabelStore(delay_s=7 * 86_400, cap=1_000_000, hold_s=3600)
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


if __name__ == "__main__":
    main()
