"""Fault inputs through the real dataflow (`sloguard replay`): nothing crashes, nothing goes silent,
nothing is lost (issue 15). The Kafka end-to-end versions are in test_faults_kafka.py."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from factories import T0, event, make_config

from sloguard.cli import replay
from sloguard.timeutil import parse_rfc3339

FAR_FUTURE = 3_786_912_000.0  # 2090-01-01
SLOS = [
    {"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.99},
    {"name": "schema", "dimension": "data", "sli": "schema_violations", "objective": 0.99},
    {"name": "fresh", "dimension": "data", "sli": {"freshness": {"max_age": "5m", "source": "features"}},
     "objective": 0.99},
]


def write(path: Path, messages: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def feature_events(start: float, end: float, every_s: float = 2.0) -> list[dict]:
    n = int((end - start) / every_s)
    return [{"model": "m", "entity": f"u{i}", "features": {"a": 1.0}, "event_ts": start + i * every_s - 30,
             "ts": start + i * every_s} for i in range(n)]


def run_replay(tmp_path: Path, name: str, inference: list[dict], features: list[dict]) -> dict[str, list[dict]]:
    config = make_config(SLOS)
    inputs = {"inference": write(tmp_path / f"{name}-inference.jsonl", inference),
              "features": write(tmp_path / f"{name}-features.jsonl", features)}
    out = tmp_path / name
    replay(config, inputs, out, now=T0 + 86_400)  # the replay's clock: a day after the history starts
    return {k: read(out / f"{k}.jsonl") for k in ("budget", "alerts", "dead_letter")}


@pytest.mark.parametrize("burst", [300, 1000])
def test_a_burst_of_far_future_timestamps_is_dead_lettered_and_changes_nothing_else(tmp_path, burst):
    """Issue 15, item 2: 1,000 consecutive events stamped 2090 in a 4,000-event batch (300 suffice)
    were not outliers of their batch: event time jumped to 2090 and every real budget was lost."""
    clean = [event(i, T0 + i * 0.5) for i in range(4000)]
    faulty = [dict(e) for e in clean]
    for i in range(1500, 1500 + burst):
        faulty[i]["ts"] = faulty[i]["feature_ts"] = FAR_FUTURE + i
    features = feature_events(T0, T0 + 2000)
    got = run_replay(tmp_path, "faulty", faulty, features)
    want = run_replay(tmp_path, "clean", [e for i, e in enumerate(clean) if not 1500 <= i < 1500 + burst], features)

    dead = got["dead_letter"]
    assert sorted(d["offset"] for d in dead) == list(range(1500, 1500 + burst))
    for d in dead:
        assert d["error"].startswith("ts: 2090-") and "limits.max_future_skew allows 3600 s" in d["error"], d
        assert d["model"] == "m" and d["ts"].startswith("2090-")
    assert all(b["ts"].startswith("2026-01-01") for b in got["budget"])
    # every SLO but the schema SLI reads exactly what a run without the burst reads
    strip = [{k: v for k, v in b.items() if k != "health"} for b in want["budget"] if b["slo"] != "schema"]
    assert [{k: v for k, v in b.items() if k != "health"} for b in got["budget"] if b["slo"] != "schema"] == strip
    assert [a for a in got["alerts"] if a["slo"] != "schema"] == [a for a in want["alerts"] if a["slo"] != "schema"]
    # the burst counts toward the schema SLI, at the time its source had reached, not in 2090
    last = [b for b in got["budget"] if b["slo"] == "schema"][-1]
    assert last["total"] - last["good"] == burst and last["total"] == 4000 + len(features)
    assert parse_rfc3339(last["ts"]) < T0 + 3 * 3600
