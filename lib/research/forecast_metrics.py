"""Out-of-sample scores of probability forecasts: AUC, log loss, Brier score, reliability tables.

Used by :mod:`lib.research.training` to compare ``quantum_ai``'s candidates and the base-rate predictor.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def auc(y: FloatArray, score: FloatArray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with a single class."""
    positives = float(y.sum())
    negatives = float(y.shape[0] - positives)
    if positives == 0 or negatives == 0:
        return float("nan")
    _values, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    # Average rank of each distinct value (1-based), so tied scores share their ranks.
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0
    rank_sum = float(average_rank[inverse][y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(y: FloatArray, p: FloatArray) -> float:
    """Mean binary cross-entropy (natural log), probabilities clipped to 1e-12..1-1e-12."""
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def brier(y: FloatArray, p: FloatArray) -> float:
    """Mean squared error of the probabilities."""
    return float(np.mean((p - y) ** 2))


def calibration_table(y: FloatArray, p: FloatArray, n_bins: int = 10) -> list[dict[str, float]]:
    """Reliability by probability decile band ``[k/10, (k+1)/10)``: count, mean predicted, observed rate."""
    band = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    rows: list[dict[str, float]] = []
    for k in range(n_bins):
        m = band == k
        if not m.any():
            continue
        rows.append(
            {
                "low": k / n_bins,
                "high": (k + 1) / n_bins,
                "count": int(m.sum()),
                "mean_predicted": round(float(p[m].mean()), 6),
                "observed": round(float(y[m].mean()), 6),
            }
        )
    return rows


def metrics(y: FloatArray, p: FloatArray) -> dict[str, float | None]:
    """Sample count, base rate, AUC, log loss, Brier score and mean prediction, rounded to 6 places."""
    area = auc(y, p)
    return {
        "samples": int(y.shape[0]),
        "base_rate": round(float(y.mean()), 6),
        "auc": None if math.isnan(area) else round(area, 6),
        "log_loss": round(log_loss(y, p), 6),
        "brier": round(brier(y, p), 6),
        "mean_predicted": round(float(p.mean()), 6),
    }
