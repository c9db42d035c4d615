"""The library contender for ``quantum_ai``: scikit-learn's ``HistGradientBoostingClassifier``.

:func:`lib.research.training.train` fits it on every walk-forward fold's training window beside the
hand-written stumps, calibrates it the same way (Platt on the fold's calibration slice) and compares
both out of sample on log loss and Brier score. scikit-learn is a training-only dependency (the
``dev`` group): nothing at run time imports this module, and it imports scikit-learn only when called.

The settings are fixed before any comparison and match the stumps' budget where they can: the same
learning rate and minimum leaf size, trees of depth 3 (at most 8 leaves), 300 rounds, no early
stopping (it would draw a random validation subset) and ``random_state=0`` (the binning subsample),
so a rerun fits the same trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LibraryConfig:
    """``HistGradientBoostingClassifier`` settings (module docstring)."""

    max_iter: int = 300
    learning_rate: float = 0.05
    max_depth: int = 3
    max_leaf_nodes: int = 8
    min_samples_leaf: int = 400
    l2_regularization: float = 1.0
    max_bins: int = 255
    random_state: int = 0


def fit_library_model(x: FloatArray, y: FloatArray, config: LibraryConfig = LibraryConfig()) -> Any:
    """A fitted ``HistGradientBoostingClassifier`` (deterministic: module docstring)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_depth=config.max_depth,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        max_bins=config.max_bins,
        early_stopping=False,
        random_state=config.random_state,
    )
    model.fit(x, y)
    return model


def library_logit(model: Any, x: FloatArray) -> FloatArray:
    """The library model's raw log-odds of class 1 (before calibration)."""
    return np.asarray(model.decision_function(x), dtype=np.float64)
