"""Message ids as 64-bit hashes, and a sorted-array index over them.

The per-event work of dedupe and of the label join is keyed by the prediction `id`. Held as
Python strings in dicts, a waiting id costs ~100 bytes and a snapshot has to walk every one; as a
`uint64` in numpy arrays it costs 8 bytes and pickles as one memory copy.

`id_hashes` is FNV-1a over the id's UTF-32 code units plus its length, finished with the
splitmix64 mixer, computed for a whole batch at once with numpy (one vector operation per
character position, no per-event Python). It is stable across processes and machines (unlike
Python's `hash`), so an inference event and its label read by different workers reach the same
shard. Two distinct ids share a hash with probability ~2^-64; among n ids live at once the chance
of any collision is about n^2 / 2^65 (3e-8 for a million waiting predictions). A collision would
pair a label with the wrong prediction or drop a distinct id as a duplicate; tests check that 2M
realistic ids do not collide and that the low bits spread evenly over shards.

`HashIndex` maps hashes to int64 values in two sorted runs, a large main run and a small delta
that new entries are inserted into; a lookup is two `searchsorted` calls, an insert an O(delta)
`np.insert`, and the delta is merged into main (dropping entries its owner no longer wants) once it
holds 1/8 of main. Memory is 16 bytes per entry, amortised O(1) copies per entry over its life.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """A stable uint64 hash per id string (see the module docstring)."""
    n = len(ids)
    if not n:
        return np.empty(0, np.uint64)
    text = np.array(ids, dtype=str)
    width = text.dtype.itemsize // 4
    units = text.view(np.uint32).reshape(n, width) if width else np.zeros((n, 0), np.uint32)
    h = np.full(n, _FNV_OFFSET, np.uint64)
    lengths = np.fromiter(map(len, ids), np.uint64, n)
    uniform = bool((lengths == width).all())
    with np.errstate(over="ignore"):
        for j in range(width):
            step = (h ^ units[:, j]) * _FNV_PRIME
            # an id shorter than the batch's longest must hash as it would alone: skip its padding
            h = step if uniform else np.where(lengths > j, step, h)
        # numpy drops trailing NULs, so the true length keeps "a" and "a\0" apart
        h ^= lengths
        h *= _FNV_PRIME
        h ^= h >> _S30
        h *= _MIX1
        h ^= h >> _S27
        h *= _MIX2
        h ^= h >> _S31
    return h


def shard_of(hashes: np.ndarray, shards: int) -> np.ndarray:
    """The shard of each hash: its value modulo the shard count."""
    return (hashes % np.uint64(shards)).astype(np.int64)


Keep = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (keys, values) -> bool mask of entries to keep
_NO_KEYS = np.empty(0, np.uint64)
_NO_VALUES = np.empty(0, np.int64)


class HashIndex:
    """uint64 keys -> int64 values in a sorted main run and a small sorted delta (module docstring).

    A key inserted again maps to its newest value. `merge(keep)` folds the delta into main,
    keeping only entries `keep(keys, values)` accepts, so owners drop dead entries there.
    """

    __slots__ = ("dkeys", "dvals", "keys", "vals")

    def __init__(self) -> None:
        self.keys, self.vals = _NO_KEYS, _NO_VALUES
        self.dkeys, self.dvals = _NO_KEYS, _NO_VALUES

    def __len__(self) -> int:
        return len(self.keys) + len(self.dkeys)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.vals.nbytes + self.dkeys.nbytes + self.dvals.nbytes

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, -1 where absent (the delta holds the newer entries)."""
        out = np.full(len(keys), -1, np.int64)
        for run_keys, run_vals in ((self.dkeys, self.dvals), (self.keys, self.vals)):
            if not len(run_keys) or not len(keys):
                continue
            pos = np.searchsorted(run_keys, keys, side="right") - 1  # the newest of equal keys
            pos[pos < 0] = 0
            hit = (run_keys[pos] == keys) & (out < 0)
            out[hit] = run_vals[pos[hit]]
        return out

    def insert(self, keys: np.ndarray, values: np.ndarray, keep: Keep | None = None) -> None:
        """Add entries (a later entry for a key wins); merge into main when the delta is large."""
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        pos = np.searchsorted(self.dkeys, keys, side="right")
        self.dkeys = np.insert(self.dkeys, pos, keys)
        self.dvals = np.insert(self.dvals, pos, values)
        if len(self.dkeys) * 8 > max(len(self.keys), 4096):
            self.merge(keep)

    def merge(self, keep: Keep | None = None) -> None:
        """Fold the delta into main; keep the newest entry per key, and only values `keep` accepts."""
        pos = np.searchsorted(self.keys, self.dkeys, side="right")
        keys = np.insert(self.keys, pos, self.dkeys)
        vals = np.insert(self.vals, pos, self.dvals)
        last = np.ones(len(keys), bool)
        if len(keys) > 1:
            last[:-1] = keys[1:] != keys[:-1]  # equal keys sit oldest first: keep the last
        if keep is not None:
            last &= keep(keys, vals)
        self.keys, self.vals = keys[last], vals[last]
        self.dkeys, self.dvals = _NO_KEYS, _NO_VALUES
