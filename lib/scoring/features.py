"""What both scorers share: the features of a panel, and the per-bar score table they fill.

Features
--------
:func:`panel_features` runs :func:`lib.indicators.features` once over a :class:`CandlePanel` (every
symbol and every bar at once) and adds the few series the scorers need beyond it, all symbols x time:

- ``prev_high20`` / ``prev_low20``: the highest high / lowest low of the 20 bars *before* each bar (the
  range a breakout must leave; the bar itself is excluded so a breakout can exceed it). Defined from
  bar ``s + 20``.
- ``obv_flow20``: ``(OBV[t] - OBV[t-20]) / sum(volume[t-19..t])`` in -1..1, the share of the last 20
  bars' volume that traded on up-closes minus the share on down-closes. Unlike OBV itself it does not
  depend on where the series starts, so a 300-bar window and the full history give the same value.
- ``atr_pct``: ``100 * ATR14 / close``.
- ``change12``: ``close[t] - close[t-12]``, the last hour's move on 5-minute bars.

Every feature depends only on bars up to and including its own, so scoring every bar of a full history
at once (the backtest) gives each bar exactly what a scanner holding only the bars up to it would see,
except for the recursive indicators' seeds (EMA, Wilder's RSI/ATR/ADX): those are forgotten
geometrically. The slowest is EMA50's, down to ``(49/51)^250 = e^-10`` of its initial error after the
~250 bars a 300-bar window gives it; on the bundled data a 300-bar window's ``unirail_core`` score
differs from the full history's by at most about 0.001 points (a test holds it under 0.01), and
``quantum_ai``'s binned features did not differ at all.

Per-bar scores
--------------
Each scorer computes a score for LONG and one for SHORT on every bar (``score_bars``), and
:func:`combine_sides` turns them into a :class:`BarScores` table: the better side (LONG on a tie), its
score, its components, the confidence and the levels. ``score_panel`` runs the same functions on
:meth:`PanelFeatures.last_bar` (the features of the last bar, computed over the whole panel) and turns
that one column into candidates with :func:`last_bar_candidates`, so live scoring and the backtest
share the same math.

Confidence (both scorers): ``(best - other) / best`` where ``best`` and ``other`` are the chosen and the
opposite side's scores (0 when ``best`` is 0): 1 when the opposite side has no case at all, 0 when both
sides score the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candidate, CandlePanel, Direction
from lib.indicators import FEATURE_NAMES, Features, features
from lib.scoring.levels import SL_ATR, TP_ATR, levels, levels_valid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

BREAKOUT_LOOKBACK = 20
FLOW_LOOKBACK = 20
CHANGE_LOOKBACK = 12
MIN_HISTORY = 200
"""Bars a symbol needs before its first score: SMA200's warm-up (the longest of all features)."""


@dataclass(frozen=True, slots=True)
class PanelFeatures(CandlePanel):
    """A panel's candles (it is a :class:`CandlePanel`), its indicators and the derived series, all
    symbols x time. The candles are the panel's own arrays as contiguous float64."""

    ind: Features
    prev_high20: FloatArray
    prev_low20: FloatArray
    obv_flow20: FloatArray
    atr_pct: FloatArray
    change12: FloatArray
    bar_minutes: float

    def last_bar(self) -> PanelFeatures:
        """The same features restricted to the panel's last bar (views, symbols x 1).

        ``score_panel`` scores this instead of every bar: the same functions on one column, so the
        scanner pays for the indicators' time loops (which need the history) but not for scoring
        bars it will not use.
        """
        last = slice(max(self.open_time_ms.shape[0] - 1, 0), None)
        ind = Features(**{name: getattr(self.ind, name)[:, last] for name in FEATURE_NAMES})
        return PanelFeatures(
            symbols=self.symbols,
            open_time_ms=self.open_time_ms[last],
            open=self.open[:, last],
            high=self.high[:, last],
            low=self.low[:, last],
            close=self.close[:, last],
            volume=self.volume[:, last],
            ind=ind,
            prev_high20=self.prev_high20[:, last],
            prev_low20=self.prev_low20[:, last],
            obv_flow20=self.obv_flow20[:, last],
            atr_pct=self.atr_pct[:, last],
            change12=self.change12[:, last],
            bar_minutes=self.bar_minutes,
        )


def bar_minutes(open_time_ms: npt.NDArray[np.int64]) -> float:
    """The panel's bar length in minutes: the median step between bars (5 when there are fewer than 2).

    The median ignores the odd gap, so a 5-minute panel with missing candles is still 5-minute.
    """
    if open_time_ms.shape[0] < 2:
        return 5.0
    return float(np.median(np.diff(open_time_ms))) / 60_000.0


def _shift(x: FloatArray, k: int) -> FloatArray:
    """``x`` moved ``k`` bars later along time (``out[:, t] = x[:, t - k]``), NaN where undefined."""
    out = np.full_like(x, np.nan)
    if k < x.shape[1]:
        out[:, k:] = x[:, : x.shape[1] - k]
    return out


def _rolling(x: FloatArray, window: int, how: str) -> FloatArray:
    """Rolling max/min/sum over the ``window`` bars ending at each bar; NaN before a full window.

    ``window`` whole-array operations on shifted views (NaN propagates through all three): several
    times faster than reducing a sliding-window view, whose inner axis is strided.
    """
    out = np.full_like(x, np.nan)
    n = x.shape[1]
    if n >= window:
        op = {"max": np.maximum, "min": np.minimum, "sum": np.add}[how]
        acc = x[:, window - 1 :].copy()
        for k in range(1, window):
            op(acc, x[:, window - 1 - k : n - k], out=acc)
        out[:, window - 1 :] = acc
    return out


def panel_features(panel: CandlePanel) -> PanelFeatures:
    """Indicators and derived series for every symbol and bar of ``panel`` (see the module docstring)."""
    ind = features(panel.open, panel.high, panel.low, panel.close, panel.volume)
    o = np.ascontiguousarray(panel.open, dtype=np.float64)
    h = np.ascontiguousarray(panel.high, dtype=np.float64)
    lo = np.ascontiguousarray(panel.low, dtype=np.float64)
    c = np.ascontiguousarray(panel.close, dtype=np.float64)
    v = np.ascontiguousarray(panel.volume, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        volume_sum = _rolling(v, FLOW_LOOKBACK, "sum")
        obv_change = ind.obv - _shift(ind.obv, FLOW_LOOKBACK)
        # No volume at all in the window: no flow either way (0), not 0/0.
        flow = np.where(volume_sum > 0.0, obv_change / np.where(volume_sum > 0.0, volume_sum, 1.0), 0.0)
        flow = np.where(np.isnan(obv_change) | np.isnan(volume_sum), np.nan, flow)
        atr_pct = 100.0 * ind.atr14 / c
    return PanelFeatures(
        symbols=panel.symbols,
        open_time_ms=np.asarray(panel.open_time_ms, dtype=np.int64),
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        ind=ind,
        prev_high20=_shift(_rolling(h, BREAKOUT_LOOKBACK, "max"), 1),
        prev_low20=_shift(_rolling(lo, BREAKOUT_LOOKBACK, "min"), 1),
        obv_flow20=flow,
        atr_pct=atr_pct,
        change12=c - _shift(c, CHANGE_LOOKBACK),
        bar_minutes=bar_minutes(panel.open_time_ms),
    )


def base_valid(pf: PanelFeatures) -> BoolArray:
    """Bars both scorers can score: every feature they read is defined and the ATR is positive."""
    ind = pf.ind
    needed = (
        pf.open,
        pf.close,
        ind.ema21,
        ind.ema50,
        ind.sma200,
        ind.rsi14,
        ind.atr14,
        ind.adx14,
        ind.plus_di,
        ind.minus_di,
        ind.macd_hist,
        ind.bb_upper,
        ind.bb_mid,
        pf.prev_high20,
        pf.prev_low20,
        pf.obv_flow20,
        pf.change12,
    )
    ok = np.ones(pf.close.shape, dtype=np.bool_)
    for array in needed:
        ok &= np.isfinite(array)
    with np.errstate(invalid="ignore"):
        ok &= ind.atr14 > 0.0
    return ok


@dataclass(frozen=True, slots=True)
class BarScores:
    """One scorer's verdict on every bar of a panel (symbols x time).

    ``valid`` marks the scored bars; elsewhere ``sign`` is 0 and the float arrays are NaN. ``sign`` is
    +1 (LONG) or -1 (SHORT); ``score`` is 0..100; ``components`` are the chosen side's contributions.
    """

    symbols: tuple[str, ...]
    open_time_ms: IntArray
    valid: BoolArray
    sign: npt.NDArray[np.int8]
    score: FloatArray
    confidence: FloatArray
    entry: FloatArray
    stop_loss: FloatArray
    take_profit: FloatArray
    atr: FloatArray
    components: dict[str, FloatArray]


def combine_sides(
    pf: PanelFeatures,
    valid: BoolArray,
    long_score: FloatArray,
    short_score: FloatArray,
    long_components: Mapping[str, FloatArray],
    short_components: Mapping[str, FloatArray],
) -> BarScores:
    """Pick the better side per bar (LONG on a tie) and attach confidence and ATR levels.

    A bar stays valid only where both sides' scores are finite and the chosen side's levels can be
    placed (:func:`lib.scoring.levels.levels_valid`).
    """
    with np.errstate(invalid="ignore"):
        is_long = long_score >= short_score
    best = np.where(is_long, long_score, short_score)
    other = np.where(is_long, short_score, long_score)
    sign = np.where(is_long, 1, -1).astype(np.int8)
    atr = pf.ind.atr14
    entry = pf.close
    ok = valid & np.isfinite(long_score) & np.isfinite(short_score) & levels_valid(entry, atr, sign)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(best > 0.0, (best - other) / np.where(best > 0.0, best, 1.0), 0.0)
    stop, take = levels(entry, atr, sign, sl_atr=SL_ATR, tp_atr=TP_ATR)
    nan = np.float64(np.nan)
    components = {
        name: np.where(ok, np.where(is_long, long_components[name], short_components[name]), nan)
        for name in long_components
    }
    return BarScores(
        symbols=pf.symbols,
        open_time_ms=pf.open_time_ms,
        valid=ok,
        sign=np.where(ok, sign, 0).astype(np.int8),
        score=np.where(ok, np.clip(best, 0.0, 100.0), nan),
        confidence=np.where(ok, np.clip(confidence, 0.0, 1.0), nan),
        entry=np.where(ok, entry, nan),
        stop_loss=np.where(ok, stop, nan),
        take_profit=np.where(ok, take, nan),
        atr=np.where(ok, atr, nan),
        components=components,
    )


def last_bar_candidates(bars: BarScores) -> list[Candidate]:
    """One :class:`Candidate` per symbol with a valid score on the panel's last bar, in symbol order."""
    if bars.open_time_ms.shape[0] == 0:
        return []
    t = bars.open_time_ms.shape[0] - 1
    out: list[Candidate] = []
    for i, symbol in enumerate(bars.symbols):
        if not bars.valid[i, t]:
            continue
        direction: Direction = "LONG" if bars.sign[i, t] > 0 else "SHORT"
        out.append(
            Candidate(
                symbol=symbol,
                direction=direction,
                score=float(bars.score[i, t]),
                confidence=float(bars.confidence[i, t]),
                entry=float(bars.entry[i, t]),
                stop_loss=float(bars.stop_loss[i, t]),
                take_profit=float(bars.take_profit[i, t]),
                atr=float(bars.atr[i, t]),
                bar_time_ms=int(bars.open_time_ms[t]),
                components={name: float(values[i, t]) for name, values in bars.components.items()},
            )
        )
    return out


def single_symbol_panel(
    symbol: str,
    open_time_ms: npt.ArrayLike,
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
) -> CandlePanel:
    """A one-row :class:`CandlePanel` from one symbol's 1-D candle arrays (the backtest's unit)."""

    def row(values: npt.ArrayLike) -> FloatArray:
        return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(1, -1))

    return CandlePanel(
        symbols=(symbol,),
        open_time_ms=np.asarray(open_time_ms, dtype=np.int64),
        open=row(open),
        high=row(high),
        low=row(low),
        close=row(close),
        volume=row(volume),
    )
