"""The producer of benchmarks/live_latency.py: paced healthy fraud traffic stamped with the wall clock, and an
outage, produced to Kafka from its own process (spawned, so it shares no GIL with the measurement).

Inference events come from a healthy `sloguard generate --scenario fraud` pool (the distributions the example
baseline was made from) with unique ids and `ts = time.time()`; labels follow ~90 % of the ok predictions
2 s to 5 min later (lognormal, median 30 s), stamped when produced; ml.features events at a ratio per
inference event. A token bucket refilled every 10 ms paces them.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LABEL_DELAY_S = (30.0, 1.0, 2.0, 300.0)  # lognormal median, sigma, min, max
POOL_EVENTS = 32_768  # distinct healthy events cycled through (about 50 MB of dicts)
TICK_S = 0.01  # token-bucket refill period
BURST_S = 0.1  # at most this much traffic at once: a stalled loop shows as a lower achieved rate
LABEL_BIN_S = 0.1  # labels are released in bins of this width


def vm_hwm_mib(pid: int | str) -> float | None:
    """Peak RSS of a process (VmHWM in /proc/<pid>/status), or None once it is gone."""
    return status_mib(pid, "VmHWM:")


def status_mib(pid: int | str, field: str) -> float | None:
    """A memory field of /proc/<pid>/status in MiB, or None."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return None


def _pool(seed: int) -> dict[str, Any]:
    """Healthy fraud events from the scenario generator, as dicts to re-stamp, with their lags and labels."""
    import numpy as np
    import orjson

    from sloguard.core.synth.scenarios import plan

    # a long timeline so almost no label falls past its end: ~90 % of predictions get one, as in the scenario
    p = plan("fraud", events=POOL_EVENTS, seed=seed, duration_s=1000 * 3600.0, healthy=True)
    inference = [orjson.loads(line) for _, lines in p.chunks("inference") for line in lines]
    features = [orjson.loads(line) for _, lines in p.chunks("features") for line in lines]
    label = np.full(POOL_EVENTS, -1, np.int64)  # -1: this prediction never gets a label
    label[p.lab_idx] = p.y[p.lab_idx]
    return {
        "inference": inference,
        "serving_lag_s": np.round(p.t - p.feature_ts, 3).tolist(),  # ts - feature_ts of each event
        "label": label,
        "features": features,
        "pipeline_lag_s": np.round(p.f_ts - p.f_event_ts, 3).tolist(),  # ts - event_ts of each feature event
    }


def produce(spec: dict[str, Any], progress: Any, stop: Any) -> None:
    """Produce until `stop` is set; put progress on the `progress` queue: {"kind": "start"}, {"kind": "first_error"}
    (the wall time of the first error event), {"kind": "progress"} counts every second, {"kind": "done"} totals."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import orjson
    from confluent_kafka import Producer

    pool = _pool(spec["seed"])
    inf, serving_lag, features, pipeline_lag = (pool[k] for k in ("inference", "serving_lag_s", "features",
                                                                  "pipeline_lag_s"))
    label_of = pool["label"]
    label_list = label_of.tolist()
    n_pool, n_feat = len(inf), len(features)
    rng = np.random.default_rng(spec["seed"])
    failed: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer({"bootstrap.servers": spec["bootstrap"], "linger.ms": 5, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 2_000_000, "delivery.report.only.error": True,
                         "on_delivery": report})
    t_inf, t_lab, t_feat = (spec["topics"][k] for k in ("inference", "labels", "features"))
    dumps, produce, poll = orjson.dumps, producer.produce, producer.poll

    def send(topic: str, value: bytes) -> None:
        while True:
            try:
                produce(topic, value)
                return
            except BufferError:  # local queue full: let deliveries drain
                poll(0.05)

    rate, f_rate = spec["rate"], spec["rate"] * spec["features_ratio"]
    mdn, sigma, lo, hi = LABEL_DELAY_S
    start = time.time()
    outage_a = start + spec["outage_at"]
    outage_b = outage_a + spec["outage_seconds"]
    progress.put({"kind": "start", "t": start})
    n = n_lab = n_feat_sent = n_err = 0
    tokens = f_tokens = 0.0
    bins: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # due bin -> (event numbers, pool rows)
    new_ids: list[np.ndarray] = []  # labelled events produced since the last binning
    released = int(start / LABEL_BIN_S)
    last = next_tick = last_bin = last_report = start
    first_error: float | None = None
    while not stop.is_set():
        now = time.time()
        tokens = min(tokens + rate * (now - last), rate * BURST_S)
        f_tokens = min(f_tokens + f_rate * (now - last), f_rate * BURST_S + 1)
        last = now
        ts = round(now, 3)
        k = int(tokens)
        tokens -= k
        outage = outage_a <= now < outage_b
        n0 = n
        if outage:
            if first_error is None and k:
                first_error = ts
                progress.put({"kind": "first_error", "t": first_error})
            for _ in range(k):
                j = n % n_pool
                d = {**inf[j], "id": f"lv-{n:x}", "ts": ts, "feature_ts": round(ts - serving_lag[j], 3),
                     "status": "error", "prediction": None, "score": None, "latency_ms": 2.0}
                send(t_inf, dumps(d))
                n += 1
            n_err += k
        else:
            for _ in range(k):
                j = n % n_pool
                d = inf[j]
                d["id"] = f"lv-{n:x}"
                d["ts"] = ts
                d["feature_ts"] = round(ts - serving_lag[j], 3)
                send(t_inf, dumps(d))
                n += 1
            if k:  # failed requests get no label, as in the scenario
                ids = np.arange(n0, n)
                keep = label_of[ids % n_pool] >= 0
                new_ids.append(ids[keep])
        kf = int(f_tokens)
        f_tokens -= kf
        for _ in range(kf):
            j = n_feat_sent % n_feat
            d = features[j]
            d["ts"] = ts
            d["event_ts"] = round(ts - pipeline_lag[j], 3)
            send(t_feat, dumps(d))
            n_feat_sent += 1
        if now - last_bin >= 0.25 and new_ids:  # bin the new labels by due time (min delay 2 s > 0.25 s)
            ids = np.concatenate(new_ids)
            new_ids = []
            last_bin = now
            due = np.clip(rng.lognormal(np.log(mdn), sigma, ids.size), lo, hi)
            b = ((now + due) / LABEL_BIN_S).astype(np.int64)
            order = np.argsort(b, kind="stable")
            b, ids = b[order], ids[order]
            keys, first = np.unique(b, return_index=True)
            for key, part in zip(keys.tolist(), np.split(ids, first[1:]), strict=True):
                bins.setdefault(key, []).append((part, part % n_pool))
        due_bin = int(now / LABEL_BIN_S)
        while released < due_bin:
            released += 1
            for ids_part, rows in bins.pop(released, ()):
                for i, j in zip(ids_part.tolist(), rows.tolist(), strict=True):
                    send(t_lab, dumps({"id": f"lv-{i:x}", "model": "fraud", "label": label_list[j], "ts": ts}))
                n_lab += ids_part.size
        poll(0)
        if now - last_report >= 1.0:
            last_report = now
            progress.put({"kind": "progress", "t": now, "inference": n, "labels": n_lab, "features": n_feat_sent,
                          "errors": n_err, "pending_labels": sum(p.size for v in bins.values() for p, _ in v)})
        next_tick += TICK_S
        pause = next_tick - time.time()
        if pause > 0:
            time.sleep(pause)
        elif pause < -0.1:  # far behind: do not try to make it up in one burst
            next_tick = time.time()
    end = time.time()
    left = producer.flush(30)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    progress.put({"kind": "done", "t": end, "seconds": end - start, "inference": n, "labels": n_lab,
                  "features": n_feat_sent, "errors": n_err, "first_error": first_error, "unflushed": left,
                  "delivery_errors": len(failed), "delivery_error_sample": failed[:3],
                  "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": vm_hwm_mib("self")})
