"""Drift SLOs in the core: per-slice counts on reference bins, judged per segment, explained in alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from factories import T0, event, of, run
from scipy import stats

from sloguard.core.spec.config import parse_config
from sloguard.core.stats.drift_bins import categorical_reference, numeric_reference

REF_N = 20_000


def drift_config(tmp_path: Path, rng: np.random.Generator, target: float = 0.95, **sli: Any):
    ref_a = numeric_reference(rng.normal(0, 1, REF_N), 50)
    ref_b = categorical_reference(list(rng.choice(["x", "y", "z"], REF_N, p=[0.5, 0.3, 0.2])))
    (tmp_path / "base.json").write_bytes(
        orjson.dumps({"metrics": {}, "reference": {"a": ref_a.to_dict(), "b": ref_b.to_dict()}})
    )
    data = {
        "evaluation_interval": "1m",
        "allowed_lateness": "0s",
        "models": {
            "m": {"segments": ["region"], "features": ["a", "b"], "baseline": "base.json", "no_data_after": "1h"}
        },
        "slos": [
            {
                "name": "drift",
                "model": "m",
                "dimension": "drift",
                "window": "30d",
                "sli": {"drift": sli},
                "budgeting": {"timeslices": "5m", "min_samples": 30, "target": target},
            }
        ],
    }
    return parse_config(data, base_dir=tmp_path)


def traffic(
    rng: np.random.Generator,
    start: float,
    end: float,
    rate: float,
    *,
    shift: float = 0.0,
    shift_region: str | None = None,
    cats: tuple[float, float, float] = (0.5, 0.3, 0.2),
    regions: tuple[str, ...] = ("eu", "us"),
) -> list[dict]:
    n = int((end - start) * rate)
    ts = start + np.arange(n) / rate
    region = np.array(regions)[rng.integers(0, len(regions), n)]
    a = rng.normal(0, 1, n) + np.where((region == shift_region) | (shift_region is None), shift, 0.0)
    b = rng.choice(["x", "y", "z"], n, p=list(cats))
    return [
        event(int(ts[k] * 1000), float(ts[k]), region=str(region[k]), features={"a": float(a[k]), "b": str(b[k])})
        for k in range(n)
    ]


def test_no_drift_raises_nothing_and_a_shift_in_one_region_alerts_there_naming_the_feature(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    config = drift_config(tmp_path, rng)
    events = traffic(rng, T0, T0 + 3600, 1.0) + traffic(rng, T0 + 3600, T0 + 7200, 1.0, shift=1.0, shift_region="us")
    out, _ = run(config, events)
    calm = [a for a in of(out, "alert", slo="drift") if a.ts < "2026-01-01T01:00"]
    assert calm == []
    firing = of(out, "alert", slo="drift", state="firing", rule="fast-burn")
    assert {tuple(a.segment.items()) for a in firing} >= {(("region", "us"),)}
    assert not [a for a in firing if a.segment == {"region": "eu"}]
    us = next(a for a in firing if a.segment == {"region": "us"})
    assert us.dimension == "drift" and "drifting: a (" in us.summary and "b (" not in us.summary
    assert [d["feature"] for d in us.drift if d["drifted"]] == ["a"]
    # target 0.95: a page needs 72 % of the last hour's slices drifted, i.e. 45 minutes of drift
    assert us.ts <= "2026-01-01T01:50"


def test_slice_statistics_match_scipy_on_the_raw_slice_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    config = drift_config(tmp_path, rng)
    ref_a = rng.normal(0, 1, REF_N)  # a second reference draw stands in for the raw reference sample
    events = traffic(rng, T0, T0 + 600, 2.0, shift=0.3, cats=(0.4, 0.3, 0.3))
    out, _ = run(config, events)
    last = of(out, "budget", slo="drift", segment={})[-1]
    by = {d["feature"]: d for d in last.drift}
    # the newest judged slice: the last one, [T0+300, T0+600), ends with the input and is judged at its end
    cur = [e for e in events if T0 + 300 <= e["ts"] < T0 + 600]
    a = np.array([e["features"]["a"] for e in cur])
    exact = stats.ks_2samp(ref_a, a)
    assert by["a"]["n"] == len(cur)
    assert by["a"]["statistic"] == pytest.approx(exact.statistic, abs=0.04)  # 50 bins (2 %) + two reference draws
    assert by["a"]["effect_size"] == pytest.approx(stats.wasserstein_distance(ref_a, a) / ref_a.std(), abs=0.05)
    b = [e["features"]["b"] for e in cur]
    observed = np.array([b.count(c) for c in ("x", "y", "z")], float)
    expected = np.array([0.5, 0.3, 0.2]) * len(b)
    chi = stats.chisquare(observed, expected)
    assert by["b"]["statistic"] == pytest.approx(chi.statistic, rel=0.1)  # reference shares from a 20k draw


def test_a_harmless_shift_on_a_large_slice_is_significant_but_not_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    config = drift_config(tmp_path, rng)
    events = traffic(rng, T0, T0 + 1800, 40.0, shift=0.04)  # 12k values per 5-minute slice
    out, _ = run(config, events, size=5000)
    last = of(out, "budget", slo="drift", segment={})[-1]
    a = next(d for d in last.drift if d["feature"] == "a")
    assert a["n"] == 12_000 and a["p_value"] < 0.05 and not a["drifted"]
    assert not of(out, "alert", slo="drift")


def test_psi_method_uses_the_objective_as_the_psi_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    config = drift_config(tmp_path, rng, method="psi", features=["a"])
    assert config.slos[0].objective == 0.25
    events = traffic(rng, T0, T0 + 600, 5.0, shift=1.5)
    out, _ = run(config, events)
    last = of(out, "budget", slo="drift", segment={})[-1]
    psi = last.drift[0]
    assert psi["psi"] > 0.25 and psi["drifted"] and last.value == pytest.approx(psi["psi"], rel=1e-5)


def test_drift_needs_a_reference_for_each_feature(tmp_path: Path) -> None:
    from sloguard.core.spec.model import ConfigError

    rng = np.random.default_rng(5)
    with pytest.raises(ConfigError, match="no reference for c"):
        drift_config(tmp_path, rng, features=["a", "c"])


def test_a_drift_target_that_would_page_on_test_noise_is_refused(tmp_path: Path) -> None:
    from sloguard.core.spec.model import ConfigError

    rng = np.random.default_rng(6)
    with pytest.raises(ConfigError, match=r"budgeting.target: 0.99 leaves 1% of slices to drift"):
        drift_config(tmp_path, rng, target=0.99)
    assert drift_config(tmp_path, rng, target=0.99, method="wasserstein").slos[0].budgeting.target == 0.99
