"""Training ``quantum_ai`` (:mod:`lib.scoring.quantum_ai`) on candles: data set, binning, boosting,
Platt calibration, metrics and the walk-forward split. Offline only: :func:`train` is run by
``scripts/train_quantum_ai.py``, which writes ``lib/scoring/weights/quantum_ai_v1.json``.

The samples: every scorable bar of every symbol, both sides, labelled ``TP first`` (:mod:`lib.core.outcomes`)
for a trade entered at the bar's close with the levels of :mod:`lib.scoring.levels`, over complete
horizons of ``horizon_bars`` 5-minute bars.

Walk-forward over time: the samples' time range is cut into ``folds + 1`` equal blocks; fold ``k``
trains on every sample whose label window ends before block ``k`` starts (``t + H * 5 min < start``,
purged so no training label overlaps validation) and validates on block ``k``. Each fold's Platt
calibration is fitted only on earlier folds' out-of-fold predictions that end before block ``k``
(fold 1 has none and stays uncalibrated), so every validation prediction, calibration included, uses
only the past. The deployed model is trained on all samples; its calibration is fitted on all folds'
out-of-fold predictions. The fold models are kept in the weights file so the backtest can score the
training period out of sample (:mod:`lib.research.backtest`).

Boosting: Newton steps on the log-loss, learning rate 0.05, L2 on leaf values, a minimum number of
samples per leaf, a fixed number of rounds; no sampling, so training is deterministic (ties between
splits go to the first feature and cut). Rerunning on the same data, machine and numpy build gives
byte-identical weights (``scripts/train_quantum_ai.py --check``); another CPU or numpy build may round
a long sum differently in the last bits.

Why one module of some 470 lines: it is a single pipeline read top to bottom (data set, bins, boosting,
calibration, metrics, folds, :func:`train`), each part used only by the next, and split apart they
would only be imported back together.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.core.outcomes import TP_FIRST, label_outcomes
from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import InvalidRequest
from lib.scoring.features import base_valid, panel_features, single_symbol_panel
from lib.scoring.levels import SL_ATR, TP_ATR, levels
from lib.scoring.quantum_ai import NAME, side_features, sigmoid
from lib.scoring.quantum_ai_weights import (
    FEATURE_NAMES,
    WEIGHTS_VERSION,
    AdditiveModel,
    CalibratedModel,
    Platt,
    QuantumWeights,
    WalkForwardFold,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Four hours of 5-minute bars: the window in which TP must come before SL.
DEFAULT_HORIZON_BARS = 48


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyperparameters. Fixed before looking at validation results except where the README says."""

    horizon_bars: int = DEFAULT_HORIZON_BARS
    folds: int = 4
    bins: int = 32
    rounds: int = 300
    learning_rate: float = 0.05
    l2: float = 100.0
    min_leaf: int = 400
    seed: int = 0  # nothing is random; kept so the metadata states it


@dataclass(frozen=True, slots=True)
class Dataset:
    """Samples (one per bar and side) with features ``x`` (samples x features) and labels."""

    x: FloatArray
    y: FloatArray
    time_ms: IntArray
    symbol: IntArray
    side: IntArray
    r_multiple: FloatArray
    symbols: tuple[str, ...]


def data_fingerprint(candles: Mapping[str, Candles]) -> str:
    """SHA-256 over every symbol's name and candle arrays, in symbol order (independent of file format)."""
    digest = hashlib.sha256()
    for symbol in sorted(candles):
        c = candles[symbol]
        digest.update(symbol.encode())
        for array in (c.open_time_ms, c.open, c.high, c.low, c.close, c.volume):
            digest.update(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def build_dataset(candles: Mapping[str, Candles], horizon_bars: int = DEFAULT_HORIZON_BARS) -> Dataset:
    """Every scorable bar of every symbol, both sides, with its TP-first label over complete horizons."""
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    times: list[IntArray] = []
    syms: list[IntArray] = []
    sides: list[IntArray] = []
    rs: list[FloatArray] = []
    symbols = tuple(sorted(candles))
    for s_index, symbol in enumerate(symbols):
        c = candles[symbol]
        panel = single_symbol_panel(symbol, c.open_time_ms, c.open, c.high, c.low, c.close, c.volume)
        pf = panel_features(panel)
        valid = base_valid(pf)[0]
        for d in (1, -1):
            x = side_features(pf, float(d))
            ok = valid.copy()
            for name in FEATURE_NAMES:
                ok &= np.isfinite(x[name][0])
            bars = np.flatnonzero(ok)
            entry = c.close[bars]
            stop, take = levels(entry, pf.ind.atr14[0, bars], d, sl_atr=SL_ATR, tp_atr=TP_ATR)
            good = (d * (entry - stop) > 0) & (d * (take - entry) > 0)
            bars, entry, stop, take = bars[good], entry[good], stop[good], take[good]
            out = label_outcomes(
                c.open_time_ms,
                c.high,
                c.low,
                c.close,
                bar_index=bars,
                sign=d,
                entry=entry,
                stop_loss=stop,
                take_profit=take,
                horizon_bars=horizon_bars,
                bar_ms=FIVE_MINUTES_MS,
            )
            keep = out.complete
            bars = bars[keep]
            xs.append(np.column_stack([x[name][0, bars] for name in FEATURE_NAMES]))
            ys.append((out.result[keep] == TP_FIRST).astype(np.float64))
            times.append(c.open_time_ms[bars])
            syms.append(np.full(bars.shape, s_index, dtype=np.int64))
            sides.append(np.full(bars.shape, d, dtype=np.int64))
            rs.append(out.r_multiple[keep])
    time_ms = np.concatenate(times)
    # A stable order by time, then symbol, then side: training does not depend on dict order.
    order = np.lexsort((np.concatenate(sides), np.concatenate(syms), time_ms))
    return Dataset(
        x=np.concatenate(xs)[order],
        y=np.concatenate(ys)[order],
        time_ms=time_ms[order],
        symbol=np.concatenate(syms)[order],
        side=np.concatenate(sides)[order],
        r_multiple=np.concatenate(rs)[order],
        symbols=symbols,
    )


def fit_bins(x: FloatArray, n_bins: int) -> tuple[FloatArray, ...]:
    """Per-column cut points at quantiles of ``x`` (samples x features), at most ``n_bins`` bins each.

    Cuts sit halfway between neighbouring distinct values, never on a value, so a value a hair's
    breadth away (a 300-bar window's EMA versus the full history's) lands in the same bin.
    """
    edges: list[FloatArray] = []
    for f in range(x.shape[1]):
        values = np.unique(x[:, f])
        if values.shape[0] <= 1:
            edges.append(np.empty(0, dtype=np.float64))
            continue
        mids = (values[:-1] + values[1:]) / 2.0
        if values.shape[0] <= n_bins:
            edges.append(mids)
            continue
        column = np.sort(x[:, f])
        picks = column[(np.arange(1, n_bins) * column.shape[0]) // n_bins]
        # The cut right above each picked value: the midpoint to the next distinct value.
        at = np.searchsorted(values, picks, side="left")
        edges.append(np.unique(mids[np.minimum(at, mids.shape[0] - 1)]))
    return tuple(edges)


def bin_codes(x: FloatArray, edges: Sequence[FloatArray]) -> npt.NDArray[np.int64]:
    """Bin index of every value (samples x features)."""
    return np.column_stack([np.searchsorted(e, x[:, f], side="right") for f, e in enumerate(edges)])


def fit_boosted(
    codes: npt.NDArray[np.int64],
    y: FloatArray,
    edges: Sequence[FloatArray],
    config: TrainConfig,
    names: tuple[str, ...] = FEATURE_NAMES,
) -> AdditiveModel:
    """Gradient-boosted stumps on binned features (Newton steps on the log-loss; see the module doc)."""
    n, n_features = codes.shape
    widths = [e.shape[0] + 1 for e in edges]
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    total_bins = int(sum(widths))
    flat = (codes + offsets[None, :]).ravel()  # one bincount covers every feature's bins
    mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    bias = math.log(mean / (1.0 - mean))
    tables = [np.zeros(w, dtype=np.float64) for w in widths]
    logit = np.full(n, bias)
    count = np.bincount(flat, minlength=total_bins).astype(np.float64)
    lam = config.l2
    for _ in range(config.rounds):
        p = sigmoid(logit)
        g = p - y
        h = np.maximum(p * (1.0 - p), 1e-12)
        g_bins = np.bincount(flat, weights=np.repeat(g, n_features), minlength=total_bins)
        h_bins = np.bincount(flat, weights=np.repeat(h, n_features), minlength=total_bins)
        g_total, h_total = float(g.sum()), float(h.sum())
        parent = g_total * g_total / (h_total + lam)
        best_gain, best = 0.0, (-1, -1, 0.0, 0.0)
        for f in range(n_features):
            lo, hi = int(offsets[f]), int(offsets[f]) + widths[f]
            if widths[f] < 2:
                continue
            gl = np.cumsum(g_bins[lo:hi])[:-1]
            hl = np.cumsum(h_bins[lo:hi])[:-1]
            cl = np.cumsum(count[lo:hi])[:-1]
            gr, hr, cr = g_total - gl, h_total - hl, n - cl
            gain = gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent
            gain = np.where((cl >= config.min_leaf) & (cr >= config.min_leaf), gain, -np.inf)
            j = int(np.argmax(gain))
            if gain[j] > best_gain:
                left = -config.learning_rate * gl[j] / (hl[j] + lam)
                right = -config.learning_rate * gr[j] / (hr[j] + lam)
                best_gain, best = float(gain[j]), (f, j, float(left), float(right))
        f, j, left, right = best
        if f < 0:
            break  # no split improves the loss any more
        tables[f][: j + 1] += left
        tables[f][j + 1 :] += right
        logit += np.where(codes[:, f] <= j, left, right)
    # Center each table on the training data; the means move into the bias (the logit is unchanged).
    for f in range(n_features):
        shift = float(tables[f][codes[:, f]].mean())
        tables[f] -= shift
        bias += shift
    return AdditiveModel(names, tuple(np.asarray(e) for e in edges), tuple(tables), float(bias))


def raw_logit(model: AdditiveModel, x: FloatArray) -> FloatArray:
    """The model's uncalibrated logit for samples ``x`` (samples x features)."""
    codes = bin_codes(x, model.edges)
    total = np.full(x.shape[0], model.bias)
    for f in range(x.shape[1]):
        total = total + model.tables[f][codes[:, f]]
    return total


def fit_platt(logit: FloatArray, y: FloatArray, ridge: float = 1e-6, iterations: int = 50) -> Platt:
    """Fit ``sigmoid(a * logit + b)`` to ``y`` by Newton's method on the log-loss (deterministic)."""
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = sigmoid(a * logit + b)
        g = p - y
        w = np.maximum(p * (1.0 - p), 1e-12)
        grad = np.array([float(g @ logit) + ridge * (a - 1.0), float(g.sum()) + ridge * b])
        hess = np.array(
            [
                [float(w @ (logit * logit)) + ridge, float(w @ logit)],
                [float(w @ logit), float(w.sum()) + ridge],
            ]
        )
        step = np.linalg.solve(hess, grad)
        a, b = a - float(step[0]), b - float(step[1])
        if abs(float(step[0])) < 1e-12 and abs(float(step[1])) < 1e-12:
            break
    return Platt(a=a, b=b)


def calibrated_probability(model: CalibratedModel, x: FloatArray) -> FloatArray:
    """Calibrated P(TP first) for samples ``x``."""
    return sigmoid(model.platt.a * raw_logit(model.model, x) + model.platt.b)


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


@dataclass(frozen=True, slots=True)
class Split:
    """One walk-forward fold: training and validation sample masks and the validation window."""

    fold: int
    train: BoolArray
    valid: BoolArray
    valid_from_ms: int
    valid_to_ms: int


def walk_forward_splits(time_ms: IntArray, folds: int, horizon_ms: int) -> list[Split]:
    """Expanding-window folds over time (see the module docstring).

    The time range is cut into ``folds + 1`` equal blocks; fold ``k`` (1..folds) validates on block
    ``k`` and trains on samples whose label window ``[t, t + horizon_ms]`` ends before block ``k``.
    """
    if folds < 1:
        raise InvalidRequest(f"folds must be at least 1, got {folds}")
    start, stop = int(time_ms.min()), int(time_ms.max()) + 1
    bounds = [start + (stop - start) * k // (folds + 1) for k in range(folds + 2)]
    out: list[Split] = []
    for k in range(1, folds + 1):
        lo, hi = bounds[k], bounds[k + 1]
        out.append(
            Split(
                fold=k,
                train=time_ms + horizon_ms < lo,
                valid=(time_ms >= lo) & (time_ms < hi),
                valid_from_ms=lo,
                valid_to_ms=hi,
            )
        )
    return out


def _metrics(y: FloatArray, p: FloatArray) -> dict[str, float | None]:
    area = auc(y, p)
    return {
        "samples": int(y.shape[0]),
        "base_rate": round(float(y.mean()), 6),
        "auc": None if math.isnan(area) else round(area, 6),
        "log_loss": round(log_loss(y, p), 6),
        "brier": round(brier(y, p), 6),
        "mean_predicted": round(float(p.mean()), 6),
    }


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """The weights and the report the training script prints."""

    weights: QuantumWeights
    report: dict[str, Any] = field(default_factory=dict)


def train(
    dataset: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    fingerprint: str = "",
    progress: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Walk-forward training and the deployed model (see the module docstring). Deterministic."""
    say = progress or (lambda _message: None)
    horizon_ms = config.horizon_bars * FIVE_MINUTES_MS
    splits = walk_forward_splits(dataset.time_ms, config.folds, horizon_ms)
    x, y = dataset.x, dataset.y
    oof_logit = np.full(y.shape[0], np.nan)
    folds: list[WalkForwardFold] = []
    fold_reports: list[dict[str, Any]] = []
    for split in splits:
        if not split.train.any() or not split.valid.any():
            raise InvalidRequest(f"fold {split.fold} has no training or no validation samples")
        edges = fit_bins(x[split.train], config.bins)
        model = fit_boosted(bin_codes(x[split.train], edges), y[split.train], edges, config)
        # Calibration from earlier folds' out-of-fold predictions whose labels end before this block.
        earlier = np.isfinite(oof_logit) & (dataset.time_ms + horizon_ms < split.valid_from_ms)
        platt = fit_platt(oof_logit[earlier], y[earlier]) if earlier.any() else Platt()
        logit_valid = raw_logit(model, x[split.valid])
        oof_logit[split.valid] = logit_valid
        p_raw = sigmoid(logit_valid)
        p_cal = sigmoid(platt.a * logit_valid + platt.b)
        yv = y[split.valid]
        fold_reports.append(
            {
                "fold": split.fold,
                "train_samples": int(split.train.sum()),
                "train_to_ms": int(dataset.time_ms[split.train].max()),
                "valid_from_ms": split.valid_from_ms,
                "valid_to_ms": split.valid_to_ms,
                "calibration": "none (no earlier fold)" if not earlier.any() else "platt on earlier folds",
                "raw": _metrics(yv, p_raw),
                "calibrated": _metrics(yv, p_cal),
            }
        )
        folds.append(
            WalkForwardFold(split.fold, split.valid_from_ms, split.valid_to_ms, CalibratedModel(model, platt))
        )
        say(f"fold {split.fold}: AUC {fold_reports[-1]['calibrated']['auc']:.4f}")

    oof = np.isfinite(oof_logit)
    final_platt = fit_platt(oof_logit[oof], y[oof])
    edges = fit_bins(x, config.bins)
    final_model = fit_boosted(bin_codes(x, edges), y, edges, config)
    say("final model trained")

    # Every out-of-fold prediction with its walk-forward calibration (only the past).
    p_walk = np.full(y.shape[0], np.nan)
    for fold in folds:
        m = (dataset.time_ms >= fold.valid_from_ms) & (dataset.time_ms < fold.valid_to_ms)
        p_walk[m] = sigmoid(fold.model.platt.a * oof_logit[m] + fold.model.platt.b)
    p_final_platt = sigmoid(final_platt.a * oof_logit[oof] + final_platt.b)
    p_in_sample = sigmoid(final_platt.a * raw_logit(final_model, x) + final_platt.b)
    out_of_fold = {
        "walk_forward_calibrated": _metrics(y[oof], p_walk[oof]),
        "final_platt_on_oof": _metrics(y[oof], p_final_platt),
        "calibration_walk_forward": calibration_table(y[oof], p_walk[oof]),
        "calibration_final_platt_on_oof": calibration_table(y[oof], p_final_platt),
    }
    report: dict[str, Any] = {
        "folds": fold_reports,
        "out_of_fold": out_of_fold,
        "in_sample_final_model": _metrics(y, p_in_sample),
    }
    training = {
        "algorithm": NAME,
        "data_fingerprint": fingerprint,
        "symbols": list(dataset.symbols),
        "first_bar_ms": int(dataset.time_ms.min()),
        "last_bar_ms": int(dataset.time_ms.max()),
        "samples": int(y.shape[0]),
        "label": "TP before SL within the horizon (lib.core.outcomes); SL first and neither count as 0",
        "config": asdict(config),
        "platt_final": {"a": final_platt.a, "b": final_platt.b, "fitted_on": "all out-of-fold predictions"},
        "metrics": report,
    }
    weights = QuantumWeights(
        version=WEIGHTS_VERSION,
        horizon_bars=config.horizon_bars,
        sl_atr=SL_ATR,
        tp_atr=TP_ATR,
        bar_minutes=FIVE_MINUTES_MS / 60_000,
        final=CalibratedModel(final_model, final_platt),
        folds=tuple(folds),
        training=training,
    )
    return TrainingResult(weights=weights, report=report)
