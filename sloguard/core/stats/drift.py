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
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "CategoricalReference",
    "DriftRule",
    "FeatureDrift",
    "NumericReference",
    "benjamini_hochberg",
    "bh_adjust",
    "categorical_reference",
    "chi_square_from_counts",
    "coarsen",
    "jensen_shannon",
    "judge",
    "ks_binning_error",
    "ks_from_counts",
    "ks_p_value",
    "numeric_reference",
    "psi",
    "reference_from_dict",
    "tail_levels",
    "wasserstein_from_counts",
]

#: Floor on reference/current shares in PSI and on reference shares in chi-square (Evidently's 1e-4).
SHARE_FLOOR = 1e-4
_LN2 = math.log(2.0)
METHODS = ("auto", "ks", "chi2", "psi", "wasserstein", "jensen_shannon")
_TESTS = ("ks", "chi2")


def _frozen_array(values: Any, dtype: Any = np.float64) -> np.ndarray:
    arr = np.array(values, dtype=dtype)
    arr.flags.writeable = False
    return arr


def _as_counts(ref: NumericReference | CategoricalReference, counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.shape != (ref.bins(),):
        raise ValueError(f"counts: expected {ref.bins()} bins for this reference, got shape {c.shape}")
    return c


# --------------------------------------------------------------------------------------------- references


@dataclass(frozen=True, eq=False)
class NumericReference:
    """Reference quantile bins of a numeric feature and the reference share in each.

    ``edges`` are ascending cut points: the reference min ``lo``, the deduplicated quantile cut
    points, and the float just above the max ``hi``; so bin 0 and the last bin are guard bins
    (values below / above the reference range) with zero reference share.

    >>> ref = numeric_reference(np.arange(40.0), bins=4)
    >>> ref.edges.tolist()
    [0.0, 9.0, 19.0, 29.0, 39.00000000000001]
    >>> ref.probs.tolist()
    [0.0, 0.225, 0.25, 0.25, 0.275, 0.0]
    >>> ref.bin_index(np.array([-1.0, 0.0, 9.0, 39.0, 40.0, np.nan])).tolist()
    [0, 1, 2, 4, 5, -1]
    """

    edges: np.ndarray
    probs: np.ndarray
    n: int
    lo: float
    hi: float
    std: float
    kind: ClassVar[str] = "numeric"

    def __post_init__(self) -> None:
        edges, probs = _frozen_array(self.edges), _frozen_array(self.probs)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "probs", probs)
        if edges.ndim != 1 or probs.shape != (edges.size + 1,):
            raise ValueError(f"probs: expected len(edges) + 1 = {edges.size + 1} shares, got shape {probs.shape}")
        if edges.size > 1 and not np.all(np.diff(edges) > 0):
            raise ValueError("edges: must be strictly ascending")
        if not np.all(np.isfinite(edges)):
            raise ValueError("edges: must be finite")
        if np.any(probs < 0) or not math.isclose(float(probs.sum()), 1.0, abs_tol=1e-9):
            raise ValueError(f"probs: must be non-negative and sum to 1, sum is {float(probs.sum())!r}")
        if self.n < 1:
            raise ValueError(f"n: must be >= 1, got {self.n}")
        if not self.lo <= self.hi:
            raise ValueError(f"lo, hi: need lo <= hi, got {self.lo}, {self.hi}")

    def bins(self) -> int:
        """Number of bins (and length of a counts vector): len(edges) + 1."""
        return self.edges.size + 1

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Bin of each value, ``searchsorted(edges, v, side="right")`` as int64; NaN -> -1."""
        v = np.asarray(values, dtype=np.float64)
        idx = np.searchsorted(self.edges, v, side="right").astype(np.int64)
        idx[np.isnan(v)] = -1
        return idx

    def count(self, values: np.ndarray) -> np.ndarray:
        """Counts per bin of `values` (NaN skipped): the mergeable per-slice summary."""
        idx = self.bin_index(values)
        return np.bincount(idx[idx >= 0], minlength=self.bins())

    @cached_property
    def _cdf(self) -> np.ndarray:
        """Reference CDF at the right end of each bin: [F_ref(edges[0]-), ..., F_ref(edges[-1]-), 1]."""
        return np.cumsum(self.probs)

    @cached_property
    def _scale(self) -> float:
        return self.std if self.std > 0 else 1.0

    @cached_property
    def _widths(self) -> np.ndarray:
        """Bin widths with the outer bounds lo / hi (guard bins have width 0)."""
        bounds = np.concatenate(([self.lo], np.clip(self.edges, self.lo, self.hi), [self.hi]))
        return np.diff(bounds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (floats round-trip exactly through JSON)."""
        return {
            "kind": self.kind,
            "edges": [float(x) for x in self.edges],
            "probs": [float(x) for x in self.probs],
            "n": int(self.n),
            "lo": float(self.lo),
            "hi": float(self.hi),
            "std": float(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericReference:
        return cls(
            edges=np.asarray(d["edges"], dtype=np.float64),
            probs=np.asarray(d["probs"], dtype=np.float64),
            n=int(d["n"]),
            lo=float(d["lo"]),
            hi=float(d["hi"]),
            std=float(d["std"]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericReference):
            return NotImplemented
        return (
            np.array_equal(self.edges, other.edges)
            and np.array_equal(self.probs, other.probs)
            and (self.n, self.lo, self.hi, self.std) == (other.n, other.lo, other.hi, other.std)
        )

    __hash__ = None  # type: ignore[assignment]


def _as_list(values: list[Any] | np.ndarray) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else values if isinstance(values, list) else list(values)


def _missing(values: list[Any]) -> np.ndarray:
    """True for None and float NaN (v != v), by C-level maps rather than a Python loop."""
    n = len(values)
    none = np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=n)
    return none | np.fromiter(map(operator.ne, values, values), dtype=bool, count=n)


def _codes(lookup: dict[str, int], values: list[Any], other: int) -> np.ndarray:
    """Bin codes of `values` by ``str(value)`` in `lookup`; unknown -> `other`; None / NaN -> -1.

    Strings (the common case) are looked up directly; only the misses pay for the missing-value
    check and ``str()``. Every per-value step is a C-level ``map``, ~30-60 ns per value.
    """
    n = len(values)
    try:
        codes = np.fromiter(map(lookup.get, values, repeat(-2)), dtype=np.int64, count=n)
    except TypeError:  # an unhashable value: look everything up by str()
        codes = np.full(n, -2, dtype=np.int64)
    miss = np.flatnonzero(codes == -2)
    if miss.size:
        sub = list(map(values.__getitem__, miss.tolist()))
        found = np.fromiter(map(lookup.get, map(str, sub), repeat(other)), dtype=np.int64, count=len(sub))
        codes[miss] = np.where(_missing(sub), -1, found)
    return codes


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """Reference categories (most frequent first) and their shares, plus an "any other value" share.

    >>> ref = categorical_reference(["a", "a", "b", None, 1], max_categories=2)
    >>> ref.categories, ref.probs.tolist(), ref.n
    (('a', '1'), [0.5, 0.25, 0.25], 4)
    >>> ref.bin_index(["b", "a", 1, None, "zzz"]).tolist()
    [2, 0, 1, -1, 2]
    """

    categories: tuple[str, ...]
    probs: np.ndarray
    n: int
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(str(c) for c in self.categories))
        probs = _frozen_array(self.probs)
        object.__setattr__(self, "probs", probs)
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories: must be distinct")
        if probs.shape != (len(self.categories) + 1,):
            raise ValueError(f"probs: expected len(categories) + 1 = {len(self.categories) + 1} shares")
        if np.any(probs < 0) or not math.isclose(float(probs.sum()), 1.0, abs_tol=1e-9):
            raise ValueError(f"probs: must be non-negative and sum to 1, sum is {float(probs.sum())!r}")
        if self.n < 1:
            raise ValueError(f"n: must be >= 1, got {self.n}")

    def bins(self) -> int:
        """Number of bins: the categories plus the "other" bin."""
        return len(self.categories) + 1

    @cached_property
    def _lookup(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.categories)}

    def bin_index(self, values: list[Any] | np.ndarray) -> np.ndarray:
        """Bin of each value by ``str(value)``; unknown -> the last ("other") bin; None / NaN -> -1."""
        return _codes(self._lookup, _as_list(values), len(self.categories))

    def count(self, values: list[Any] | np.ndarray) -> np.ndarray:
        """Counts per bin of `values` (missing skipped)."""
        idx = self.bin_index(values)
        return np.bincount(idx[idx >= 0], minlength=self.bins())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "categories": list(self.categories),
            "probs": [float(x) for x in self.probs],
            "n": int(self.n),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalReference:
        return cls(categories=tuple(d["categories"]), probs=np.asarray(d["probs"], dtype=np.float64), n=int(d["n"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalReference):
            return NotImplemented
        return self.categories == other.categories and np.array_equal(self.probs, other.probs) and self.n == other.n

    __hash__ = None  # type: ignore[assignment]


Reference = NumericReference | CategoricalReference


def tail_levels(bins: int, n: int, min_count: int = 10) -> np.ndarray:
    """Quantile levels of the cut points: k / bins for k = 1..bins-1, plus (1 / bins) / 2^j and
    1 - (1 / bins) / 2^j for j >= 1 while each tail bin keeps >= `min_count` reference values.

    The finer tail levels cost ~2 log2(n / (10 bins)) bins (10 for 20k values, 50 bins) and keep
    the outermost bins narrow, which is what the Wasserstein interpolation needs: with k / bins
    alone the outer bins span [min, 2 % quantile], ~2 std for a normal reference, and W read up
    to 18 % high on a 1-std shift; with the tail levels, within 8.5 %.
    """
    base = np.arange(1, int(bins)) / int(bins)
    tail = (1.0 / int(bins)) * 0.5 ** np.arange(1, 64)
    tail = tail[tail * n >= min_count]
    return np.concatenate((tail[::-1], base, 1.0 - tail))


def numeric_reference(values: np.ndarray, bins: int = 50) -> NumericReference:
    """Quantile bins of the reference sample: cut points at the reference quantiles ``tail_levels``
    (k / bins, and finer levels in both tails), plus guard edges lo and nextafter(hi).

    Non-finite values are dropped. Cut points are reference values (``inverted_cdf``), so ties
    collapse to one edge (a value holding 30 % of the reference gets one bin with share 0.3).
    ``bins()`` is therefore about bins + 2 + 2 log2(n / (10 bins)), fewer with ties.
    ``std`` is ``np.std`` (ddof 0), as Evidently.
    """
    if int(bins) < 2:
        raise ValueError(f"bins: must be >= 2, got {bins}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        raise ValueError("values: the reference has no finite values")
    lo, hi = float(v[0]), float(v[-1])
    cuts = np.quantile(v, tail_levels(int(bins), v.size), method="inverted_cdf")
    edges = np.unique(np.concatenate(([lo], cuts, [np.nextafter(hi, np.inf)])))
    idx = np.searchsorted(edges, v, side="right")
    probs = np.bincount(idx, minlength=edges.size + 1) / v.size
    return NumericReference(edges=edges, probs=probs, n=int(v.size), lo=lo, hi=hi, std=float(np.std(v)))


def categorical_reference(values: list[Any], max_categories: int = 50) -> CategoricalReference:
    """The `max_categories` most frequent categories (ties by name) and their shares.

    Values are compared as ``str(value)``; None and NaN are skipped. The last share is the
    reference mass of all other categories (0 when the reference has <= max_categories).
    """
    if int(max_categories) < 1:
        raise ValueError(f"max_categories: must be >= 1, got {max_categories}")
    vals = _as_list(values)
    present = np.flatnonzero(~_missing(vals)).tolist()
    if not present:
        raise ValueError("values: the reference has no non-missing values")
    strings = np.array(list(map(str, map(vals.__getitem__, present))), dtype=str)
    names, counts = np.unique(strings, return_counts=True)
    order = np.lexsort((names, -counts))[: int(max_categories)]
    top = counts[order]
    probs = np.append(top, strings.size - top.sum()) / strings.size
    return CategoricalReference(categories=tuple(str(x) for x in names[order]), probs=probs, n=int(strings.size))


def reference_from_dict(d: dict[str, Any]) -> Reference:
    """Rebuild a reference from its ``to_dict`` form, dispatching on ``d["kind"]``."""
    kind = d.get("kind")
    if kind == "numeric":
        return NumericReference.from_dict(d)
    if kind == "categorical":
        return CategoricalReference.from_dict(d)
    raise ValueError(f"kind: must be 'numeric' or 'categorical', got {kind!r}")


# --------------------------------------------------------------------------------------------- statistics


@functools.cache
def _special() -> Any:
    """scipy.special, imported when a statistic is first computed: importing scipy costs ~0.3-1 s,
    which every command (`--help` included) would otherwise pay at start. Cached: a `from` import
    in a hot function costs a trip through importlib per call."""
    from scipy import special

    return special


def ks_p_value(d: float, n: int, m: int, exact: bool = False) -> float:
    """Two-sided two-sample KS p-value of statistic `d` for sample sizes n and m.

    As ``ks_2samp(method="asymp")``: the one-sample distribution at en = round(n m / (n + m)).
    Default: Stephens' approximation kolmogorov((sqrt(en) + 0.12 + 0.11 / sqrt(en)) d), 0.3 us,
    within 0.001 of ``scipy.stats.kstwo.sf(d, en)`` wherever that is <= 0.1 and within 0.023
    anywhere (en >= 10). ``exact=True``: ``kstwo.sf(d, en)`` itself, 0.1-140 ms per call.
    """
    en = max(1, round(n * m / (n + m)))
    if exact:
        from scipy import stats

        return min(1.0, max(0.0, float(stats.kstwo.sf(d, en))))
    s = math.sqrt(en)
    return min(1.0, max(0.0, float(_special().kolmogorov((s + 0.12 + 0.11 / s) * d))))


def _gap(ref: NumericReference, c: np.ndarray, m: float) -> np.ndarray:
    """F_ref - F_cur at -inf and at the right end of every bin (first and last entries ~0)."""
    g = np.empty(c.size + 1)
    g[0] = 0.0
    cur = c.cumsum()
    cur /= m
    np.subtract(ref._cdf, cur, out=g[1:])
    return g


def _wasserstein(ref: NumericReference, g: np.ndarray, a: np.ndarray) -> float:
    """sum_i w_i integral of |gap| over bin i, the gap linear from g[i] to g[i + 1]; a = |g|.

    Per bin: T / 2 - |g0 g1| / T if the gap changes sign (T = |g0| + |g1|), else T / 2,
    i.e. T / 2 + min(g0 g1, 0) / T.
    """
    t = a[:-1] + a[1:]
    cross = g[:-1] * g[1:]
    np.minimum(cross, 0.0, out=cross)
    cross /= t + 1e-300  # 0 / tiny = 0 where both ends are 0
    return (0.5 * float(ref._widths @ t) + float(ref._widths @ cross)) / ref._scale


def ks_from_counts(ref: NumericReference, counts: np.ndarray, exact: bool = False) -> tuple[float, float]:
    """Two-sample KS from bin counts: (D, p-value).

    D = max_i |F_ref(e_i) - F_cur(e_i)| over the edges e_i, with F(e) the share of values < e.
    ks_2samp's exact D on the raw values satisfies D <= D_exact <= D + ``ks_binning_error``.
    p = Q_KS(D) at en = round(n m / (n + m)), n = ref.n, m = counts.sum(): Stephens'
    approximation Q(x) = kolmogorov((sqrt(en) + 0.12 + 0.11 / sqrt(en)) D) by default
    (|p - kstwo.sf(D, en)| <= 0.001 where that is <= 0.1, <= 0.023 anywhere, en >= 10), or
    ``scipy.stats.kstwo.sf(D, en)`` itself with ``exact=True`` (0.1-140 ms). Empty counts -> (nan, nan).
    """
    c = _as_counts(ref, counts)
    m = float(np.add.reduce(c))
    if m <= 0:
        return math.nan, math.nan
    d = float(np.abs(_gap(ref, c, m)).max())
    return d, ks_p_value(d, ref.n, round(m), exact)


def ks_binning_error(ref: NumericReference, counts: np.ndarray) -> float:
    """Bound on exact-minus-binned KS: max_i min(p_i, q_i) over bins (p reference, q current shares).

    Inside bin i both CDFs move by at most their share in it, so the gap anywhere in the bin
    exceeds the gap at its edges by at most min(p_i, q_i). Always <= max(ref.probs).
    """
    c = _as_counts(ref, counts)
    m = float(np.add.reduce(c))
    if m <= 0:
        return math.nan
    return float(np.max(np.minimum(ref.probs, c / m)))


def chi_square_from_counts(
    ref: CategoricalReference, counts: np.ndarray, eps: float = SHARE_FLOOR
) -> tuple[float, float]:
    """Pearson goodness of fit of the current counts to the reference shares: (chi2, p-value).

    chi2 = sum_i (o_i - e_i)^2 / e_i with e_i = r_i m, as ``scipy.stats.chisquare(o, r * m)``.
    Zero and small reference shares: a bin with reference share 0 and no current values is
    left out (it has nothing to say); every other share is floored at `eps` and the shares
    renormalised, so a category unseen in the reference (expected ~eps m) makes the statistic
    large -- new categories are drift. Degrees of freedom = bins kept - 1; p = chi2.sf(chi2, dof).
    Empty counts -> (nan, nan); a single bin kept -> (0, 1).
    """
    c = _as_counts(ref, counts)
    m = float(np.add.reduce(c))
    if m <= 0:
        return math.nan, math.nan
    keep = (ref.probs > 0) | (c > 0)
    shares = np.maximum(ref.probs[keep], eps)
    expected = shares * (m / shares.sum())
    dof = int(keep.sum()) - 1
    if dof < 1:
        return 0.0, 1.0
    stat = float((((c[keep] - expected) ** 2) / expected).sum())
    return stat, float(_special().chdtrc(dof, stat))


def psi(ref_probs: np.ndarray, counts: np.ndarray, eps: float = SHARE_FLOOR) -> float:
    """Population Stability Index: sum_i (c_i - r_i) ln(c_i / r_i), shares floored at `eps`.

    r = reference shares, c = counts / counts.sum(). 0.1 is a moderate, 0.25 a significant shift.
    Not renormalised after flooring (as Evidently). Empty counts -> nan.
    """
    c = np.asarray(counts, dtype=np.float64)
    m = float(np.add.reduce(c))
    if m <= 0:
        return math.nan
    return _psi(np.maximum(ref_probs, eps), c, m, eps)


def _psi(r: np.ndarray, c: np.ndarray, m: float, eps: float = SHARE_FLOOR) -> float:
    """PSI with the reference shares `r` already floored."""
    q = c / m
    np.maximum(q, eps, out=q)
    diff = q - r
    q /= r
    np.log(q, out=q)
    return float(diff @ q)


def _coarse_starts(probs: np.ndarray, bins: int) -> np.ndarray:
    cum = np.cumsum(probs)
    group = np.clip(np.floor((cum - probs / 2) * bins), 0, bins - 1)  # by the midpoint of each bin's mass
    return np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1))


def coarsen(ref: NumericReference, counts: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent fine bins into about `bins` groups of equal reference mass: (ref_probs, counts).

    A fine bin joins group floor(bins * (F_ref before it + half its share)); a tie heavier than
    1/bins stays one group, so fewer groups come out. Guard bins join the outer groups.
    """
    if int(bins) < 1:
        raise ValueError(f"bins: must be >= 1, got {bins}")
    return _coarsen(ref, _as_counts(ref, counts), int(bins))


def _coarsen(ref: NumericReference, c: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    cached = ref.__dict__.get(f"_coarse_{bins}")
    if cached is None:  # the reference is immutable: cache its grouping and coarse shares
        starts = _coarse_starts(ref.probs, bins)
        coarse = np.add.reduceat(ref.probs, starts)
        cached = ref.__dict__[f"_coarse_{bins}"] = (starts, coarse, np.maximum(coarse, SHARE_FLOOR))
    return cached[1], np.add.reduceat(c, cached[0])


def wasserstein_from_counts(ref: NumericReference, counts: np.ndarray) -> float:
    """Normalised W1 = (integral |F_ref(x) - F_cur(x)| dx) / ref.std from bin counts.

    Both CDFs are taken linear inside each bin, bins bounded by lo, edges, hi (values outside
    [lo, hi] sit at lo / hi); on each bin the gap g(x) is linear from g0 to g1, so its integral
    of |g| is w (|g0| + |g1|) / 2 without a sign change and w (g0^2 + g1^2) / (2 (|g0| + |g1|))
    with one. Error vs the raw-value W1 <= sum_i w_i (p_i + q_i) / std in theory; measured on
    normal, log-normal and exponential references (20k values, default bins) and shifts inside
    the reference range: <= 0.01 where W <= 0.25, <= 10 % of W above. A zero std divides by 1.
    Empty counts -> nan.
    """
    c = _as_counts(ref, counts)
    m = float(np.add.reduce(c))
    if m <= 0:
        return math.nan
    g = _gap(ref, c, m)
    return _wasserstein(ref, g, np.abs(g))


def jensen_shannon(ref_probs: np.ndarray, counts: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1]): sqrt((KL(p || a) + KL(q || a)) / 2), a = (p + q) / 2.

    p = ref_probs and q = counts, each normalised to sum 1, as
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Empty counts -> nan.
    """
    q = np.asarray(counts, dtype=np.float64)
    m = float(np.add.reduce(q))
    if m <= 0:
        return math.nan
    p = np.asarray(ref_probs, dtype=np.float64)
    p = p / p.sum()
    q = q / m
    a = (p + q) * 0.5
    special = _special()
    js = float(special.rel_entr(p, a).sum() + special.rel_entr(q, a).sum()) / _LN2
    return math.sqrt(max(js, 0.0) / 2.0)


def bh_adjust(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, as ``scipy.stats.false_discovery_control(p)``.

    adj_(i) = min_{j >= i} min(1, p_(j) m / j) over the sorted p-values; NaN entries are left out
    of the family (m counts the others) and stay NaN.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    ps = p[ok]
    m = ps.size
    if m == 0:
        return out
    order = np.argsort(ps)
    adj = ps[order] * (m / np.arange(1, m + 1, dtype=np.float64))
    adj = np.minimum.accumulate(adj[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.clip(adj, 0.0, 1.0)
    out[ok] = res
    return out


def benjamini_hochberg(p_values: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Rejected hypotheses of the Benjamini-Hochberg step-up procedure at FDR `alpha` (bool mask).

    Reject the k smallest p-values, k the largest rank with p_(k) <= k alpha / m; equivalently
    ``false_discovery_control(p) <= alpha``. NaN p-values are never rejected and not counted in m.
    """
    return np.nan_to_num(bh_adjust(p_values), nan=np.inf) <= alpha


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
    c = _as_counts(ref, counts)
    m = float(np.add.reduce(c))
    n = round(m)
    judged = n >= rule.min_samples
    if isinstance(ref, NumericReference):
        if m <= 0:
            return FeatureDrift(feature, 0, "ks", math.nan, math.nan, "wasserstein", math.nan, math.nan, judged, False)
        g = _gap(ref, c, m)
        a = np.abs(g)
        d = float(a.max())
        coarse = _coarsen(ref, c, rule.psi_bins)[1]
        floored = ref.__dict__[f"_coarse_{rule.psi_bins}"][2]
        return FeatureDrift(
            feature,
            n,
            "ks",
            d,
            ks_p_value(d, ref.n, n),
            "wasserstein",
            _wasserstein(ref, g, a),
            _psi(floored, coarse, m),
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
