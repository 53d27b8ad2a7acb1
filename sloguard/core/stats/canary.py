"""Canary analysis: is the canary worse than stable, by enough evidence, and could we afford it?

For one SLI at a time this module compares a canary's traffic against stable's and returns a
`Comparison` whose `verdict` is

* ``fail``: the canary is worse with p < alpha (and by more than ``min_effect``): roll back;
* ``inconclusive``: fewer than ``min_samples`` per variant, or no data at all: hold. Too little
  traffic is never a pass (Kayenta's *mustHaveData*);
* ``pass``: enough data and no significant regression.

Tests (one-sided: only "canary worse" matters):

* ratio SLIs (availability, latency under a threshold, freshness...): the **two-proportion
  z-test** on bad-event counts with the pooled variance, the same formula as statsmodels'
  ``proportions_ztest``: ``p = (x1 + x2) / (n1 + n2)``, ``z = (x1/n1 - x2/n2) /
  sqrt(p (1 - p) (1/n1 + 1/n2))``, ``p-value = P(Z >= z)``;
* latency-like values: **Mann-Whitney U** (``scipy.stats.mannwhitneyu``) on raw samples, or the
  same statistic computed from two histograms on shared bins (values in one bin count as ties:
  midranks and the tie-corrected normal approximation with continuity correction; it equals
  scipy's asymptotic result on the expanded samples, without expanding them).

A **blast-radius** check answers a different question: if the canary's bad rate served all
traffic, would it spend the remaining error budget within the SLO window? At burn rate
``b = rate / (1 - target)`` the remaining fraction ``r`` lasts ``r x window / b``; it is
exhausted within the window when ``b >= r``. This ignores old bad events ageing out of the
window, so it errs on the side of holding.

Pure: no I/O, no clock. `sloguard.core.rollout.policy` feeds it counts folded from ``slo.budget`` events whose
segment is ``{"variant": "canary"|"stable"}``; anything else can call it with raw counts.

>>> c = compare_ratio("fraud-availability", Counts(bad=60, total=2000), Counts(bad=40, total=20000))
>>> c.verdict, round(c.statistic, 2), c.p_value < 1e-20
('fail', 17.75, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "PASS",
    "BlastRadius",
    "BudgetContext",
    "Comparison",
    "Counts",
    "blast_radius",
    "compare_histograms",
    "compare_ratio",
    "compare_samples",
    "mann_whitney_from_histograms",
    "two_proportion_ztest",
]

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
Z_TEST = "two-proportion-z"
MANN_WHITNEY = "mann-whitney-u"


@dataclass(frozen=True)
class Counts:
    """Bad events out of all events of one variant (floats: counts may come from rates)."""

    bad: float
    total: float

    @property
    def rate(self) -> float | None:
        """Bad fraction, None without events."""
        return self.bad / self.total if self.total > 0 else None

    def as_dict(self) -> dict[str, Any]:
        rate = self.rate
        return {"bad": _num(self.bad), "total": _num(self.total), "bad_rate": None if rate is None else _num(rate)}


@dataclass(frozen=True)
class BudgetContext:
    """What the blast-radius check needs: the SLO's error budget (1 - target), the fraction of it
    left, and the SLO window."""

    error_budget: float
    remaining: float
    window_s: float


@dataclass(frozen=True)
class BlastRadius:
    """The canary's bad rate served to all traffic, against the budget that is left."""

    burn_rate: float
    remaining: float
    time_to_exhaustion_s: float | None  # None: the canary burns nothing
    window_s: float
    exhausts: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "burn_rate": _num(self.burn_rate),
            "budget_remaining": _num(self.remaining),
            "time_to_exhaustion_s": None if self.time_to_exhaustion_s is None else _num(self.time_to_exhaustion_s),
            "window_s": _num(self.window_s),
            "exhausts_budget": self.exhausts,
        }


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing canary with stable on one SLI."""

    slo: str
    test: str
    verdict: str  # pass | fail | inconclusive
    message: str
    alpha: float
    min_samples: int
    p_value: float | None = None
    statistic: float | None = None
    effect: float | None = None  # rate difference (z-test) or P(canary > stable) - 1/2 (U test)
    canary: dict[str, Any] = field(default_factory=dict)
    stable: dict[str, Any] = field(default_factory=dict)
    blast: BlastRadius | None = None
    lookback: str | None = None

    @property
    def blast_exceeded(self) -> bool:
        return self.blast is not None and self.blast.exhausts

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slo": self.slo,
            "test": self.test,
            "verdict": self.verdict,
            "p_value": None if self.p_value is None else _num(self.p_value),
            "statistic": None if self.statistic is None else _num(self.statistic),
            "effect": None if self.effect is None else _num(self.effect),
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "canary": self.canary,
            "stable": self.stable,
            "message": self.message,
        }
        if self.lookback is not None:
            out["lookback"] = self.lookback
        if self.blast is not None:
            out["blast_radius"] = self.blast.as_dict()
        return out


def two_proportion_ztest(
    bad_canary: float, n_canary: float, bad_stable: float, n_stable: float, alternative: str = "larger"
) -> tuple[float, float]:
    """(z, p-value) of H0 "equal bad rates" with the pooled variance (statsmodels' formula).

    ``alternative``: ``larger`` (canary's rate is higher), ``smaller`` or ``two-sided``. When
    neither variant has a bad event (or both have only bad ones) the variance is 0 and there is no
    evidence of a difference: (0.0, 1.0).
    """
    if n_canary <= 0 or n_stable <= 0:
        raise ValueError("both variants need events")
    p1, p2 = bad_canary / n_canary, bad_stable / n_stable
    pooled = (bad_canary + bad_stable) / (n_canary + n_stable)
    var = pooled * (1 - pooled) * (1 / n_canary + 1 / n_stable)
    if var <= 0:
        return 0.0, 1.0
    z = (p1 - p2) / math.sqrt(var)
    if alternative == "larger":
        p = _sf(z)
    elif alternative == "smaller":
        p = _sf(-z)
    elif alternative == "two-sided":
        p = 2 * _sf(abs(z))
    else:
        raise ValueError(f"alternative must be larger, smaller or two-sided, got {alternative!r}")
    return float(z), p


def mann_whitney_from_histograms(
    canary_counts: Sequence[float], stable_counts: Sequence[float], alternative: str = "greater"
) -> tuple[float, float]:
    """(U of the canary, p-value) from counts on the same bins, lowest bin first.

    Values sharing a bin are ties. Uses midranks and the tie-corrected normal approximation with
    continuity correction, i.e. ``scipy.stats.mannwhitneyu(..., method="asymptotic")`` on the
    expanded samples, in O(bins). ``alternative="greater"``: canary values tend to be larger.
    """
    c = np.asarray(canary_counts, dtype=float)
    s = np.asarray(stable_counts, dtype=float)
    if c.shape != s.shape or c.ndim != 1:
        raise ValueError("histograms must have the same bins")
    if (c < 0).any() or (s < 0).any():
        raise ValueError("histogram counts must be >= 0")
    n1, n2 = float(c.sum()), float(s.sum())
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both variants need samples")
    t = c + s
    n = n1 + n2
    before = np.cumsum(t) - t
    midrank = before + (t + 1) / 2
    u1 = float((c * midrank).sum() - n1 * (n1 + 1) / 2)
    mu = n1 * n2 / 2
    tie = float((t**3 - t).sum())
    var = n1 * n2 / 12 * ((n + 1) - tie / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:  # every value in one bin: no evidence either way
        return u1, 1.0
    sd = math.sqrt(var)
    if alternative == "greater":
        p = _sf((u1 - mu - 0.5) / sd)
    elif alternative == "less":
        p = _sf(-(u1 - mu + 0.5) / sd)
    elif alternative == "two-sided":
        p = min(1.0, 2 * _sf((abs(u1 - mu) - 0.5) / sd))
    else:
        raise ValueError(f"alternative must be greater, less or two-sided, got {alternative!r}")
    return u1, min(1.0, p)


def blast_radius(bad_rate: float, budget: BudgetContext) -> BlastRadius:
    """Would ``bad_rate`` at full traffic spend ``budget.remaining`` within the SLO window?"""
    if budget.error_budget <= 0:
        raise ValueError("error budget must be > 0")
    burn = bad_rate / budget.error_budget
    remaining = budget.remaining
    if remaining <= 0:
        return BlastRadius(burn, remaining, 0.0, budget.window_s, True)
    if burn <= 0:
        return BlastRadius(burn, remaining, None, budget.window_s, False)
    tte = remaining * budget.window_s / burn
    return BlastRadius(burn, remaining, tte, budget.window_s, tte <= budget.window_s)


def compare_ratio(
    slo: str,
    canary: Counts,
    stable: Counts,
    *,
    alpha: float = 0.05,
    min_samples: int = 1000,
    min_effect: float = 0.0,
    budget: BudgetContext | None = None,
    lookback: str | None = None,
) -> Comparison:
    """Two-proportion z-test of the canary's bad rate against stable's (one-sided: canary worse).

    ``min_effect``: the rate difference must also exceed this to fail (0: any significant one).
    ``budget``: adds the blast-radius check of the canary's rate at full traffic.
    """
    base = dict(slo=slo, test=Z_TEST, alpha=alpha, min_samples=min_samples, lookback=lookback)
    cd, sd = canary.as_dict(), stable.as_dict()
    over = f" over {lookback}" if lookback else ""
    short = _short_of(canary.total, stable.total, min_samples)
    if short:
        return Comparison(
            **base,
            verdict=INCONCLUSIVE,
            canary=cd,
            stable=sd,
            message=f"{slo}: {short}{over}, need {min_samples} per variant: no verdict, hold",
        )
    z, p = two_proportion_ztest(canary.bad, canary.total, stable.bad, stable.total)
    rc, rs = canary.rate or 0.0, stable.rate or 0.0
    effect = rc - rs
    blast = blast_radius(rc, budget) if budget is not None else None
    rates = (
        f"canary bad rate {_pct(rc)} ({_count(canary.bad)}/{_count(canary.total)}) vs stable "
        f"{_pct(rs)} ({_count(stable.bad)}/{_count(stable.total)}){over}"
    )
    stat = f"two-proportion z = {z:.2f}, one-sided p = {_p(p)}"
    verdict, tail = _verdict(p, alpha, effect, min_effect, stat)
    return Comparison(
        **base,
        verdict=verdict,
        p_value=p,
        statistic=z,
        effect=effect,
        canary=cd,
        stable=sd,
        blast=blast,
        message=f"{slo}: {rates}; {tail}",
    )


def compare_samples(
    slo: str,
    canary: Sequence[float] | np.ndarray,
    stable: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    min_samples: int = 1000,
    min_effect: float = 0.0,
    higher_is_worse: bool = True,
    unit: str = "",
) -> Comparison:
    """Mann-Whitney U on raw values (e.g. latencies) via ``scipy.stats.mannwhitneyu``.

    One-sided: fails when canary values tend to be worse (larger when ``higher_is_worse``). The
    effect is ``U / (n1 n2) - 1/2`` signed so that positive means worse.
    """
    c = np.asarray(canary, dtype=float)
    s = np.asarray(stable, dtype=float)
    c, s = c[np.isfinite(c)], s[np.isfinite(s)]
    base = dict(slo=slo, test=MANN_WHITNEY, alpha=alpha, min_samples=min_samples)
    cd: dict[str, Any] = {"n": int(c.size), "median": _num(float(np.median(c))) if c.size else None}
    sd: dict[str, Any] = {"n": int(s.size), "median": _num(float(np.median(s))) if s.size else None}
    short = _short_of(c.size, s.size, min_samples)
    if short:
        return Comparison(
            **base,
            verdict=INCONCLUSIVE,
            canary=cd,
            stable=sd,
            message=f"{slo}: {short}, need {min_samples} per variant: no verdict, hold",
        )
    alternative = "greater" if higher_is_worse else "less"
    from scipy import stats  # imported when used: scipy.stats costs ~1 s, and `sloguard --help` should not

    res = stats.mannwhitneyu(c, s, alternative=alternative)
    u, p = float(res.statistic), float(res.pvalue)
    return _u_verdict(base, u, p, c.size, s.size, cd, sd, min_effect, higher_is_worse, unit)


def compare_histograms(
    slo: str,
    edges: Sequence[float],
    canary_counts: Sequence[float],
    stable_counts: Sequence[float],
    *,
    alpha: float = 0.05,
    min_samples: int = 1000,
    min_effect: float = 0.0,
    higher_is_worse: bool = True,
    unit: str = "",
) -> Comparison:
    """Mann-Whitney U from two histograms on the same ``edges`` (len(edges) == bins + 1, or bins
    when the last bin is open-ended); see `mann_whitney_from_histograms`."""
    c = np.asarray(canary_counts, dtype=float)
    s = np.asarray(stable_counts, dtype=float)
    if c.shape != s.shape or len(edges) not in (c.size, c.size + 1):
        raise ValueError("canary and stable histograms need the same bins and edges")
    n1, n2 = float(c.sum()), float(s.sum())
    cd: dict[str, Any] = {"n": _num(n1), "median": _hist_median(edges, c)}
    sd: dict[str, Any] = {"n": _num(n2), "median": _hist_median(edges, s)}
    base = dict(slo=slo, test=MANN_WHITNEY, alpha=alpha, min_samples=min_samples)
    short = _short_of(n1, n2, min_samples)
    if short:
        return Comparison(
            **base,
            verdict=INCONCLUSIVE,
            canary=cd,
            stable=sd,
            message=f"{slo}: {short}, need {min_samples} per variant: no verdict, hold",
        )
    alternative = "greater" if higher_is_worse else "less"
    u, p = mann_whitney_from_histograms(c, s, alternative)
    return _u_verdict(base, u, p, n1, n2, cd, sd, min_effect, higher_is_worse, unit)


def _u_verdict(
    base: dict[str, Any],
    u: float,
    p: float,
    n1: float,
    n2: float,
    cd: dict[str, Any],
    sd: dict[str, Any],
    min_effect: float,
    higher_is_worse: bool,
    unit: str,
) -> Comparison:
    superiority = u / (n1 * n2)  # P(canary > stable) + P(tie) / 2
    effect = superiority - 0.5 if higher_is_worse else 0.5 - superiority
    slo, alpha = base["slo"], base["alpha"]
    medians = f"canary median {_val(cd.get('median'), unit)} vs stable {_val(sd.get('median'), unit)}"
    stat = f"Mann-Whitney U = {u:.0f} (n = {_count(n1)}/{_count(n2)}), one-sided p = {_p(p)}"
    verdict, tail = _verdict(p, alpha, effect, min_effect, stat)
    return Comparison(
        **base,
        verdict=verdict,
        p_value=p,
        statistic=u,
        effect=effect,
        canary=cd,
        stable=sd,
        message=f"{slo}: {medians}; {tail}",
    )


def _sf(z: float) -> float:
    """Upper tail of the standard normal, P(Z >= z): the kernel `scipy.stats.norm.sf` evaluates
    (`scipy.special.ndtr(-z)`), called directly because the distribution object costs ~65 us a
    call and a gate decision runs one test per SLI."""
    from scipy import special

    return float(special.ndtr(-z))


def _short_of(n_canary: float, n_stable: float, min_samples: int) -> str:
    """'' when both variants have enough samples, else what is missing."""
    if n_canary <= 0 and n_stable <= 0:
        return "no canary and no stable traffic"
    parts = []
    if n_canary < min_samples:
        parts.append(f"only {_count(n_canary)} canary events")
    if n_stable < min_samples:
        parts.append(f"only {_count(n_stable)} stable events")
    return " and ".join(parts)


def _hist_median(edges: Sequence[float], counts: np.ndarray) -> float | None:
    """Lower edge of the bin holding the median (histograms cannot say more)."""
    total = float(counts.sum())
    if total <= 0:
        return None
    i = int(np.searchsorted(np.cumsum(counts), total / 2))
    return _num(float(edges[min(i, len(edges) - 1)]))


def _num(x: float) -> float:
    """A JSON-safe float: finite, rounded to 6 significant digits."""
    if not math.isfinite(x):
        return 0.0
    return float(f"{x:.6g}")


def _verdict(p: float, alpha: float, effect: float, min_effect: float, stat: str) -> tuple[str, str]:
    """FAIL when the canary is significantly (p < alpha) and materially (effect > min_effect) worse."""
    if p < alpha and effect > min_effect:
        return FAIL, f"{stat} < {alpha:g}: canary is worse"
    return PASS, f"{stat}: no significant regression"


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _count(x: float) -> str:
    return f"{x:,.0f}" if abs(x - round(x)) < 1e-6 or x >= 100 else f"{x:.1f}"


def _p(p: float) -> str:
    return "< 1e-300" if p <= 0 else f"{p:.2g}"


def _val(x: Any, unit: str) -> str:
    return "n/a" if x is None else f"{x:g}{(' ' + unit) if unit else ''}"
