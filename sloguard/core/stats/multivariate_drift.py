"""Multivariate drift: PCA reconstruction error of a set of numeric features (NannyML's method).

Per-feature tests compare marginals: when two features keep their distributions but their
correlation flips (amount and merchant risk rose together; now they move apart), no single
feature drifts, yet the model sees inputs unlike anything it was trained on. NannyML's data
reconstruction drift (https://nannyml.readthedocs.io/en/stable/how_it_works/multivariate_drift.html)
catches it:

1. On the reference (`sloguard baseline`): impute missing values with the feature mean,
   standardise (z = (x - mean) / std), and fit PCA keeping the fewest components that explain at
   least 65 % of the variance (scikit-learn's ``PCA(n_components=0.65)``). The kept components
   describe the reference's joint structure.
2. Per prediction: project z on the components and back; the reconstruction error is
   ``|| z - z C^T C ||`` (Euclidean). Inputs that follow the reference's correlations reconstruct
   well; inputs that break them do not.
3. Per slice: the mean error = (sum of errors) / n. The per-slice sums ``[n, sum error]`` add
   up, so windows, shards and workers merge by addition. A slice's value is its mean error
   divided by the reference's mean error (1.0: as the reference); the objective bounds that ratio.

Numeric features only; categorical ones are left to the per-feature `drift` SLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EXPLAINED_VARIANCE = 0.65  # NannyML's default n_components
MIN_REFERENCE_ROWS = 50


def reference_key(features: tuple[str, ...] | list[str]) -> str:
    """The baseline file's key of a feature set: its names sorted, comma-joined."""
    return ",".join(sorted(features))


@dataclass(frozen=True)
class PcaReference:
    """Mean, scale and principal components of a feature set on the reference, and its mean error."""

    features: tuple[str, ...]  # sorted
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,), population std (1 where constant)
    components: np.ndarray  # (k, d), orthonormal rows
    reference_error: float  # mean reconstruction error on the reference rows
    samples: int

    @staticmethod
    def fit(features: tuple[str, ...], values: np.ndarray) -> PcaReference:
        """Fit on reference rows `values` (n x d, NaN = missing), columns in `features` order."""
        order = np.argsort(features)
        names = tuple(np.asarray(features)[order].tolist())
        x = np.asarray(values, np.float64)[:, order]
        if x.ndim != 2 or x.shape[1] < 2 or x.shape[0] < MIN_REFERENCE_ROWS:
            raise ValueError(f"needs at least {MIN_REFERENCE_ROWS} rows of at least 2 features, got {x.shape}")
        mean = np.nanmean(x, axis=0)
        x = np.where(np.isnan(x), mean, x)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        _, singular, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
        ratio = singular**2 / np.sum(singular**2)
        k = min(int(np.searchsorted(np.cumsum(ratio), EXPLAINED_VARIANCE, side="right")) + 1, len(ratio))
        ref = PcaReference(names, mean, scale, vt[:k], 0.0, len(x))
        return PcaReference(names, mean, scale, vt[:k], float(ref.errors(x).mean()), len(x))

    def errors(self, values: np.ndarray) -> np.ndarray:
        """Per row (columns in `self.features` order), the reconstruction error; missing -> the mean."""
        x = np.asarray(values, np.float64)
        z = np.where(np.isnan(x), 0.0, (x - self.mean) / self.scale)
        return np.linalg.norm(z - (z @ self.components.T) @ self.components, axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "components": self.components.tolist(),
            "reference_error": self.reference_error,
            "samples": self.samples,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> PcaReference:
        features = tuple(d["features"])
        mean, scale = np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64)
        components = np.asarray(d["components"], np.float64)
        if len(features) < 2 or mean.shape != (len(features),) or scale.shape != mean.shape:
            raise ValueError("features, mean and scale must have the same length (at least 2)")
        if components.ndim != 2 or components.shape[1] != len(features) or np.any(scale <= 0):
            raise ValueError("components must be a (k, features) matrix and scales positive")
        if not float(d["reference_error"]) > 0:
            raise ValueError("reference_error must be positive")
        return PcaReference(features, mean, scale, components, float(d["reference_error"]), int(d.get("samples", 0)))


def error_cells(start: int, errors: np.ndarray, answered: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Cells of a ``[n, sum error]`` block at column `start`, for `summary.fold_cells`."""
    col = np.where(answered, start, -1)
    return [(col, None), (np.where(answered, start + 1, -1), errors)]


def error_ratio(sums: np.ndarray, reference_error: float) -> tuple[float, int]:
    """A slice's mean reconstruction error over the reference's, and its sample count."""
    n = float(sums[0])
    return (float(sums[1]) / n / reference_error if n > 0 else float("nan")), round(n)
