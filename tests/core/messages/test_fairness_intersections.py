"""Equalized odds against Fairlearn, and fairness over the intersection of two attributes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import make_config

from sloguard.core.messages.intersections import components, intersection_name, join_values
from sloguard.core.spec.model import ConfigError
from sloguard.core.stats.fairness import confusion_by_group, equalized_odds, fairness

flm = pytest.importorskip("fairlearn.metrics")
pd = pytest.importorskip("pandas")


def _two_attributes(seed: int, n: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels and predictions whose TPR and FPR differ by (region, age band) cell."""
    rng = np.random.default_rng(seed)
    region = rng.choice(np.array(["eu", "us", "apac"]), n)
    age = rng.choice(np.array(["18-34", "35-64", "65+"]), n)
    cell = np.searchsorted(np.unique(region), region) * 3 + np.searchsorted(np.unique(age), age)
    tpr, fpr = rng.uniform(0.5, 0.95, 9)[cell], rng.uniform(0.01, 0.3, 9)[cell]
    y = (rng.random(n) < rng.uniform(0.1, 0.5, 9)[cell]).astype(int)
    yhat = np.where(y == 1, rng.random(n) < tpr, rng.random(n) < fpr).astype(int)
    return y, yhat, region, age


@pytest.mark.parametrize("seed", range(5))
def test_equalized_odds_matches_fairlearn_on_the_intersection(seed: int) -> None:
    y, yhat, region, age = _two_attributes(seed)
    groups = np.array(join_values([region.tolist(), age.tolist()]))
    per_group = confusion_by_group(groups, yhat == 1, y == 1)
    assert len(per_group) == 9
    sensitive = pd.DataFrame({"region": region, "age_band": age})  # Fairlearn's own intersection
    for metric, oracle in (("equalized_odds_difference", flm.equalized_odds_difference),
                           ("equalized_odds_ratio", flm.equalized_odds_ratio)):
        ours = fairness(metric, per_group, min_support=1)
        assert ours.judged
        assert ours.value == pytest.approx(oracle(y, yhat, sensitive_features=sensitive), rel=1e-12), metric
    # the deciding component and its worst group agree with Fairlearn's per-group rates
    diff = equalized_odds("equalized_odds_difference", per_group, 1)
    tpr = flm.MetricFrame(metrics=flm.true_positive_rate, y_true=y, y_pred=yhat, sensitive_features=groups)
    fpr = flm.MetricFrame(metrics=flm.false_positive_rate, y_true=y, y_pred=yhat, sensitive_features=groups)
    if diff.component == "tpr":
        assert diff.worst_group == tpr.by_group.idxmin()
    else:
        assert diff.worst_group == fpr.by_group.idxmax()


def test_equalized_odds_judges_groups_with_enough_positives_and_negatives() -> None:
    per_group = {
        "a": np.array([40, 10, 10, 40]),  # tpr 0.8, fpr 0.2
        "b": np.array([30, 5, 20, 45]),  # tpr 0.6, fpr 0.1
        "few_negatives": np.array([90, 0, 10, 5]),  # 100 positives, 5 negatives: not judged
    }
    r = equalized_odds("equalized_odds_difference", per_group, min_support=30)
    assert r.value == pytest.approx(0.2) and r.component == "tpr"
    assert (r.worst_group, r.best_group) == ("b", "a")
    small = next(g for g in r.groups if g.group == "few_negatives")
    assert not small.judged and small.support == 5
    ratio = equalized_odds("equalized_odds_ratio", per_group, min_support=30)
    assert ratio.value == pytest.approx(0.5) and ratio.component == "fpr"  # 0.1 / 0.2 < 0.6 / 0.8
    assert (ratio.worst_group, ratio.best_group) == ("a", "b")  # the higher FPR is worse off
    assert ratio.to_dict()["component"] == "fpr"
    assert math.isnan(equalized_odds("equalized_odds_ratio", {"a": per_group["a"]}, 1).value)


def test_a_gap_invisible_to_either_attribute_alone() -> None:
    """TPR 0.9 / 0.6 on the diagonal cells: each region and each age band averages 0.75."""
    tpr = {("eu", "young"): 0.9, ("eu", "old"): 0.6, ("us", "young"): 0.6, ("us", "old"): 0.9}
    counts = {cell: np.array([100 * r, 5, 100 * (1 - r), 95]) for cell, r in tpr.items()}

    def by(pick) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for cell, c in counts.items():
            out[pick(cell)] = out.get(pick(cell), 0) + c
        return out

    assert fairness("tpr_gap", by(lambda c: c[0])).value == pytest.approx(0.0)
    assert fairness("tpr_gap", by(lambda c: c[1])).value == pytest.approx(0.0)
    assert fairness("tpr_gap", by("&".join)).value == pytest.approx(0.3)
    assert fairness("equalized_odds_difference", by("&".join)).value == pytest.approx(0.3)


def test_join_values_and_names() -> None:
    assert intersection_name(["region", "age_band"]) == "region&age_band"
    assert components("region&age_band") == ("region", "age_band")
    assert join_values([["eu", None, "us"], ["65+", "18-34", None]]) == ["eu&65+", None, None]


def _fair(fairness_cfg: dict, attribute: str | None = None):
    sli = {"equalized_odds_difference": {} if attribute is None else {"attribute": attribute}}
    return make_config(
        [{"name": "eo", "dimension": "fairness", "sli": sli, "objective": 0.1,
          "budgeting": {"timeslices": "5m", "min_samples": 20}}],
        models={"m": {"segments": ["region"], "features": ["a"], "no_data_after": "10m", "label_delay": "1h",
                      "fairness": fairness_cfg}},
    )


def test_config_intersection_becomes_a_segmentation() -> None:
    config = _fair({"attributes": ["region", "age_band"], "min_support": 50})
    model = config.models["m"]
    assert model.segments == ("region", "region&age_band")
    assert model.added_segments == ("region&age_band",)
    assert config.slos[0].sli.params["attribute"] == "region&age_band"
    assert config.slos[0].sli.params["min_support"] == 50


@pytest.mark.parametrize(("fairness_cfg", "attribute", "path"), [
    ({"attributes": ["region"]}, None, "models.m.fairness.attributes"),
    ({"attributes": ["region", "region"]}, None, "models.m.fairness.attributes"),
    ({"attributes": ["region", "age"], "attribute": "region"}, None, "models.m.fairness.attributes"),
    ({"attributes": ["region", "age_band"]}, "age_band", "slos[0].sli.equalized_odds_difference.attribute"),
])
def test_bad_intersections_name_the_field(fairness_cfg: dict, attribute: str | None, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        _fair(fairness_cfg, attribute)
    assert any(p.startswith(path) for p in e.value.problems), e.value.problems
