"""Pixels -> circuit inputs: PCA fitted on the target's training records, then scaling."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qmu_core.config import FeatureSpec
from qmu_core.qnn.encoding import encoding_named

__all__ = ["VARIANCE_FLOOR", "FeatureMap"]

VARIANCE_FLOOR = 1e-10
"""PCA components explaining less than this share of the largest component's variance are dropped."""


@dataclass(frozen=True)
class FeatureMap:
    """Pixels -> circuit inputs: PCA fitted on the target's training records, then scaling.

    Then the encoding's scaling (`qmu_core.qnn.encoding.Encoding.scale`): angle encoding min-max
    scales each component to [0, pi] on the training records (and clips); amplitude encoding
    keeps them (the model normalizes). Either way they are zero-padded to ``n_out``.
    """

    encoding: str
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d)
    lo: np.ndarray  # (k,)
    hi: np.ndarray  # (k,)
    n_out: int

    def project(self, pixels: np.ndarray) -> np.ndarray:
        """PCA coordinates (N, k) in float64: the one projection `fit` and `transform` share."""
        return (np.asarray(pixels, dtype=np.float64) - self.mean) @ self.components.T

    def transform(self, pixels: np.ndarray) -> np.ndarray:
        """Map flattened pixels (N, d) to features (N, n_out) float32."""
        z = encoding_named(self.encoding).scale(self.project(pixels), self.lo, self.hi)
        out = np.zeros((len(pixels), self.n_out), dtype=np.float32)
        out[:, : z.shape[1]] = z
        return out

    def to_frame(self) -> pd.DataFrame:
        """Long form for the `feature_map` artifact."""
        rows = [("mean", 0, self.mean), ("lo", 0, self.lo), ("hi", 0, self.hi)]
        rows += [("component", i, c) for i, c in enumerate(self.components)]
        return pd.DataFrame(
            {
                "name": [r[0] for r in rows],
                "row": [r[1] for r in rows],
                "values": [np.asarray(r[2], dtype=np.float64) for r in rows],
            }
        )

    @classmethod
    def fit(cls, pixels: np.ndarray, spec: FeatureSpec) -> FeatureMap:
        """Fit PCA (and the angle scaling) on training pixels (N, d).

        Everything runs in float64, and the angle bounds come from `project`, the same
        computation `transform` uses: the training records then map exactly onto [0, pi], and
        BLAS kernels of other CPUs change the features by float64 rounding only (far below the
        float32 the model reads).
        """
        from sklearn.decomposition import PCA

        x = np.asarray(pixels, dtype=np.float64)
        k = min(spec.n_components, x.shape[0], x.shape[1])
        pca = PCA(n_components=k, svd_solver="full").fit(x)
        # Directions without variance (pixels that never change, e.g. the digits' borders) are
        # arbitrary: the BLAS kernel picks them. They carry nothing, so they are dropped (their
        # features stay 0) and the features are the same on every CPU.
        variance = pca.explained_variance_
        largest = float(variance.max(initial=0.0))
        kept = variance > VARIANCE_FLOOR * max(largest, float(np.finfo(np.float64).tiny))
        fitted = cls(
            encoding=spec.encoding,
            mean=pca.mean_.astype(np.float64),
            components=pca.components_[kept].astype(np.float64),
            lo=np.zeros(int(kept.sum())),
            hi=np.ones(int(kept.sum())),
            n_out=spec.n_components,
        )
        z = fitted.project(x)
        return dataclasses.replace(fitted, lo=z.min(axis=0), hi=z.max(axis=0))
