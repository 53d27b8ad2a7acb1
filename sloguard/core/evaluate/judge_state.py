"""What the judge keeps per model, between batches and in recovery snapshots.

One `KeyState` per segment key (windows, slice rings, newest versions) and the `JudgeState` around them.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from sloguard.core.evaluate.aggregate import group_sum
from sloguard.core.evaluate.alerts import AlertBook
from sloguard.core.evaluate.frontier import SourceFrontier
from sloguard.core.evaluate.gather import WHOLE_MODEL_RANK
from sloguard.core.evaluate.label_coverage import LabelWaits
from sloguard.core.evaluate.summary import Rows
from sloguard.core.messages.outputs import Budget, upgraded
from sloguard.core.stats.sketch import LogHistogram
from sloguard.core.stats.windows import Windows

if TYPE_CHECKING:
    from sloguard.core.evaluate.plan import ModelPlan

MAX_VALUES_PER_ATTRIBUTE = 200


OTHER = "(other)"


def segment_key(segment: dict[str, str]) -> str:
    """`""` for the whole model, `attr=value` for a segment key."""
    return ",".join(f"{k}={v}" for k, v in segment.items())


class KeyState:
    """Windows, open time slices and per-slice counts (slices.py) of one segment key."""

    __slots__ = ("cache", "changed", "counted", "details", "dirty", "index", "key", "labelled", "last_ts", "live",
                 "newest", "segment", "sketches", "value_start", "values", "version", "windows")

    def __init__(self, index: int, segment: dict[str, str], windows: Windows,
                 rings: tuple[Windows | None, Windows | None]) -> None:
        self.index = index
        self.key = segment_key(segment)
        self.segment = segment
        self.windows = windows
        self.labelled, self.live = rings
        self.sketches: dict[tuple[int, float], LogHistogram] = {}
        self.values: dict[int, float | None] = {}  # SLO index -> the newest judged slice's value
        self.version: str | None = None
        self.last_ts = -math.inf
        self.newest: dict[float, tuple[float, str | None]] = {}  # interval start -> newest (ts, version) in it
        self.dirty: set[float] = set()  # labelled ring buckets that got labels since the last re-judge
        self.details: dict[int, Any] = {}  # SLO index -> what explains the newest judged slice
        self.value_start: dict[int, float] = {}  # SLO index -> start of the slice `values` holds
        self.counted: dict[int, tuple[float, float]] = {}  # SLO index -> (good, judged) slices judged this tick
        self.changed = True  # anything added or judged since the last tick
        # last tick's sums, budget events and which sums each SLO read (Judge._evaluate)
        self.cache: tuple[np.ndarray, list[Budget], tuple[int, ...]] | None = None

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """Recovery state written while budget events were dicts: its cached events become Structs."""
        for name, value in state[1].items():
            setattr(self, name, value)
        if self.cache is not None and len(self.cache) == 3:
            self.cache = (self.cache[0], [upgraded("budget", e) for e in self.cache[1]], self.cache[2])

    def see(self, bucket: float, ts: float, version: str | None) -> None:
        """Remember the newest event of an interval; it becomes `last_ts`/`version` at its tick."""
        old = self.newest.get(bucket)
        if old is None or (ts, version or "") > (old[0], old[1] or ""):
            self.newest[bucket] = (ts, version)

    def settle(self, t: float) -> None:
        """Fold the newest events of intervals before tick `t` in: versions as of the tick, not of
        whatever later data happened to arrive first."""
        for bucket in sorted(b for b in self.newest if b < t):
            ts, version = self.newest.pop(bucket)
            if ts >= self.last_ts:
                self.last_ts = ts
                self.changed = True
                if version is not None:
                    self.version = version


@dataclass
class JudgeState:
    """Everything the judge keeps between batches (pickled for recovery)."""

    keys: dict[str, KeyState] = field(default_factory=dict)
    ordered: list[KeyState] = field(default_factory=list)  # by KeyState.index (creation order)
    reported: list[tuple[tuple[int, str], KeyState]] = field(default_factory=list)  # keys in report order
    values: dict[str, dict[str, KeyState]] = field(default_factory=dict)  # attr -> value -> key
    groups: dict[str, list[KeyState]] = field(default_factory=dict)  # attr -> its keys, in creation order
    frontiers: dict[int, SourceFrontier] = field(default_factory=dict)  # per shard
    marks: dict[int, float] = field(default_factory=dict)  # per shard: event time its sources vouched for
    shard_labels: dict[int, dict[str, Any]] = field(default_factory=dict)  # per shard: label store report
    book: AlertBook = field(default_factory=AlertBook)
    counters: dict[str, int] = field(default_factory=lambda: {"duplicates": 0, "late_slice_values": 0})
    watermark: float = -math.inf
    next_tick: float | None = None
    first_ts: float = math.inf  # earliest inference event: silence counts only after it
    pending_windows: list[Rows] = field(default_factory=list)  # keys are KeyState.index
    pending_live: list[Rows] = field(default_factory=list)
    pending_labelled: dict[float, list[Rows]] = field(default_factory=dict)  # by the tick they count from
    label_waits: LabelWaits = field(default_factory=LabelWaits)  # labelled slices waiting for their labels

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Recovery state pickled before a field existed gets that field's default."""
        for f in fields(self):
            if f.name not in state:
                state[f.name] = f.default_factory() if f.default_factory is not MISSING else f.default
        self.__dict__.update(state)

    # ---- keys -----------------------------------------------------------------------------------

    def new_key(self, plan: ModelPlan, segment: dict[str, str]) -> KeyState:
        key = KeyState(len(self.ordered), segment, Windows(plan.layout.window_layout, plan.layout.ncols),
                       plan.slices.new_rings())
        self.keys[key.key] = key
        self.ordered.append(key)
        # keys are judged and reported whole model first, then by attribute and value: an order that
        # does not depend on which shard or batch showed a key first
        rank = WHOLE_MODEL_RANK if not segment else next((plan.attrs.index(a), v) for a, v in segment.items())
        bisect.insort(self.reported, (rank, key), key=lambda item: item[0])
        return key

    def key_of(self, plan: ModelPlan, attr: str, value: str) -> KeyState:
        """The key of one segment value, created on first sight; past the cap, the attribute's "(other)"."""
        if not attr:
            return self.ordered[0]
        values = self.values[attr]
        known = values.get(value)
        if known is not None:
            return known
        groups = self.groups[attr]
        if len(groups) >= MAX_VALUES_PER_ATTRIBUTE:
            other = values.get(OTHER)
            if other is None:
                other = values[OTHER] = self.new_key(plan, {attr: OTHER})
                groups.append(other)
            if len(values) < 4 * MAX_VALUES_PER_ATTRIBUTE:  # remember a few overflow values, not all
                values[value] = other
            return other
        key = values[value] = self.new_key(plan, {attr: value})
        groups.append(key)
        return key


def add_grouped(pending: list[Rows], ordered: list[KeyState], ring: str) -> list[tuple[KeyState, float]]:
    """Sum pending rows per (key, bucket) and add each sum to that key's windows or ring."""
    rows = Rows.concat(pending)
    if rows is None:
        return []
    starts, inverse = np.unique(rows.start, return_inverse=True)
    gids, sums = group_sum(rows.key * len(starts) + inverse, rows.rows)
    added = []
    for gid, vec in zip(gids.tolist(), sums, strict=True):
        k, s = divmod(gid, len(starts))
        key = ordered[k]
        start = float(starts[s])
        target = getattr(key, ring)
        if ring != "windows" and start // target.layout.base_s >= target.keep_from[0]:
            added.append((key, start))
        target.add(start, vec)
        key.changed = True
    return added
