"""`sloguard validate` warns about objectives inside the baseline's normal variation, with the
false-page rate they imply (sloguard/core/spec/objective_check.py), and about segments added for fairness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from factories import make_config
from scipy import stats

from sloguard.apps.cli import main
from sloguard.core.spec.config import load_config
from sloguard.core.spec.objective_check import false_pages_per_30d, miss_share, objective_warnings, segment_warnings

DI = {"name": "di", "model": "m", "dimension": "fairness", "window": "30d",
      "sli": {"disparate_impact": {"attribute": "region", "positive": 1}},
      "budgeting": {"timeslices": "15m", "min_samples": 50, "target": 0.99}}


def _config(tmp_path: Path, objective: float, values: list[float]) -> Path:
    (tmp_path / "base.json").write_bytes(orjson.dumps({"metrics": {"di": float(np.median(values))},
                                                       "slice_values": {"di": values}}))
    data = {"models": {"m": {"segments": ["region"], "baseline": "base.json", "label_delay": "1d"}},
            "slos": [{**DI, "objective": objective}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "c.yaml"


def test_an_objective_on_the_baseline_median_warns_with_its_false_page_rate(tmp_path: Path, capsys) -> None:
    values = sorted(np.round(np.random.default_rng(1).normal(0.805, 0.03, 200), 6).tolist())
    path = _config(tmp_path, 0.8, values)
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: slos[0] (di).objective: 0.8 sits within the baseline's normal variation" in err
    share = miss_share(load_config(path).slos[0], values)
    assert 0.3 < share < 0.7 and f"{share:.0%} of them miss it" in err
    assert "times per 30 days" in err
    # an objective past the spread: healthy slices almost never miss it, no warning
    path = _config(tmp_path, 0.65, values)
    assert main(["validate", str(path)]) == 0
    assert "warning" not in capsys.readouterr().err


def _p90_slo(hold: str | int):
    rules = [{"name": "fast", "severity": "page", "burn_rate": 14.4, "long_window": "1h", "short_window": "5m"}]
    return make_config([{"name": "q", "dimension": "infrastructure", "sli": {"latency_quantile": {"quantile": 0.9}},
                         "objective": 100, "budgeting": {"timeslices": "5m", "target": 0.99},
                         "alerting": {"resolve_hold": hold, "rules": rules}}]).slos[0]


def test_false_page_rate_against_the_binomial_oracle() -> None:
    slo = _p90_slo(0)
    assert false_pages_per_30d(slo, 0.0) == (0.0, 0.0)
    # the rule holds when >= 2 of the hour's 12 slices and the newest one are bad:
    # P = p * P(Bin(11, p) >= 1)
    p = 0.05
    exact = p * stats.binom.sf(0, 11, p)
    _, share = false_pages_per_30d(slo, p)
    assert share == pytest.approx(exact, rel=0.05)
    # every slice bad: one page that never resolves
    pages, share = false_pages_per_30d(slo, 1.0)
    assert share == pytest.approx(1.0, abs=1e-3) and pages == pytest.approx(0.1)
    # a resolve hold merges firings that are a few slices apart: fewer, longer pages
    no_hold, held_pages = false_pages_per_30d(slo, p)[0], false_pages_per_30d(_p90_slo("30m"), p)[0]
    assert 0 < held_pages < no_hold


def test_a_fairness_attribute_missing_from_the_segments_is_added_and_said() -> None:
    config = make_config([{**DI, "objective": 0.8}], models={"m": {"segments": [], "label_delay": "1d",
                                                                   "fairness": {"attribute": "region"}}})
    assert config.models["m"].segments == ("region",) and config.models["m"].added_segments == ("region",)
    (warning,) = segment_warnings(config)
    assert warning.startswith("models.m.fairness.attribute: 'region' is not in models.m.segments, so it was added")
    listed = make_config([{**DI, "objective": 0.8}], models={"m": {"segments": ["region"], "label_delay": "1d",
                                                                   "fairness": {"attribute": "region"}}})
    assert segment_warnings(listed) == [] and objective_warnings(listed) == []
