"""Gate latency on loopback: how long Argo Rollouts and Flagger wait for a decision.

Builds a controller state of ``--models`` models x 3 versions x 7 SLOs (whole-model and
variant budgets, a few firing pages), serves it with the real `GateServer`, and times ``-n``
requests per endpoint over one keep-alive connection (the way Go's http.Client calls it), then
the same with ``--threads`` concurrent clients. Prints p50 / p99 / max in milliseconds.

    .venv/bin/python benchmarks/gate_latency.py -n 5000
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sloguard.connectors.audit import AuditLog
from sloguard.connectors.gate import Gate, GateServer, SharedState
from sloguard.core.rollout.policy import RolloutState
from sloguard.core.rollout.spec import parse_rollout
from sloguard.core.spec.config import parse_config

TOKEN = "bench-token"
SLIS = {
    "availability": ("availability", 0.999, "infrastructure"),
    "latency": ({"latency": {"threshold_ms": 100}}, 0.99, "infrastructure"),
    "freshness": ({"freshness": {"max_age": "1h"}}, 0.99, "data"),
    "schema": ("schema_violations", 0.999, "data"),
    "fresh-15m": ({"freshness": {"max_age": "15m"}}, 0.95, "data"),
    "latency-250": ({"latency": {"threshold_ms": 250}}, 0.999, "infrastructure"),
    "availability-7d": ("availability", 0.99, "infrastructure"),
}


def build_state(models: int, now: float) -> SharedState:
    names = [f"model{i}" for i in range(models)]
    config = parse_config(
        {
            "models": {m: {"segments": ["region", "variant"]} for m in names},
            "slos": [
                {"name": f"{m}-{k}", "model": m, "dimension": d, "sli": sli, "objective": o, "window": "30d"}
                for m in names
                for k, (sli, o, d) in SLIS.items()
            ],
        }
    )
    state = RolloutState(parse_rollout({}, config))
    for i, m in enumerate(names):
        for v in ("v1", "v2", "v3"):
            for k, (_sli, o, d) in SLIS.items():
                for seg, total, bad in (
                    ({}, 100_000, 10),
                    ({"variant": "canary"}, 5000, 1),
                    ({"variant": "stable"}, 95_000, 9),
                ):
                    burn = bad / total / (1 - o)
                    state.apply({
                        "type": "budget", "slo": f"{m}-{k}", "dimension": d, "model": m, "version": v,
                        "segment": seg, "ts": now, "sli": 1 - bad / total, "objective": o, "target": o,
                        "window": "30d", "good": total - bad, "total": total, "budget_remaining": 0.8,
                        "burn_rates": {"5m": burn, "1h": burn, "6h": burn},
                        "events": {"5m": total, "1h": total, "6h": total},
                    })  # fmt: skip
        if i % 3 == 0:
            state.apply({
                "type": "alert", "id": f"a{i}", "state": "firing", "severity": "page", "rule": "fast-burn",
                "slo": f"{m}-availability", "dimension": "fairness", "model": m, "version": "v3",
                "segment": {"merchant_type": "online"}, "started_at": now, "ts": now,
            })  # fmt: skip
    return SharedState(state)


def timed(port: int, requests: list[tuple[str, str, bytes | None]]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    out = []
    for method, path, body in requests:
        t = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status in (200, 403), resp.status
    conn.close()
    return out


def report(label: str, ms: list[float], wall: float) -> None:
    ms = sorted(ms)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    print(
        f"{label:38} n={len(ms):6d}  p50 {p(0.5):6.3f} ms  p99 {p(0.99):6.3f} ms  max {ms[-1]:7.3f} ms  "
        f"mean {statistics.fmean(ms):6.3f} ms  {len(ms) / wall:8.0f} req/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=5000, help="requests per measurement")
    ap.add_argument("--models", type=int, default=12)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--audit", type=Path, default=None, help="audit log path (default: none)")
    args = ap.parse_args()

    now = time.time()
    shared = build_state(args.models, now)
    shared.ready.set()
    t = time.perf_counter()
    for _ in range(1000):
        shared.decide("model1", "v2")
    print(f"decide() alone: {(time.perf_counter() - t) * 1000 / 1000:.3f} ms per call (7 SLOs, 7 canary tests)")

    audit = AuditLog(args.audit)
    with GateServer(Gate(shared, [TOKEN], audit), port=0) as server:
        argo = [("GET", f"/v1/gate/model{i % args.models}/v2", None) for i in range(args.n)]
        hook = {"name": "x", "namespace": "ml", "phase": "Progressing"}
        flag = [
            (
                "POST",
                "/v1/flagger/gate",
                orjson.dumps({**hook, "metadata": {"model": f"model{i % args.models}", "version": "v3"}}),
            )
            for i in range(args.n)
        ]
        timed(server.port, argo[:200])  # warm up
        for label, reqs in (("argo GET /v1/gate (keep-alive)", argo), ("flagger POST /v1/flagger/gate", flag)):
            t = time.perf_counter()
            ms = timed(server.port, reqs)
            report(label, ms, time.perf_counter() - t)
        results: list[list[float]] = [[] for _ in range(args.threads)]
        per = args.n // args.threads

        def worker(k: int) -> None:
            results[k] = timed(server.port, argo[k * per : (k + 1) * per])

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        report(f"argo GET, {args.threads} concurrent clients", [x for r in results for x in r], time.perf_counter() - t)
    audit.close()


if __name__ == "__main__":
    main()
