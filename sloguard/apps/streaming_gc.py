"""The garbage collector's settings while a dataflow runs (`sloguard run`, `sloguard replay`).

Decoding a batch creates a few tracked containers per event (each event's `features`, `segment`
and `attributes` dicts, lists of columns) that all die with the batch. With CPython's default
generation-0 threshold of 700 allocations, a 10,000-message batch triggers dozens of young
collections, and every tenth of those escalates; each full collection walks every object alive,
including the tens of thousands the interpreter, numpy, Bytewax and the config made at start-up.
While the flow runs:

* `gc.freeze()` moves what exists before the flow starts (modules, the config, the built flow)
  out of every later collection: it lives for the whole run anyway;
* the generation-0 threshold is `GEN0_THRESHOLD` allocations, so a batch's garbage is collected
  once or twice rather than dozens of times (what is not in a cycle is freed by reference
  counting as before; this only delays finding cycles, by at most that many allocations).

With these settings `python benchmarks/stage_costs.py` went from 11.9 to 9.9 us a message (parse
4.4 -> 3.1; a threshold of 50,000 gave 10.3) and `python benchmarks/kafka_throughput.py` ran the
one-worker flow in 26-27 s instead of 29.6 s, two processes in 18-19 s instead of 22 s. The
previous settings come back when the run ends, so a test process that replays many times keeps
CPython's defaults between runs.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Tracked allocations between young collections while a flow runs (CPython's default: 700).
GEN0_THRESHOLD = 200_000
#: Young collections between middle ones, middle between full ones (CPython's: 10 and 10).
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 10


@contextmanager
def streaming_gc() -> Iterator[None]:
    """Collector settings for a running dataflow (see the module docstring), restored on exit."""
    before = gc.get_threshold()
    gc.collect()  # start-up garbage goes now, not frozen for the whole run
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
