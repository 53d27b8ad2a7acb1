"""Multivariate drift: PCA reconstruction error against NannyML, and a correlation flip that no
per-feature test sees."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.stats.drift import DriftRule, judge
from sloguard.core.stats.drift_bins import numeric_reference
from sloguard.core.stats.multivariate_drift import PcaReference, error_cells, error_ratio, reference_key


def _correlated(n: int, rho: float, seed: int, d: int = 3) -> np.ndarray:
    """Standard normal marginals (scaled) with corr(x0, x1) = rho; x2 independent."""
    rng = np.random.default_rng(seed)
    cov = np.eye(d)
    cov[0, 1] = cov[1, 0] = rho
    x = rng.multivariate_normal(np.zeros(d), cov, n)
    return x * np.array([50.0, 0.2, 3.0][:d]) + np.array([100.0, 0.5, 0.0][:d])


@pytest.mark.filterwarnings("ignore")
def test_matches_nannyml_data_reconstruction_drift(monkeypatch):
    """NannyML's DataReconstructionDriftCalculator on the same chunks: equal within 1e-9."""
    monkeypatch.setenv("NML_DISABLE_USAGE_LOGGING", "1")
    nml = pytest.importorskip("nannyml")
    pd = pytest.importorskip("pandas")
    names = ["amount", "risk", "age"]
    ref = _correlated(5000, 0.8, 1)
    chunks = [_correlated(1000, rho, 2 + i) for i, rho in enumerate((0.8, 0.0, -0.8))]
    chunks[0][::7, 1] = np.nan  # missing values: imputed with the reference mean
    calc = nml.DataReconstructionDriftCalculator(column_names=names, chunk_size=1000)
    calc.fit(pd.DataFrame(ref, columns=names))
    res = calc.calculate(pd.DataFrame(np.vstack(chunks), columns=names)).filter(period="analysis").to_df()
    theirs = res[("reconstruction_error", "value")].to_numpy()

    pca = PcaReference.fit(tuple(names), ref)
    order = [names.index(f) for f in pca.features]
    ours = [pca.errors(c[:, order]).mean() for c in chunks]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    assert pca.components.shape == (2, 3)  # 65 % of the variance needs two of the three components


def test_correlation_flip_fires_where_per_feature_drift_does_not():
    ref = _correlated(20_000, 0.85, 3, d=2)
    pca = PcaReference.fit(("amount", "risk"), ref)
    same, flipped = _correlated(2000, 0.85, 4, d=2), _correlated(2000, -0.85, 5, d=2)
    # each marginal is the same distribution: per-feature drift (KS / Wasserstein on reference bins) is quiet
    rule = DriftRule(min_samples=30)
    refs = {f: numeric_reference(ref[:, j]) for j, f in enumerate(("amount", "risk"))}
    for current in (same, flipped):
        counts = {f: np.bincount(refs[f].bin_index(current[:, j]), minlength=refs[f].bins())
                  for j, f in enumerate(("amount", "risk"))}
        assert not any(r.drifted for r in judge(refs, counts, rule))
    # the joint distribution changed: the reconstruction error more than doubles
    for current, low, high in ((same, 0.9, 1.1), (flipped, 2.0, 10.0)):
        cells = error_cells(0, pca.errors(current), np.ones(len(current), bool))
        sums = np.array([np.sum(cells[0][0] == 0), np.sum(cells[1][1])])
        ratio, n = error_ratio(sums, pca.reference_error)
        assert n == 2000 and low < ratio < high, ratio


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.integers(0, 2**16))
@settings(max_examples=50, deadline=None)
def test_slice_sums_merge_by_addition(cuts, seed):
    """Sums of any split into shards equal the whole: the ratio of merged sums is the whole's."""
    pca = PcaReference.fit(("a", "b"), _correlated(500, 0.7, 6, d=2))
    x = _correlated(len(cuts), -0.7, seed % 1000, d=2)
    errors = pca.errors(x)
    shards = np.zeros((4, 2))
    for shard in range(4):
        mine = np.array(cuts) == shard
        shards[shard] = [mine.sum(), errors[mine].sum()]
    merged = shards[0] + shards[1] + shards[2] + shards[3]
    whole = np.array([len(x), errors.sum()])
    np.testing.assert_allclose(merged, whole, rtol=1e-12)
    assert error_ratio(merged, pca.reference_error)[0] == pytest.approx(errors.mean() / pca.reference_error)


def test_round_trip_and_bad_references():
    pca = PcaReference.fit(("b", "a"), _correlated(200, 0.5, 7, d=2))
    assert pca.features == ("a", "b") and reference_key(["b", "a"]) == "a,b"
    back = PcaReference.from_dict(pca.to_dict())
    x = _correlated(10, 0.5, 8, d=2)
    np.testing.assert_allclose(back.errors(x), pca.errors(x))
    with pytest.raises(ValueError):
        PcaReference.fit(("a",), np.zeros((100, 1)))
    with pytest.raises(ValueError):
        PcaReference.from_dict({**pca.to_dict(), "scale": [1.0, 0.0]})
