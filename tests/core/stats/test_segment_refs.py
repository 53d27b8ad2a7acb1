"""Per-segment drift references (sloguard/core/stats/segment_refs.py): a feature that differs by segment by
design does not drift in every segment, a real shift in one segment still pages there, and keys
with too little history fall back to the model's reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from factories import T0, event, of, run

from sloguard.apps.cli import main
from sloguard.core.spec.config import load_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.stats.drift_bins import reference_from_dict
from sloguard.core.stats.segment_refs import segment_reference

CONFIG = {
    "evaluation_interval": "1m",
    "allowed_lateness": "0s",
    "models": {"m": {"segments": ["region"], "features": ["a", "b"], "baseline": "base.json", "no_data_after": "1h"}},
    "slos": [{"name": "drift", "model": "m", "dimension": "drift", "window": "30d", "sli": {"drift": {}},
              "budgeting": {"timeslices": "5m", "min_samples": 30, "target": 0.95}}],
}
MEANS = {"eu": 0.0, "us": 2.0, "apac": 5.0}  # "a" differs by region by design
SHARES = {"eu": (0.7, 0.2, 0.1), "us": (0.2, 0.2, 0.6), "apac": (0.3, 0.4, 0.3)}


def traffic(rng: np.random.Generator, start: float, end: float, rate: float, shift_us: float = 0.0,
            apac_share: float = 0.02) -> list[dict]:
    n = int((end - start) * rate)
    ts = start + np.arange(n) / rate
    region = rng.choice(["eu", "us", "apac"], n, p=[(1 - apac_share) / 2, (1 - apac_share) / 2, apac_share])
    out = []
    for k in range(n):
        r = str(region[k])
        a = rng.normal(MEANS[r], 1.0) + (shift_us if r == "us" else 0.0)
        b = str(rng.choice(["x", "y", "z"], p=SHARES[r]))
        out.append(event(int(ts[k] * 1000), float(ts[k]), region=r, features={"a": float(a), "b": b}))
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("segrefs")
    (tmp / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    rows = traffic(np.random.default_rng(1), T0 - 86_400, T0 - 86_400 + 7200, 4.0)
    (tmp / "good.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    assert main(["baseline", "--config", str(tmp / "c.yaml"), "--inference", str(tmp / "good.jsonl"), "--quiet",
                 "--segment-min-values", "1000"]) == 0
    return tmp


def test_the_baseline_keeps_a_reference_per_segment_with_enough_history(baseline: Path) -> None:
    doc = orjson.loads((baseline / "base.json").read_bytes())
    seg = doc["segment_references"]
    assert sorted(seg) == ["region=eu", "region=us"]  # apac: ~580 values, fewer than 1000
    ref = reference_from_dict(doc["reference"]["a"])
    us = segment_reference(ref, seg["region=us"]["a"])
    assert us.bins() == ref.bins() and np.array_equal(us.edges, ref.edges)  # the model's bins, its shares
    values = [r for r in (baseline / "good.jsonl").read_bytes().splitlines() if b'"us"' in r]
    a = np.array([orjson.loads(r)["features"]["a"] for r in values])
    assert us.n == len(a) and us.std == pytest.approx(a.std())
    # the segment's CDF on the model's cut points is the empirical one
    inner = ref.edges[1:-1]
    assert np.cumsum(us.probs)[1:-2] == pytest.approx([(a < e).mean() for e in inner], abs=1e-9)
    b = [orjson.loads(r)["features"]["b"] for r in values]
    cats = reference_from_dict(doc["reference"]["b"]).categories
    assert seg["region=us"]["b"]["probs"][:3] == pytest.approx([b.count(c) / len(b) for c in cats])


def _drift_pages(config_dir: Path, events: list[dict]) -> dict[str, list[dict]]:
    out, _ = run(load_config(config_dir / "c.yaml"), events)
    pages = of(out, "alert", slo="drift", state="firing", severity="page")
    return {",".join(f"{k}={v}" for k, v in a.segment.items()) or "(whole model)": a for a in pages}


def test_a_feature_that_differs_by_segment_by_design_does_not_drift_per_segment(baseline: Path) -> None:
    calm = traffic(np.random.default_rng(2), T0, T0 + 3 * 3600, 1.0)
    assert _drift_pages(baseline, calm) == {}
    # the same traffic against the model's reference alone: every region "drifts"
    doc = orjson.loads((baseline / "base.json").read_bytes())
    model_only = baseline / "model-only"
    model_only.mkdir(exist_ok=True)
    (model_only / "base.json").write_bytes(orjson.dumps({**doc, "segment_references": {}}))
    (model_only / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    assert {"region=eu", "region=us"} <= set(_drift_pages(model_only, calm))


def test_a_real_shift_in_one_segment_still_pages_there(baseline: Path) -> None:
    rng = np.random.default_rng(3)
    events = traffic(rng, T0, T0 + 3600, 1.0) + traffic(rng, T0 + 3600, T0 + 3 * 3600, 1.0, shift_us=1.0)
    pages = _drift_pages(baseline, events)
    assert "region=us" in pages and "region=eu" not in pages
    assert [d["feature"] for d in pages["region=us"].drift if d["drifted"]] == ["a"]


def test_a_segment_reference_that_does_not_fit_the_model_bins_is_refused(baseline: Path) -> None:
    doc = orjson.loads((baseline / "base.json").read_bytes())
    doc["segment_references"]["region=eu"]["a"]["probs"] = [1.0]
    broken = baseline / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "base.json").write_bytes(orjson.dumps(doc))
    (broken / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    with pytest.raises(ConfigError, match=r"segment reference region=eu of feature 'a' does not fit"):
        load_config(broken / "c.yaml")
