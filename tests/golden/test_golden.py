"""Golden files: the whole budget, alert and incident output of a small fixed scenario.

Two hours of one model's traffic (two regions, predictions with scores and labels ten minutes
later) with an outage in eu, a latency spike and a stretch of poor predictions in us, replayed
through the real dataflow (`sloguard replay`). Every byte of the three outputs must equal the
files in tests/golden/: a changed value, a renamed or added field, a reordered message fails here
even when no other test looks at it. A change that is meant is accepted with `make golden`, which
rewrites the files, and reviewed in the diff like code.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import msgspec
import numpy as np
import orjson
import pytest
from factories import T0, make_config
from test_quality_slos import traffic

from sloguard.apps.replay import replay
from sloguard.core.messages.outputs import Alert, Budget, Incident

GOLDEN = Path(__file__).resolve().parent
OUTPUTS = ("budget", "alerts", "incidents")
STRUCTS = {"budget": Budget, "alerts": Alert, "incidents": Incident}
UPDATE = os.environ.get("SLOGUARD_UPDATE_GOLDEN") == "1"


def scenario(tmp: Path) -> dict[str, Path]:
    """The fixed inputs, written as the JSONL files a replay reads."""
    rng = np.random.default_rng(20261203)
    preds, labels = traffic(T0, T0 + 7200, 3.0, rng, accuracy=0.93, label_delay=600)
    # 15 minutes of poor predictions in us, on top of the steady traffic
    bad, bad_labels = traffic(T0 + 4200, T0 + 5100, 3.0, rng, accuracy=0.93, bad_region="us", bad_accuracy=0.3,
                              label_delay=600, id_prefix="q")
    preds = sorted(preds + bad, key=lambda e: e["ts"])
    labels = sorted(labels + bad_labels, key=lambda e: e["ts"])
    for k, p in enumerate(preds):
        t = p["ts"] - T0
        p["status"] = "error" if (1800 <= t < 2400 and p["segment"]["region"] == "eu" and k % 3) else "ok"
        p["latency_ms"] = float(40 + (k * 7919) % 60 + (400 if 3000 <= t < 3600 else 0))
    inputs = {"inference": tmp / "inference.jsonl", "labels": tmp / "labels.jsonl"}
    inputs["inference"].write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in preds))
    inputs["labels"].write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in labels))
    return inputs


def config():
    return make_config(
        [
            {"name": "avail", "dimension": "infrastructure", "sli": "availability", "objective": 0.99},
            {"name": "p95", "dimension": "infrastructure", "sli": {"latency_quantile": {"quantile": 0.95}},
             "objective": 200, "budgeting": {"timeslices": "5m", "min_samples": 20, "target": 0.99}},
            {"name": "precision", "dimension": "quality", "sli": {"precision": {"positive": 1}},
             "objective": 0.8, "budgeting": {"timeslices": "15m", "min_samples": 20, "target": 0.99}},
        ],
        models={"m": {"segments": ["region"], "features": ["a", "b"], "no_data_after": "1h", "label_delay": "1h"}},
        owners={"quality": {"route": "ml-team"}},
    )


def first_difference(got: bytes, want: bytes) -> str:
    a, b = got.splitlines(), want.splitlines()
    for n, (x, y) in enumerate(zip(a, b, strict=False), 1):
        if x != y:
            return f"line {n}:\n  got  {x.decode()[:400]}\n  want {y.decode()[:400]}"
    return f"{len(a)} lines against {len(b)}"


def test_a_replay_of_the_fixed_scenario_writes_exactly_the_golden_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    replay(config(), scenario(tmp_path), out, now=T0 + 86_400)
    for name in OUTPUTS:
        got = (out / f"{name}.jsonl").read_bytes()
        path = GOLDEN / f"{name}.jsonl.gz"
        if UPDATE:
            GOLDEN.mkdir(exist_ok=True)
            path.write_bytes(gzip.compress(got, mtime=0))
            continue
        want = gzip.decompress(path.read_bytes())
        assert got == want, (f"{name}.jsonl differs from {path} ({first_difference(got, want)}); "
                             "if the change is meant, run `make golden` and review the diff")
    if not UPDATE:  # the scenario exercises what it is for: pages of each kind, and their incidents
        alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
        assert {a["slo"] for a in alerts if a["state"] == "firing"} >= {"avail", "p95", "precision"}
        assert (out / "incidents.jsonl").read_bytes()


@pytest.mark.parametrize("name", OUTPUTS)
def test_every_golden_line_is_its_struct_field_for_field_and_in_order(name: str) -> None:
    """The writer is the Struct: each golden line decodes strictly as its type (unknown fields
    forbidden) and encodes back to the same bytes. A field renamed, added without a default or moved
    in `sloguard.core.messages.outputs` fails here, naming the field, before any replay runs."""
    lines = gzip.decompress((GOLDEN / f"{name}.jsonl.gz").read_bytes()).splitlines()
    assert lines
    decoder = msgspec.json.Decoder(STRUCTS[name])
    for n, line in enumerate(lines, 1):
        assert msgspec.json.encode(decoder.decode(line)) == line, f"{name}.jsonl line {n}"
