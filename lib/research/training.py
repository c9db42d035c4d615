"""Training ``quantum_ai`` (:mod:`lib.scoring.quantum_ai`) on the bundled USDT candles: data set,
binning, boosting, Platt calibration, rolling walk-forward folds, the comparison with a library model,
and the deployed model. Offline only: :func:`train` is run by ``scripts/train_quantum_ai.py``, which
writes ``lib/scoring/weights/quantum_ai_v2.json``.

Samples: every scorable bar of every symbol, both sides, labelled ``TP first``
(:mod:`lib.core.outcomes`) for a trade entered at the bar's close with the levels of
:mod:`lib.scoring.levels` (SL 1.5 ATR, TP 3 ATR), within the backtest's horizon
(:data:`lib.research.exits.DEFAULT_HORIZON_BARS`, 48 bars); SL first and "neither" are 0. Only
complete horizons are kept.

Who is fitted on what (:class:`TrainConfig`):

- **Held-out symbols** (``holdout_symbols``, stated before any run) are never fitted on: they are only
  scored, in the test windows, as "unseen symbols".
- **Rolling walk-forward folds**: the first test window starts ``train_days + calibration_days`` after
  the first bar, each later one ``test_days`` after the previous; the last is cut at the data's end.
  Fold ``k`` fits the model on the ``train_days`` before its calibration slice, fits Platt's
  calibration on the ``calibration_days`` before its test window, and is scored only on its test
  window. Every boundary is purged by the horizon: a training or calibration row's label window ends
  before the next part starts, so nothing fitted has seen a bar of what it is judged on.
- **Fitting rows** are subsampled to every ``stride``-th bar by open time (a 20-minute grid on
  5-minute bars): neighbouring bars' labels share most of their 4 hours, so the stride costs little
  information and quarters the fitting time. Test rows are every bar.
- **The deployed model** is fitted the same way on the last window: ``train_days``, then the final
  ``calibration_days`` for its calibration.

The comparison: on every fold, the hand-written stumps and scikit-learn's
``HistGradientBoostingClassifier`` (:mod:`lib.research.training_library`) are fitted on the same rows
and calibrated the same way; the base-rate predictor (the training and calibration rows' TP-first
share) is the floor. Their log loss and Brier score are pooled over the test windows, separately for
later time on the training symbols and for the unseen symbols. The kept model is the one with the
lower pooled calibrated log loss on later time; :func:`train` refuses to write a file when the library
wins, because the weights format holds additive stumps only (a tree exporter would be needed; it is
not built, as the stumps won on this data).

Boosting: Newton steps on the log-loss, learning rate 0.05, L2 on leaf values, a minimum number of
samples per leaf, a fixed number of rounds; no sampling, so training is deterministic (ties between
splits go to the first feature and cut). Rerunning on the same data, machine and numpy build gives
byte-identical weights (``scripts/train_quantum_ai.py --check``); another CPU or numpy build may round
a long sum differently in the last bits.

Why one module of some 560 lines: it is a single pipeline read top to bottom (data set, bins, boosting,
calibration, folds, :func:`train`), each part used only by the next, and split apart they would only
be imported back together (the metrics and the library contender live in their own modules).
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
from lib.research.exits import DEFAULT_HORIZON_BARS
from lib.research.forecast_metrics import calibration_table, metrics
from lib.research.training_library import LibraryConfig, fit_library_model, library_logit
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

DAY_MS = 86_400_000

#: Four of the 24 five-minute USDT pairs, picked by hand before any training run (two large, two
#: smaller caps) and never fitted on: the "unseen symbols" of every report.
HOLDOUT_SYMBOLS: tuple[str, ...] = ("AVAXUSDT", "DOGEUSDT", "LINKUSDT", "SUIUSDT")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyperparameters and windows, fixed before looking at test results (module docstring)."""

    horizon_bars: int = DEFAULT_HORIZON_BARS
    bar_ms: int = FIVE_MINUTES_MS
    holdout_symbols: tuple[str, ...] = HOLDOUT_SYMBOLS
    train_days: int = 75
    calibration_days: int = 15
    test_days: int = 30
    stride: int = 4
    bins: int = 32
    rounds: int = 300
    learning_rate: float = 0.05
    l2: float = 100.0
    min_leaf: int = 400
    library: LibraryConfig = field(default_factory=LibraryConfig)
    compare_library: bool = True
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


def build_dataset(
    candles: Mapping[str, Candles],
    horizon_bars: int = DEFAULT_HORIZON_BARS,
    bar_ms: int = FIVE_MINUTES_MS,
) -> Dataset:
    """Every scorable bar of every symbol, both sides, with its TP-first label over complete horizons
    of ``horizon_bars`` bars of ``bar_ms``."""
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
                bar_ms=bar_ms,
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


def fitting_rows(dataset: Dataset, config: TrainConfig) -> BoolArray:
    """Rows a model may be fitted or calibrated on: training symbols only, every ``stride``-th bar."""
    held = np.isin(np.asarray(dataset.symbols)[dataset.symbol], config.holdout_symbols)
    grid = (dataset.time_ms // config.bar_ms) % config.stride == 0
    return np.asarray(~held & grid, dtype=np.bool_)


def unseen_rows(dataset: Dataset, config: TrainConfig) -> BoolArray:
    """Rows of the held-out symbols (scored only, never fitted on)."""
    return np.asarray(np.isin(np.asarray(dataset.symbols)[dataset.symbol], config.holdout_symbols))


@dataclass(frozen=True, slots=True)
class Fold:
    """One rolling walk-forward fold: its fitting, calibration and test rows and their windows."""

    fold: int
    train: BoolArray
    calibration: BoolArray
    test: BoolArray
    train_from_ms: int
    calibration_from_ms: int
    test_from_ms: int
    test_to_ms: int


def _fit_windows(
    time_ms: IntArray, fit: BoolArray, test_from_ms: int, config: TrainConfig
) -> tuple[BoolArray, BoolArray, int, int]:
    """Training and calibration rows before ``test_from_ms``, each purged by the horizon."""
    horizon_ms = config.horizon_bars * config.bar_ms
    calibration_from = test_from_ms - config.calibration_days * DAY_MS
    train_from = calibration_from - config.train_days * DAY_MS
    train = fit & (time_ms >= train_from) & (time_ms + horizon_ms < calibration_from)
    calibration = fit & (time_ms >= calibration_from) & (time_ms + horizon_ms < test_from_ms)
    return train, calibration, train_from, calibration_from


def walk_forward_folds(time_ms: IntArray, fit: BoolArray, config: TrainConfig) -> list[Fold]:
    """The rolling folds of the module docstring, oldest first; raises when the data is too short."""
    start, stop = int(time_ms.min()), int(time_ms.max()) + 1
    low = start + (config.train_days + config.calibration_days) * DAY_MS
    if low >= stop:
        raise InvalidRequest(
            f"{(stop - start) / DAY_MS:.1f} days of data leave no test window after "
            f"{config.train_days} training and {config.calibration_days} calibration days"
        )
    folds: list[Fold] = []
    while low < stop:
        high = min(low + config.test_days * DAY_MS, stop)
        train, calibration, train_from, calibration_from = _fit_windows(time_ms, fit, low, config)
        test = (time_ms >= low) & (time_ms < high)
        folds.append(Fold(len(folds) + 1, train, calibration, test, train_from, calibration_from, low, high))
        low = high
    return folds


def _fit_stumps(x: FloatArray, y: FloatArray, config: TrainConfig) -> AdditiveModel:
    edges = fit_bins(x, config.bins)
    return fit_boosted(bin_codes(x, edges), y, edges, config)


@dataclass(frozen=True, slots=True)
class Deployed:
    """The deployed model and the rows it was fitted and calibrated on."""

    model: CalibratedModel
    train: BoolArray
    calibration: BoolArray
    train_from_ms: int
    calibration_from_ms: int


def fit_deployed(dataset: Dataset, config: TrainConfig) -> Deployed:
    """The deployed model: fitted on the ``train_days`` before the data's last ``calibration_days``,
    calibrated on those (module docstring)."""
    x, y, time_ms = dataset.x, dataset.y, dataset.time_ms
    fit = fitting_rows(dataset, config)
    end_ms = int(time_ms.max()) + 1
    train_rows, calibration_rows, train_from, calibration_from = _fit_windows(time_ms, fit, end_ms, config)
    if not (train_rows.any() and calibration_rows.any()):
        raise InvalidRequest("the deployed model's window has no training or calibration rows")
    model = _fit_stumps(x[train_rows], y[train_rows], config)
    platt = fit_platt(raw_logit(model, x[calibration_rows]), y[calibration_rows])
    return Deployed(CalibratedModel(model, platt), train_rows, calibration_rows, train_from, calibration_from)


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """The weights and the report the training script prints."""

    weights: QuantumWeights
    report: dict[str, Any] = field(default_factory=dict)


GROUPS: tuple[str, ...] = ("later", "unseen")


def train(
    dataset: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    fingerprint: str = "",
    progress: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Rolling walk-forward comparison and the deployed model (module docstring). Deterministic."""
    say = progress or (lambda _message: None)
    x, y, time_ms = dataset.x, dataset.y, dataset.time_ms
    fit = fitting_rows(dataset, config)
    unseen = unseen_rows(dataset, config)
    folds = walk_forward_folds(time_ms, fit, config)
    pooled: dict[str, dict[str, tuple[list[FloatArray], list[FloatArray]]]] = {g: {} for g in GROUPS}
    fold_models: list[WalkForwardFold] = []
    fold_reports: list[dict[str, Any]] = []
    for fold in folds:
        if not (fold.train.any() and fold.calibration.any() and fold.test.any()):
            raise InvalidRequest(f"fold {fold.fold} has no training, calibration or test rows")
        stumps = _fit_stumps(x[fold.train], y[fold.train], config)
        platt = fit_platt(raw_logit(stumps, x[fold.calibration]), y[fold.calibration])
        x_test, y_test = x[fold.test], y[fold.test]
        logit = raw_logit(stumps, x_test)
        past = fold.train | fold.calibration
        predictions = {
            "base_rate": np.full(y_test.shape, float(y[past].mean())),
            "stumps_raw": sigmoid(logit),
            "stumps_calibrated": sigmoid(platt.a * logit + platt.b),
        }
        if config.compare_library:
            library = fit_library_model(x[fold.train], y[fold.train], config.library)
            library_platt = fit_platt(library_logit(library, x[fold.calibration]), y[fold.calibration])
            library_test = library_logit(library, x_test)
            predictions["library_raw"] = sigmoid(library_test)
            predictions["library_calibrated"] = sigmoid(library_platt.a * library_test + library_platt.b)
        report: dict[str, Any] = {
            "fold": fold.fold,
            "train_from_ms": fold.train_from_ms,
            "calibration_from_ms": fold.calibration_from_ms,
            "test_from_ms": fold.test_from_ms,
            "test_to_ms": fold.test_to_ms,
            "train_samples": int(fold.train.sum()),
            "train_to_ms": int(time_ms[fold.train].max()),
            "calibration_samples": int(fold.calibration.sum()),
            "calibration_to_ms": int(time_ms[fold.calibration].max()),
            "platt": {"a": platt.a, "b": platt.b},
        }
        for group, mask in (("later", ~unseen[fold.test]), ("unseen", unseen[fold.test])):
            if not mask.any():
                continue
            report[group] = {name: metrics(y_test[mask], p[mask]) for name, p in predictions.items()}
            for name, p in predictions.items():
                ys, ps = pooled[group].setdefault(name, ([], []))
                ys.append(y_test[mask])
                ps.append(p[mask])
        fold_reports.append(report)
        fold_models.append(
            WalkForwardFold(fold.fold, fold.test_from_ms, fold.test_to_ms, CalibratedModel(stumps, platt))
        )
        say(f"fold {fold.fold}: {report.get('later', {}).get('stumps_calibrated')}")

    out_of_sample: dict[str, Any] = {}
    for group, by_name in pooled.items():
        if not by_name:
            continue
        joined = {name: (np.concatenate(ys), np.concatenate(ps)) for name, (ys, ps) in by_name.items()}
        out_of_sample[group] = {name: metrics(yy, pp) for name, (yy, pp) in joined.items()}
        yy, pp = joined["stumps_calibrated"]
        out_of_sample[f"{group}_reliability"] = calibration_table(yy, pp)
    comparison = _compare(out_of_sample, config)

    deployed = fit_deployed(dataset, config)
    final_model, final_platt = deployed.model.model, deployed.model.platt
    train_rows, calibration_rows = deployed.train, deployed.calibration
    train_from, calibration_from = deployed.train_from_ms, deployed.calibration_from_ms
    say("deployed model trained")
    in_sample = sigmoid(final_platt.a * raw_logit(final_model, x[train_rows]) + final_platt.b)
    result_report: dict[str, Any] = {
        "folds": fold_reports,
        "out_of_sample": out_of_sample,
        "comparison": comparison,
        "in_sample_deployed_model": metrics(y[train_rows], in_sample),
    }
    training = {
        "algorithm": NAME,
        "data_fingerprint": fingerprint,
        "symbols": [s for s in dataset.symbols if s not in config.holdout_symbols],
        "holdout_symbols": [s for s in dataset.symbols if s in config.holdout_symbols],
        "first_bar_ms": int(time_ms.min()),
        "last_bar_ms": int(time_ms.max()),
        "samples": int(y.shape[0]),
        "fitting_samples": int(fit.sum()),
        "label": "TP before SL within the horizon (lib.core.outcomes); SL first and neither count as 0",
        "config": asdict(config),
        "deployed": {
            "train_from_ms": train_from,
            "calibration_from_ms": calibration_from,
            "train_samples": int(train_rows.sum()),
            "calibration_samples": int(calibration_rows.sum()),
            "platt": {"a": final_platt.a, "b": final_platt.b},
        },
        "metrics": result_report,
    }
    weights = QuantumWeights(
        version=WEIGHTS_VERSION,
        horizon_bars=config.horizon_bars,
        sl_atr=SL_ATR,
        tp_atr=TP_ATR,
        bar_minutes=config.bar_ms / 60_000,
        final=CalibratedModel(final_model, final_platt),
        folds=tuple(fold_models),
        training=training,
    )
    return TrainingResult(weights=weights, report=result_report)


def _compare(out_of_sample: Mapping[str, Any], config: TrainConfig) -> dict[str, Any]:
    """Which model is kept: the lower pooled calibrated log loss on later time (module docstring)."""
    later = out_of_sample["later"]
    stumps = later["stumps_calibrated"]
    verdict: dict[str, Any] = {
        "rule": "lower pooled out-of-sample log loss of the calibrated model, later time, training symbols",
        "kept": "stumps",
        "stumps_log_loss": stumps["log_loss"],
        "base_rate_brier": later["base_rate"]["brier"],
        "stumps_brier": stumps["brier"],
    }
    if not config.compare_library:
        verdict["library"] = "not compared (compare_library=False)"
        return verdict
    library = later["library_calibrated"]
    verdict.update(library_log_loss=library["log_loss"], library_brier=library["brier"])
    if library["log_loss"] < stumps["log_loss"] or (
        math.isclose(library["log_loss"], stumps["log_loss"]) and library["brier"] < stumps["brier"]
    ):
        raise InvalidRequest(
            "HistGradientBoosting beat the stumps out of sample "
            f"(log loss {library['log_loss']} against {stumps['log_loss']}): its trees would have to be "
            "exported into the weights format, which holds additive stumps only"
        )
    return verdict
