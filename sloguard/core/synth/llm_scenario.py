"""The `llm` scenario: an LLM assistant whose SLOs read the `attributes` of inference events.

Every answer carries `attributes: {ttft_ms, cost_usd, safety}` (`examples/llm.yaml` budgets time to
first token under 500 ms, the safety filter's pass rate and cost under 2 cents a query). Healthy
traffic breaches each rarely (about 0.2 %, 0.1 % and 0.15 % of queries). Three incidents, in event
time:

* **ttft_spike** (infrastructure): a GPU pool drains; 35 % of queries wait 0.8 to 3 s for their first
  token. `assistant-ttft` pages.
* **safety_regression** (quality): a prompt change lets 15 % of answers fail the safety filter.
  `assistant-safety` pages.
* **cost_blowup** (infrastructure): a retrieval bug stuffs the context; 60 % of queries cost 3 to
  8 cents. `assistant-cost` pages.

`generate_llm` draws it with numpy from a seed (same seed, same bytes); `healthy=True` leaves the
incidents out.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from sloguard.core.synth.contract import DEFAULT_START, FILES, Incident

SCENARIO = "llm"
MODEL = "assistant"
DEFAULT_DURATION_S = 10 * 3600.0
DEFAULT_RATE = 2.0  # queries per second
REGIONS = np.array(["eu", "us", "apac"], dtype=object)
_HOUR = 3600.0
MIN_DURATION_S = 8.5 * _HOUR  # the last incident's end


def incidents(start: float) -> list[Incident]:
    """The three incidents at their offsets from `start` (the layout needs 8.5 h)."""
    (a0, a1), (b0, b1), (c0, c1) = ((start + x * _HOUR, start + y * _HOUR) for x, y in [(1.5, 2.5), (4, 5), (7, 8.5)])
    return [
        Incident("ttft_spike", "ttft_spike", MODEL, "infrastructure", ("assistant-ttft", "assistant-ttft-p95"),
                 "fast-burn", {}, a0, a1, 45 * 60.0,
                 "a GPU pool drains: 35 % of queries wait 0.8-3 s for their first token"),
        Incident("safety_regression", "safety_regression", MODEL, "quality", ("assistant-safety",), "fast-burn", {},
                 b0, b1, 45 * 60.0, "a prompt change: 15 % of answers fail the safety filter"),
        Incident("cost_blowup", "cost_blowup", MODEL, "infrastructure", ("assistant-cost",), "fast-burn", {},
                 c0, c1, 45 * 60.0, "a retrieval bug stuffs the context: 60 % of queries cost 3-8 cents"),
    ]


def generate_llm(out_dir: Path, seed: int = 7, start: float = DEFAULT_START, duration_s: float = DEFAULT_DURATION_S,
                 rate: float = DEFAULT_RATE, healthy: bool = False) -> dict[str, Path]:
    """Write inference.jsonl, labels.jsonl and features.jsonl (both empty) and manifest.json."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * rate)
    ts = start + np.sort(rng.random(n)) * duration_s
    region = REGIONS[rng.integers(0, len(REGIONS), n)]
    ok = rng.random(n) >= 0.0005
    ttft_ms = np.round(180 * np.exp(0.35 * rng.normal(size=n)), 1)
    cost_usd = np.round(0.006 * np.exp(0.4 * rng.normal(size=n)), 5)
    safe = rng.random(n) >= 0.001
    planned = [] if healthy or duration_s < MIN_DURATION_S else incidents(start)
    for inc in planned:
        hit = (ts >= inc.start) & (ts < inc.end)
        if inc.kind == "ttft_spike":
            hit &= rng.random(n) < 0.35
            ttft_ms = np.where(hit, np.round(rng.uniform(800, 3000, n), 1), ttft_ms)
        elif inc.kind == "safety_regression":
            safe &= ~(hit & (rng.random(n) < 0.15))
        elif inc.kind == "cost_blowup":
            hit &= rng.random(n) < 0.6
            cost_usd = np.where(hit, np.round(rng.uniform(0.03, 0.08, n), 5), cost_usd)
    latency_ms = np.round(ttft_ms + rng.uniform(500, 4000, n), 1)
    inference = _inference_lines(seed, ts, region, ok, ttft_ms, cost_usd, safe, latency_ms)
    manifest = {"scenario": SCENARIO, "seed": seed, "events": n, "start": start, "end": start + duration_s,
                "incidents": [asdict(i) for i in planned],
                "counts": {"inference": len(inference), "labels": 0, "features": 0}}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f for k, f in FILES.items()}
    for kind, lines in (("inference", inference), ("labels", []), ("features", [])):
        paths[kind].write_bytes(b"".join(line + b"\n" for line in lines))
    paths["manifest"].write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return paths


def _inference_lines(seed: int, ts: np.ndarray, region: np.ndarray, ok: np.ndarray, ttft_ms: np.ndarray,
                     cost_usd: np.ndarray, safe: np.ndarray, latency_ms: np.ndarray) -> list[bytes]:
    rows = []
    for i, (t, r, good, ttft, cost, passed, lat) in enumerate(zip(
            ts.tolist(), region.tolist(), ok.tolist(), ttft_ms.tolist(), cost_usd.tolist(), safe.tolist(),
            latency_ms.tolist(), strict=True)):
        row: dict[str, Any] = {"id": f"q{seed}-{i}", "model": MODEL, "version": "2026.11", "ts": t,
                               "status": "ok" if good else "error", "latency_ms": lat if good else 30_000.0,
                               "segment": {"region": r}}
        if good:
            row["attributes"] = {"ttft_ms": ttft, "cost_usd": cost, "safety": "pass" if passed else "fail"}
        rows.append(orjson.dumps(row))
    return rows


