"""`sloguard baseline`: median per-slice metrics and feature references, then configs that use them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from factories import T0
from test_quality_slos import confusion, traffic

from sloguard.apps.cli import main
from sloguard.core.spec.config import load_config
from sloguard.core.spec.model import ConfigError
from sloguard.core.stats.drift_bins import reference_from_dict

CONFIG = {
    "evaluation_interval": "1m",
    "allowed_lateness": "0s",
    "models": {
        "m": {
            "segments": ["region"],
            "features": ["a", "b"],
            "label_delay": "1h",
            "baseline": "baselines/m.json",
        }
    },
    "slos": [
        {
            "name": "precision",
            "model": "m",
            "dimension": "quality",
            "sli": {"precision": {"positive": 1}},
            "objective": {"relative_to_baseline": 0.95},
            "budgeting": {"timeslices": "5m", "min_samples": 20, "target": 0.99},
            "window": "7d",
        },
        {
            "name": "drift",
            "model": "m",
            "dimension": "drift",
            "sli": {"drift": {}},
            "budgeting": {"timeslices": "5m", "min_samples": 30, "target": 0.95},
            "window": "7d",
        },
    ],
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in sorted(rows, key=lambda r: r["ts"])))
    return path


def test_baseline_writes_median_slice_metrics_and_references_that_configs_then_use(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(1)
    preds, labels = traffic(T0, T0 + 3600, 1.0, rng, accuracy=0.85, label_delay=60)
    for p in preds:
        p["features"] = {"a": float(rng.lognormal(3, 0.5)), "b": str(rng.choice(["x", "y"], p=[0.7, 0.3]))}
    cfg = tmp_path / "sloguard.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    with pytest.raises(ConfigError, match="not found"):  # before: the baseline does not exist yet
        load_config(cfg)
    code = main(
        [
            "baseline",
            "--config",
            str(cfg),
            "--inference",
            str(write_jsonl(tmp_path / "inference.jsonl", preds)),
            "--labels",
            str(write_jsonl(tmp_path / "labels.jsonl", labels)),
            "--quiet",
        ]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    doc = orjson.loads((tmp_path / "baselines" / "m.json").read_bytes())
    per_slice = []
    for k in range(12):
        c = confusion(preds, labels, T0 + 300 * k, T0 + 300 * (k + 1))
        if c["tp"] + c["fp"] >= 20:
            per_slice.append(c["tp"] / (c["tp"] + c["fp"]))
    assert doc["metrics"]["precision"] == pytest.approx(float(np.median(per_slice)), abs=1e-6)
    assert doc["slices"]["precision"] == len(per_slice)
    assert "drift" not in doc["metrics"] and doc["events"] == len(preds) and doc["labels"] == len(labels)
    ref_a = reference_from_dict(doc["reference"]["a"])
    values = np.array([p["features"]["a"] for p in preds])
    assert ref_a.kind == "numeric" and ref_a.n == len(values)
    # the reference's bins hold the stated shares of the history it was built from
    assert np.allclose(np.bincount(ref_a.bin_index(values), minlength=ref_a.bins()) / len(values), ref_a.probs)
    assert reference_from_dict(doc["reference"]["b"]).kind == "categorical"
    config = load_config(cfg)  # after: the relative objective resolves against the baseline
    precision = config.slos[0]
    assert precision.baseline == doc["metrics"]["precision"]
    assert precision.objective == pytest.approx(0.95 * doc["metrics"]["precision"])


def test_baseline_explains_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "sloguard.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    assert main(["baseline", "--config", str(cfg), "--inference", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "i.jsonl").write_bytes(b"")
    assert main(["baseline", "--config", str(cfg), "--inference", str(tmp_path / "i.jsonl"), "--model", "x"]) == 2
    assert "unknown model 'x'" in capsys.readouterr().err
