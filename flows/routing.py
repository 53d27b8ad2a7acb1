"""Keys for the shards that spread evenly over Bytewax workers.

Bytewax sends a keyed item to worker `hash(key) % workers`, where the hash is Rust's default
hasher (SipHash-1-3 with zero keys) over the key's bytes and a 0xff terminator (bytewax's
`stateful_batch` partitions by `BuildHasherDefault<DefaultHasher>`). With only 8 shards per model,
keys like `fraud#0..7` land 3 on one worker and 5 on the other; so each shard's key carries the
smallest suffix that sends shard `s` to worker `s % 8`, and 8 shards fill 1, 2, 4 or 8 workers
evenly. A test runs a real 2- and 4-worker flow to check this hash is still Bytewax's; if it were
not, keys would only be spread at random, as without the suffix.
"""

from __future__ import annotations

from functools import cache

_M = (1 << 64) - 1
SPREAD = 8  # shard s goes to worker s % SPREAD: even for any worker count dividing it


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _M
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _M
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _M
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _M
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with zero keys (Rust's `DefaultHasher`), as a 64-bit integer."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573
    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker Bytewax sends items keyed `key` to."""
    return siphash13(key.encode() + b"\xff") % workers


def key_on(base: str, worker: int, workers: int) -> str:
    """`base`, or `base.salt` with the smallest salt, that Bytewax sends to `worker` of `workers`."""
    for salt in range(10_000):
        key = base if salt == 0 else f"{base}.{salt}"
        if worker_of(key, workers) == worker:
            return key
    return base


@cache
def shard_key(model: str, shard: int) -> str:
    """`model#shard`, with the smallest suffix that sends it to worker `shard % SPREAD`."""
    return key_on(f"{model}#{shard}", shard % SPREAD, SPREAD)
