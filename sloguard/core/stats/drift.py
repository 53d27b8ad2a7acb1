"""Drift statistics from counts on reference bins: mergeable, so any window is a sum of slices.

What this is for: a streaming monitor keeps, per time slice and feature, only a vector of counts
on bins fixed once from the reference, and judges drift for any window from the summed counts.
Evidently and similar tools re-bin reference + current data on every comparison; those bins
change with the data, so their histograms cannot be added across windows. What this is not: a
drift detector on raw samples (no change-point search, no multivariate tests).

Bins
  * Numeric features: cut points at the reference quantiles k / bins (``inverted_cdf``, so every
    cut point is an observed reference value), plus finer quantiles in both tails (``tail_levels``),
    deduplicated for ties, plus two guard bins with zero reference mass: ``(-inf, lo)`` and
    ``(hi, +inf)`` (``lo``/``hi`` = reference min/max). A value v falls in bin
    ``searchsorted(edges, v, side="right")``, i.e. bin i is ``[edges[i-1], edges[i])``. Guard bins
    make values outside the reference range visible to KS and PSI, and let a constant reference
    feature still detect change. With bins=50 and a 20k reference that is 62 bins.
  * Categorical features: the most frequent reference categories (by ``str(value)``) plus one
    "any other value" bin. ``None`` and float NaN are missing (bin -1, not counted).

Statistics and their tolerances against the same maths on raw values
  * KS (``ks_from_counts``): the statistic is max |F_ref - F_cur| over bin edges. It never
    exceeds the exact two-sample statistic of ``scipy.stats.ks_2samp`` on the raw values and is
    below it by at most ``ks_binning_error`` = max_i min(p_i, q_i) <= the largest reference bin
    share (about 1/bins: 0.02 with 50 bins); it is exact when every distinct value has its own bin
    (integer features with few values). The p-value uses the effective size
    en = round(n m / (n + m)) as ``ks_2samp(method="asymp")``; scipy's ``kstwo.sf`` costs
    0.1-140 ms per call (its ``smirnov`` is O(en)), so by default Stephens' approximation
    ``kolmogorov((sqrt(en) + 0.12 + 0.11 / sqrt(en)) D)`` is used (0.3 us): |p - kstwo.sf(D, en)|
    <= 0.023 for en >= 10, and <= 0.001 wherever kstwo.sf <= 0.1 (measured over en in [10, 1e5]).
    ``exact=True`` calls ``scipy.stats.kstwo.sf`` itself.
  * Chi-square (``chi_square_from_counts``): equals ``scipy.stats.chisquare(counts, probs * m)``
    when every reference share is >= eps; otherwise see its docstring (floor, renormalise).
  * PSI: the textbook sum (c - r) ln(c / r), shares floored at 1e-4 (Evidently's fill value).
    With many bins and a small window it reads high on no drift at all (100 bins, 1k values:
    ~0.1 expected from sampling noise alone, about (bins - 1) / m), so numeric PSI is computed on
    ``psi_bins`` (10) coarse bins of equal reference mass (``coarsen``).
  * Wasserstein (``wasserstein_from_counts``): exact W1 between the two piecewise-linear CDFs
    through the bin boundaries (lo, edges, hi), divided by the reference std (Evidently's
    ``wasserstein_distance_norm``). Values outside [lo, hi] count as if at lo / hi, so shifts
    beyond the reference range are under-read (a lower bound, still far above 0.1 for any shift
    that leaves the range). Error vs ``scipy.stats.wasserstein_distance(ref, cur) / std(ref)`` on
    the raw values: at most sum_i width_i (p_i + q_i) / std in theory; measured on normal,
    log-normal and exponential references (20k values, bins=50), shifts up to 1 std and scale
    changes 0.5-1.5x inside the range: <= 0.01 absolute where W <= 0.25 (the decision region
    around 0.1) and <= 10 % relative above (the tests assert 0.01 + 10 %).
  * Jensen-Shannon: ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` (Evidently's base).

Decision defaults (``DriftRule``) follow Evidently's data-drift preset: tests (KS for numbers,
chi-square for categories) at p < 0.05 on small samples; on samples above 1,000 the effect size
(normalised Wasserstein, Jensen-Shannon) >= 0.1, because p-values go to zero for harmless shifts
on large samples. Evidently switches on the reference size; we switch on the current window's
size, which varies while the reference is fixed and which governs the test's power. PSI >= 0.25
is the credit-scoring convention for a significant shift (0.1-0.25 'moderate'; Siddiqi, 2006).
Unlike the open tools, p-values are corrected for the number of features with
Benjamini-Hochberg, so 20 healthy features do not raise a false alarm in most slices.

Everything is vectorised over bins (the only per-value work is ``bin_index``: one
``searchsorted`` for numbers, C-level dict look-ups for categories). ``judge`` on 10 features
takes ~0.4 ms on the 2-core development machine, ~35 us per feature, mostly numpy call overhead.

The bins live in `drift_bins`, the statistics in `drift_stats`; this module holds the decision.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sloguard.core.stats.drift_bins import (
    NumericReference,
    Reference,
    as_counts,
)
from sloguard.core.stats.drift_stats import (
    bh_adjust,
    cdf_gaps,
    chi_square_from_counts,
    coarse_counts,
    jensen_shannon,
    ks_p_value,
    psi,
    psi_floored,
    wasserstein_from_gaps,
)

__all__ = ["METHODS", "DriftRule", "FeatureDrift", "judge"]

METHODS = ("auto", "ks", "chi2", "psi", "wasserstein", "jensen_shannon")
_TESTS = ("ks", "chi2")


# --------------------------------------------------------------------------------------------- references


# --------------------------------------------------------------------------------------------- statistics


# --------------------------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class DriftRule:
    """How a feature is judged drifted.

    method "auto" follows common practice (Evidently's defaults): n_cur <= large_sample (1000):
    the test (KS for numbers, chi-square for categories) with p < p_value after BH; above: the
    effect size (normalised Wasserstein for numbers, Jensen-Shannon for categories) >=
    effect_threshold (0.1). Explicit methods: "ks", "chi2" (test only), "psi" (psi >=
    psi_threshold, default 0.25; 0.1 is 'moderate'), "wasserstein", "jensen_shannon" (effect >=
    effect_threshold). Whenever a test is used on a large sample it is paired with the effect
    size gate: a significant p-value with an effect below effect_threshold is NOT drift (p-values
    go to zero for harmless shifts on large samples). min_samples: fewer current values -> not
    judged.

    "ks" and "chi2" both mean "the test that fits the feature" (KS for numeric, chi-square for
    categorical features), and "wasserstein" / "jensen_shannon" both mean "the effect size that
    fits the feature", so one rule serves a mixed feature set. "p < p_value after BH" is the
    BH rejection ``adjusted p <= p_value``. Numeric PSI is computed on `psi_bins` coarse bins.
    """

    method: str = "auto"
    p_value: float = 0.05
    effect_threshold: float = 0.1
    psi_threshold: float = 0.25
    large_sample: int = 1000
    min_samples: int = 30
    psi_bins: int = 10

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 0 < self.p_value < 1:
            raise ValueError(f"p_value: must be in (0, 1), got {self.p_value}")
        if not self.effect_threshold > 0:
            raise ValueError(f"effect_threshold: must be > 0, got {self.effect_threshold}")
        if not self.psi_threshold > 0:
            raise ValueError(f"psi_threshold: must be > 0, got {self.psi_threshold}")
        if self.large_sample < 1:
            raise ValueError(f"large_sample: must be >= 1, got {self.large_sample}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples: must be >= 1, got {self.min_samples}")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins: must be >= 2, got {self.psi_bins}")


def _json_float(x: float, digits: int = 6) -> float | None:
    """`x` to `digits` significant digits (tiny p-values keep their exponent); NaN/inf -> None."""
    x = float(x)
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift verdict for a window, with every statistic behind it.

    `test` is "ks" or "chi2" and `p_value` its raw p-value; `p_adjusted` is the
    Benjamini-Hochberg adjusted p-value over the judged features (what the rule compares).
    `effect` is "wasserstein" (normalised) or "jensen_shannon". `judged` is False when the
    window had fewer than min_samples values (then `drifted` is False).
    """

    feature: str
    n: int
    test: str
    statistic: float
    p_value: float
    effect: str
    effect_size: float
    psi: float
    judged: bool
    drifted: bool
    p_adjusted: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: floats to 6 significant digits, NaN -> None."""
        return {
            "feature": self.feature,
            "n": int(self.n),
            "test": self.test,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "p_adjusted": _json_float(self.p_adjusted),
            "effect": self.effect,
            "effect_size": _json_float(self.effect_size),
            "psi": _json_float(self.psi),
            "judged": bool(self.judged),
            "drifted": bool(self.drifted),
        }


def _statistics(feature: str, ref: Reference, counts: np.ndarray, rule: DriftRule) -> FeatureDrift:
    """Every statistic of one feature; `drifted` and `p_adjusted` are set by `judge`."""
    c = as_counts(ref, counts)
    m = float(np.add.reduce(c))
    n = round(m)
    judged = n >= rule.min_samples
    if isinstance(ref, NumericReference):
        if m <= 0:
            return FeatureDrift(feature, 0, "ks", math.nan, math.nan, "wasserstein", math.nan, math.nan, judged, False)
        g = cdf_gaps(ref, c, m)
        a = np.abs(g)
        d = float(a.max())
        coarse = coarse_counts(ref, c, rule.psi_bins)[1]
        floored = ref.__dict__[f"_coarse_{rule.psi_bins}"][2]
        return FeatureDrift(
            feature,
            n,
            "ks",
            d,
            ks_p_value(d, ref.n, n),
            "wasserstein",
            wasserstein_from_gaps(ref, g, a),
            psi_floored(floored, coarse, m),
            judged,
            False,
        )
    chi, p = chi_square_from_counts(ref, c)
    js = jensen_shannon(ref.probs, c)
    return FeatureDrift(feature, n, "chi2", chi, p, "jensen_shannon", js, psi(ref.probs, c), judged, False)


def _drifted(s: FeatureDrift, p_adjusted: float, rule: DriftRule) -> bool:
    if not s.judged:
        return False
    significant = p_adjusted <= rule.p_value  # False for NaN
    big = s.effect_size >= rule.effect_threshold
    large = s.n > rule.large_sample
    if rule.method == "auto":
        return big if large else significant
    if rule.method in _TESTS:
        return significant and (big or not large)
    if rule.method == "psi":
        return s.psi >= rule.psi_threshold
    return big  # wasserstein / jensen_shannon


def judge(
    refs: dict[str, Reference], counts: dict[str, np.ndarray], rule: DriftRule | None = None
) -> list[FeatureDrift]:
    """Judge every feature of `refs` on its window `counts` (missing counts = an empty window).

    Computes the test, the effect size and PSI per feature, adjusts the judged features'
    p-values together with Benjamini-Hochberg, then applies `rule` (see DriftRule). Features
    with fewer than rule.min_samples values are reported with judged=False, drifted=False.
    """
    rule = rule or DriftRule()
    rows = [
        _statistics(name, ref, counts[name] if name in counts else np.zeros(ref.bins()), rule)
        for name, ref in refs.items()
    ]
    family = np.array([s.p_value if s.judged else math.nan for s in rows], dtype=np.float64)
    adjusted = bh_adjust(family)
    return [
        dataclasses.replace(s, drifted=_drifted(s, float(adj), rule), p_adjusted=float(adj))
        for s, adj in zip(rows, adjusted, strict=True)
    ]
