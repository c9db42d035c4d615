"""Many symbols' candles and scores laid end to end: the flat layout the simulation's kernels walk.

A :class:`Market` concatenates every symbol's candles (symbols in sorted order, each oldest first)
into one set of 1-D arrays; ``start[k]:start[k + 1]`` are symbol ``k``'s rows. One row is one bar.
:class:`MarketScores` holds an algorithm's verdict on every row (the first row of each symbol's
:class:`~lib.scoring.features.BarScores`), aligned with the market's rows. Both are plain arrays, so a
compiled kernel can scan any symbol's bars from a row index without Python in the loop.

Scoring runs per symbol (:func:`score_market`): a one-symbol panel's features and scores, exactly what
:mod:`lib.research.backtest` computes. One panel of all symbols would let the features kernel spread
symbols over the cores, but it needs every array on a shared time axis (24 x 72,000 bars of NaN-padded
feature arrays took 1.4 GB); per symbol, the peak stays near a few symbols' features. Symbols are
scored on a thread pool as wide as numba's thread count (``numba.set_num_threads(1)`` makes it serial):
the scorers' numpy work releases the GIL, which halves the time on two cores. The features kernel
itself runs under a lock: numba's fallback threading layer (``workqueue``, used where neither TBB nor
OpenMP is installed) does not allow two threads to launch parallel kernels at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.errors import InvalidRequest
from lib.research.bundled_data import BUNDLED_DATA_DIR, load_all
from lib.research.resample import resample, timeframe_minutes
from lib.scoring import quantum_ai, unirail_core
from lib.scoring.features import BarScores, PanelFeatures, panel_features, single_symbol_panel
from lib.scoring.quantum_ai_weights import CalibratedModel, QuantumWeights, load_weights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Progress = Callable[[int, int], None]

_FEATURES_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Market:
    """Every symbol's candles as one set of rows (see the module docstring).

    ``symbol_id[row]`` is the index in ``symbols`` of the row's symbol; ``start`` has one entry per
    symbol plus the total; ``bar_ms`` is the length of one bar. ``candles`` keeps each symbol's own
    arrays (for scoring, which needs the volume too).
    """

    symbols: tuple[str, ...]
    start: IntArray
    symbol_id: IntArray
    open_time_ms: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    bar_ms: int
    candles: Mapping[str, Candles]

    def __len__(self) -> int:
        return int(self.open_time_ms.shape[0])

    @property
    def symbol_end(self) -> IntArray:
        """For every row, one past its symbol's last row: where a scan of later bars must stop."""
        return self.start[1:][self.symbol_id]


def build_market(candles_by_symbol: Mapping[str, Candles], bar_ms: int) -> Market:
    """Lay out ``candles_by_symbol`` (bars of ``bar_ms``) as one :class:`Market`, symbols sorted.

    Empty symbols are left out. Raises :class:`InvalidRequest` when a symbol's open times are not
    strictly increasing multiples of ``bar_ms`` apart (a gap of several bars is allowed: it stays a gap).
    """
    if bar_ms <= 0:
        raise InvalidRequest(f"bar_ms must be positive, got {bar_ms}")
    symbols = tuple(sorted(s for s, c in candles_by_symbol.items() if len(c) > 0))
    for symbol in symbols:
        steps = np.diff(candles_by_symbol[symbol].open_time_ms)
        if steps.size and (steps.min() <= 0 or np.any(steps % bar_ms != 0)):
            raise InvalidRequest(f"{symbol}: open times are not increasing steps of {bar_ms} ms")
    lengths = np.array([len(candles_by_symbol[s]) for s in symbols], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def joined(name: str) -> FloatArray:
        if not symbols:
            return np.empty(0)
        return np.ascontiguousarray(
            np.concatenate([getattr(candles_by_symbol[s], name) for s in symbols]), dtype=np.float64
        )

    times = (
        np.concatenate([candles_by_symbol[s].open_time_ms for s in symbols]).astype(np.int64)
        if symbols
        else np.empty(0, dtype=np.int64)
    )
    return Market(
        symbols=symbols,
        start=start,
        symbol_id=np.repeat(np.arange(len(symbols), dtype=np.int64), lengths),
        open_time_ms=times,
        open=joined("open"),
        high=joined("high"),
        low=joined("low"),
        close=joined("close"),
        bar_ms=int(bar_ms),
        candles={s: candles_by_symbol[s] for s in symbols},
    )


def load_market(data_dir: Path | str = BUNDLED_DATA_DIR, timeframe: str = "5") -> Market:
    """A data folder's 5-minute candles (:func:`lib.research.bundled_data.load_all`), resampled to
    ``timeframe`` (:mod:`lib.research.resample`), as a :class:`Market`."""
    minutes = timeframe_minutes(timeframe)
    loaded = load_all(Path(data_dir))
    return build_market({s: resample(c, minutes) for s, c in loaded.items()}, minutes * 60_000)


@dataclass(frozen=True, slots=True)
class MarketScores:
    """One algorithm's verdict on every row of a :class:`Market` (the fields of ``BarScores``).

    Where ``valid`` is false, ``sign`` is 0 and the float arrays are NaN. ``entry`` is the signal bar's
    close (the price the executor sizes from); ``stop_loss`` and ``take_profit`` are the signal's levels.
    """

    valid: BoolArray
    sign: npt.NDArray[np.int8]
    score: FloatArray
    entry: FloatArray
    stop_loss: FloatArray
    take_profit: FloatArray
    atr: FloatArray


def market_scores(market: Market, scores_by_symbol: Mapping[str, BarScores]) -> MarketScores:
    """Align per-symbol ``BarScores`` (one row each, on the symbol's own bars) with ``market``'s rows.

    This is how scores made elsewhere (e.g. the walk-forward ``quantum_ai`` models of
    :mod:`lib.research.backtest`) enter the simulation. Raises :class:`InvalidRequest` when a symbol is
    missing or its scores are not on the market's bars.
    """
    parts: list[BarScores] = []
    for symbol in market.symbols:
        bars = scores_by_symbol.get(symbol)
        if bars is None:
            raise InvalidRequest(f"no scores for {symbol}")
        if not np.array_equal(bars.open_time_ms, market.candles[symbol].open_time_ms):
            raise InvalidRequest(f"{symbol}: the scores are not on the market's bars")
        parts.append(bars)

    def joined(name: str, dtype: type) -> npt.NDArray[np.generic]:
        if not parts:
            return np.empty(0, dtype=dtype)
        return np.ascontiguousarray(np.concatenate([getattr(b, name)[0] for b in parts]), dtype=dtype)

    return MarketScores(
        valid=joined("valid", np.bool_).astype(np.bool_),
        sign=joined("sign", np.int8).astype(np.int8),
        score=joined("score", np.float64).astype(np.float64),
        entry=joined("entry", np.float64).astype(np.float64),
        stop_loss=joined("stop_loss", np.float64).astype(np.float64),
        take_profit=joined("take_profit", np.float64).astype(np.float64),
        atr=joined("atr", np.float64).astype(np.float64),
    )


def walk_forward_scores(pf: PanelFeatures, weights: QuantumWeights) -> tuple[BarScores, str]:
    """One symbol's ``quantum_ai`` scores, each bar by a model that never saw it.

    A bar inside the training data's period (its first to its last bar, every symbol alike: the
    held-out symbols' bars were never fitted on, but the deployed model was fitted on later bars of
    other symbols) is scored by the walk-forward fold model whose test window holds it; a bar of the
    period that no test window holds (the first fitting and calibration window) is left out
    (``valid`` false). Bars outside the period are scored by the deployed model. The second value
    says which happened: ``"walk_forward"`` when any bar lies inside the period, else ``"outside"``.
    """
    final = quantum_ai.score_features(pf, weights.final, with_components=False)
    times = final.open_time_ms
    training = weights.training
    inside = (times >= int(training["first_bar_ms"])) & (times <= int(training["last_bar_ms"]))
    if not inside.any():
        return final, "outside"
    fields = ("valid", "sign", "score", "confidence", "entry", "stop_loss", "take_profit", "atr")
    chosen = {name: getattr(final, name).copy() for name in fields}
    chosen["valid"] &= ~inside[None, :]
    for fold in weights.folds:
        window = inside & (times >= fold.valid_from_ms) & (times < fold.valid_to_ms)
        if not window.any():
            continue
        scored = quantum_ai.score_features(pf, fold.model, with_components=False)
        for name in fields:
            chosen[name][:, window] = getattr(scored, name)[:, window]
    # Left-out bars look like any unscored bar: sign 0, NaN elsewhere (the BarScores convention).
    valid = chosen["valid"]
    chosen["sign"] = np.where(valid, chosen["sign"], 0).astype(np.int8)
    for name in fields[2:]:
        chosen[name] = np.where(valid, chosen[name], np.nan)
    return replace(final, components={}, **chosen), "walk_forward"


def score_symbol(
    algorithm: str,
    candles: Candles,
    model: CalibratedModel | None = None,
    walk_forward: QuantumWeights | None = None,
    with_components: bool = True,
) -> BarScores:
    """Every bar of one symbol scored by ``algorithm`` (``quantum_ai``: with ``walk_forward`` weights,
    each bar by a model that never saw it (:func:`walk_forward_scores`); else ``model``, default the
    deployed one). The same features and scores :mod:`lib.research.backtest` computes."""
    panel = single_symbol_panel(
        candles.symbol,
        candles.open_time_ms,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
    )
    with _FEATURES_LOCK:
        pf = panel_features(panel)
    if algorithm == unirail_core.NAME:
        return unirail_core.score_features(pf)
    if algorithm == quantum_ai.NAME:
        if walk_forward is not None:
            return walk_forward_scores(pf, walk_forward)[0]
        return quantum_ai.score_features(pf, model or load_weights().final, with_components)
    raise InvalidRequest(f"unknown algorithm {algorithm!r}")


def score_market(
    algorithm: str,
    market: Market,
    model: CalibratedModel | None = None,
    *,
    walk_forward: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> MarketScores:
    """Score every row of ``market`` with ``algorithm``, symbols spread over ``workers`` threads
    (default: numba's thread count; module docstring). ``progress(done, total)`` is called, from the
    calling thread, after each symbol. ``walk_forward`` (``quantum_ai`` only, and only without
    ``model``): score each bar of the training period with the fold model that never saw it
    (:func:`walk_forward_scores`), as an out-of-sample report must."""
    if algorithm not in (unirail_core.NAME, quantum_ai.NAME):
        raise InvalidRequest(f"unknown algorithm {algorithm!r}")
    weights = load_weights() if algorithm == quantum_ai.NAME and walk_forward and model is None else None
    if algorithm == quantum_ai.NAME and model is None and weights is None:
        model = load_weights().final
    width = max(1, workers if workers is not None else int(numba.get_num_threads()))
    names = list(market.candles)

    def scored(symbol: str) -> BarScores:
        # The components (7 to 18 arrays per symbol) are not needed here: dropping them at once keeps
        # the peak to one symbol's worth of them per thread.
        bars = score_symbol(algorithm, market.candles[symbol], model, weights, with_components=False)
        return replace(bars, components={})

    bars: list[BarScores] = []
    with ThreadPoolExecutor(max_workers=width) if width > 1 else nullcontext() as pool:
        results = pool.map(scored, names) if pool is not None else map(scored, names)
        for done, result in enumerate(results, start=1):
            bars.append(result)
            if progress is not None:
                progress(done, len(names))
    return market_scores(market, dict(zip(names, bars, strict=True)))
