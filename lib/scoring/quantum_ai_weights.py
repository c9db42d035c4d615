"""The ``quantum_ai`` model's parameters and their versioned file, ``lib/scoring/weights/quantum_ai_v2.json``.

The file holds the feature names, each feature's bin edges and table, the bias, the Platt calibration,
the rolling walk-forward fold models, each with the test window it may score (so the backtest can
score the training period out of sample), and the training metadata (data fingerprint, training and
held-out symbols, windows, the out-of-sample comparison and metrics). Version 2 is trained on the
2024 USDT candles; version 1 (the 2018 BTC set) is gone, as nothing reads it any more.
:func:`dump_weights` writes it with a stable key order and float reprs, so equal weights give equal
bytes; :func:`load_weights` reads and checks it (version, feature names, edges increasing, tables
finite and one longer than their edges).
The model itself is described in :mod:`lib.scoring.quantum_ai`; it is trained by
:mod:`lib.research.training` (``scripts/train_quantum_ai.py``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lib.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WEIGHTS_VERSION = "quantum_ai_v2"
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "quantum_ai_v2.json"

#: The model's inputs, in the order of the weights file (``lib.scoring.quantum_ai.side_features``).
FEATURE_NAMES: tuple[str, ...] = (
    "side",
    "trend_fast",
    "trend_slow",
    "dist_sma200",
    "dist_ema21",
    "rsi",
    "adx",
    "di_spread",
    "volume_ratio",
    "candle",
    "atr_pct",
    "breakout",
    "obv_flow",
    "macd_hist",
    "bb_position",
    "change12",
    "bb_width",
)


@numba.njit(cache=True, nogil=True)
def _lookup(edges: FloatArray, table: FloatArray, x: FloatArray) -> FloatArray:  # pragma: no cover - compiled
    """``table[searchsorted(edges, x, side="right")]`` for 1-D ``x``, NaN going last as in numpy.

    numpy's ``searchsorted`` costs about 27 ns a value here; this binary search over at most 31 edges
    costs a few, which is most of ``quantum_ai``'s scoring time (bench/backtest.py).
    """
    n = edges.shape[0]
    out = np.empty(x.shape[0], dtype=np.float64)
    for i in range(x.shape[0]):
        v = x[i]
        if v != v:  # NaN sorts after every edge
            out[i] = table[n]
            continue
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if edges[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        out[i] = table[lo]
    return out


@numba.njit(cache=True, nogil=True)
def _logit(
    edges: FloatArray, counts: IntArray, tables: FloatArray, x: FloatArray, bias: float
) -> FloatArray:  # pragma: no cover - compiled
    """``bias + sum_f tables[f, bin_f(x[f])]`` over features ``f`` (rows of ``x``), added feature by
    feature in order, as :func:`lookup` and a running sum would: the same floating-point operations,
    so the same bits. ``edges`` rows are padded with +inf to a power-of-two width; ``counts`` holds the
    real number of edges. The bin is the count of edges <= x, by a branchless scan of the padded row
    (a binary search's data-dependent steps made it slower than numpy's searchsorted)."""
    m = x.shape[1]
    width = edges.shape[1]
    out = np.full(m, bias)
    for f in range(x.shape[0]):
        n = counts[f]
        row = edges[f]
        for i in range(m):
            v = x[f, i]
            pos = 0
            for k in range(width):  # independent compares the compiler vectorizes
                pos += row[k] <= v
            # NaN compares false everywhere; numpy's searchsorted puts it after every edge.
            out[i] += tables[f, n if v != v else min(pos, n)]
    return out


def lookup(edges: FloatArray, table: FloatArray, x: FloatArray) -> FloatArray:
    """``table[searchsorted(edges, x, side="right")]``, elementwise, any shape (compiled; exact)."""
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    return np.asarray(_lookup(edges, table, flat)).reshape(np.shape(x))


@dataclass(frozen=True, slots=True)
class AdditiveModel:
    """``bias + sum_f tables[f][bin_f(x_f)]`` with ``bin_f = searchsorted(edges[f], x, "right")``."""

    feature_names: tuple[str, ...]
    edges: tuple[FloatArray, ...]
    tables: tuple[FloatArray, ...]
    bias: float

    def logit(self, x: Mapping[str, FloatArray]) -> FloatArray:
        """``bias`` plus every feature's contribution, shaped like the inputs (one compiled pass)."""
        shape = np.shape(x[self.feature_names[0]])
        rows = np.stack([np.asarray(x[name], dtype=np.float64).reshape(-1) for name in self.feature_names])
        counts = np.array([e.shape[0] for e in self.edges], dtype=np.int64)
        width = 1 << int(counts.max() if counts.size else 0).bit_length()  # a power of two > every count
        edges = np.full((len(self.edges), width), np.inf)
        tables = np.zeros((len(self.tables), width))
        for f, (e, t) in enumerate(zip(self.edges, self.tables, strict=True)):
            edges[f, : e.shape[0]] = e
            tables[f, : t.shape[0]] = t
        return np.asarray(_logit(edges, counts, tables, rows, float(self.bias))).reshape(shape)

    def contributions(self, x: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        """Each feature's logit contribution, shaped like its input."""
        return {
            name: lookup(self.edges[f], self.tables[f], x[name]) for f, name in enumerate(self.feature_names)
        }


@dataclass(frozen=True, slots=True)
class Platt:
    """Platt calibration: the calibrated logit is ``a * logit + b``."""

    a: float = 1.0
    b: float = 0.0


@dataclass(frozen=True, slots=True)
class CalibratedModel:
    """A fitted model and its calibration."""

    model: AdditiveModel
    platt: Platt


@dataclass(frozen=True, slots=True)
class WalkForwardFold:
    """A fold's model, fitted and calibrated before ``valid_from_ms``; it scores
    ``[valid_from_ms, valid_to_ms)``."""

    fold: int
    valid_from_ms: int
    valid_to_ms: int
    model: CalibratedModel


@dataclass(frozen=True, slots=True)
class QuantumWeights:
    """Everything in the weights file: the deployed model, the walk-forward folds and the metadata."""

    version: str
    horizon_bars: int
    sl_atr: float
    tp_atr: float
    bar_minutes: float
    final: CalibratedModel
    folds: tuple[WalkForwardFold, ...]
    training: dict[str, Any]


def _model_to_json(m: CalibratedModel) -> dict[str, Any]:
    return {
        "bias": m.model.bias,
        "features": [
            {"name": name, "edges": edges.tolist(), "table": table.tolist()}
            for name, edges, table in zip(m.model.feature_names, m.model.edges, m.model.tables, strict=True)
        ],
        "platt": {"a": m.platt.a, "b": m.platt.b},
    }


def _model_from_json(raw: Mapping[str, Any]) -> CalibratedModel:
    feats = raw["features"]
    names = tuple(str(f["name"]) for f in feats)
    if names != FEATURE_NAMES:
        raise ConfigError(f"quantum_ai weights have features {names}, the code expects {FEATURE_NAMES}")
    edges = tuple(np.asarray(f["edges"], dtype=np.float64) for f in feats)
    tables = tuple(np.asarray(f["table"], dtype=np.float64) for f in feats)
    for name, e, t in zip(names, edges, tables, strict=True):
        if t.shape != (e.shape[0] + 1,) or not (np.all(np.isfinite(t)) and np.all(np.diff(e) > 0)):
            raise ConfigError(f"quantum_ai weights: feature {name} has malformed edges or table")
    platt = Platt(a=float(raw["platt"]["a"]), b=float(raw["platt"]["b"]))
    return CalibratedModel(AdditiveModel(names, edges, tables, float(raw["bias"])), platt)


def weights_to_json(w: QuantumWeights) -> dict[str, Any]:
    """The JSON document of the weights file (the inverse of :func:`weights_from_json`)."""
    return {
        "version": w.version,
        "horizon_bars": w.horizon_bars,
        "sl_atr": w.sl_atr,
        "tp_atr": w.tp_atr,
        "bar_minutes": w.bar_minutes,
        "final": _model_to_json(w.final),
        "walk_forward": [
            {
                "fold": f.fold,
                "valid_from_ms": f.valid_from_ms,
                "valid_to_ms": f.valid_to_ms,
                **_model_to_json(f.model),
            }
            for f in w.folds
        ],
        "training": w.training,
    }


def weights_from_json(raw: Mapping[str, Any]) -> QuantumWeights:
    """Parse a weights document; a malformed one raises :class:`ConfigError`."""
    try:
        if raw["version"] != WEIGHTS_VERSION:
            raise ConfigError(f"quantum_ai weights version {raw['version']!r}, expected {WEIGHTS_VERSION}")
        return QuantumWeights(
            version=str(raw["version"]),
            horizon_bars=int(raw["horizon_bars"]),
            sl_atr=float(raw["sl_atr"]),
            tp_atr=float(raw["tp_atr"]),
            bar_minutes=float(raw["bar_minutes"]),
            final=_model_from_json(raw["final"]),
            folds=tuple(
                WalkForwardFold(
                    fold=int(f["fold"]),
                    valid_from_ms=int(f["valid_from_ms"]),
                    valid_to_ms=int(f["valid_to_ms"]),
                    model=_model_from_json(f),
                )
                for f in raw["walk_forward"]
            ),
            training=dict(raw["training"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"quantum_ai weights are malformed: {exc!r}") from exc


def dump_weights(w: QuantumWeights) -> str:
    """The weights file's exact text: stable key order and float reprs, so equal weights give equal bytes."""
    return json.dumps(weights_to_json(w), indent=1, sort_keys=True, allow_nan=False) + "\n"


@functools.lru_cache(maxsize=4)
def load_weights(path: Path = WEIGHTS_PATH) -> QuantumWeights:
    """Read and check a weights file (cached per path: the file is versioned, not edited at run time)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read quantum_ai weights {path}: {exc}") from exc
    return weights_from_json(raw)
