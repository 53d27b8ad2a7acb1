"""Drawn columns to bytes: timestamps, latencies, feature dicts, and the corrupt messages a scenario injects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson

from sloguard.core.synth.contract import MAX_MESSAGE_BYTES, NAN_MARK
from sloguard.core.synth.definitions import Column


def _rfc3339(ts: np.ndarray) -> list[str]:
    """RFC 3339 UTC strings with milliseconds, e.g. 2026-01-01T00:00:00.123Z."""
    ms = np.round(ts * 1000.0).astype(np.int64).astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]


def ts_values(ts: np.ndarray, rfc: np.ndarray) -> list[Any]:
    """Epoch floats, with the `rfc`-flagged ones as RFC 3339 strings."""
    out: list[Any] = ts.tolist()
    pos = np.flatnonzero(rfc)
    if pos.size:
        for p, s in zip(pos.tolist(), _rfc3339(ts[pos]), strict=True):
            out[p] = s
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a chunk of acyclic dicts is built (it would rescan them)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def lognormal(rng: np.random.Generator, params: tuple[float, float], n: int) -> np.ndarray:
    return rng.lognormal(np.log(params[0]), params[1], n)


def feature_dicts(cols: list[Column], idx: np.ndarray, missing: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Feature objects for rows `idx`; `missing` (0 present, 1 null, 2 absent) per value."""
    names = [c.name for c in cols]
    values = [c.values(idx) for c in cols]
    m = None if missing is None else missing[idx]
    if m is not None:
        for j, col in enumerate(values):
            for p in np.flatnonzero(m[:, j] == 1).tolist():
                col[p] = None
    out = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
    if m is not None:
        rows, js = np.nonzero(m == 2)
        for p, j in zip(rows.tolist(), js.tolist(), strict=True):
            del out[p][names[j]]
    return out


def corrupt(kind: str, d: dict[str, Any], variant: int, ts: float) -> bytes:
    """One bad message of `kind` made from the healthy event `d` at `ts` (`d` is not mutated)."""
    dumps = orjson.dumps
    if kind == "duplicate_id":  # a redelivered copy of a real event, byte for byte
        return dumps(d)
    if kind == "malformed_json":
        raw = dumps(d)
        v = variant % 4
        if v == 0:  # truncated mid-message; the `"model":"..."` prefix survives
            cut = len(raw) // 3 + variant % max(1, len(raw) - 1 - len(raw) // 3)
            return raw[:cut]
        if v == 1:  # an unquoted key
            return raw.replace(b'"status":', b"status:", 1)
        if v == 2:  # trailing comma
            return raw[:-1] + b",}"
        return raw[:-1] + b',"note":"\xc3\x28"}'  # invalid UTF-8
    d = dict(d)
    if kind == "nan_token":
        target = ("score", "latency_ms", "features")[variant % 3]
        if target == "features":
            feats = dict(d["features"])
            feats[next(iter(feats), "x")] = NAN_MARK
            d["features"] = feats
        else:
            d[target] = NAN_MARK
        return dumps(d).replace(b'"' + NAN_MARK.encode() + b'"', b"NaN")
    if kind == "wrong_types":
        field_name, value = (
            ("latency_ms", "fast"),
            ("score", "high"),
            ("status", 500),
            ("segment", "eu"),
            ("features", [1, 2, 3]),
            ("ts", True),
            ("id", 12345),
        )[variant % 7]
        d[field_name] = value
    elif kind == "missing_fields":
        del d[("id", "ts", "status", "latency_ms", "version")[variant % 5]]
    elif kind == "absurd_timestamp":
        v = variant % 3
        if v == 0:  # year 2150, epoch seconds
            d["ts"] = 5_680_281_600.0 + ts % 86_400
        elif v == 1:
            d["ts"] = "2150-01-01T00:00:00.000Z"
        else:  # epoch milliseconds written as seconds
            d["ts"] = round(ts * 1000.0)
    elif kind == "oversized":
        size = len(dumps(d))
        d["debug"] = "x" * (MAX_MESSAGE_BYTES - size + 64 + variant % 8192)
    return dumps(d)
