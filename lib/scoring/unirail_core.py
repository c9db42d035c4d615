"""``unirail_core``: a documented, deterministic confluence score in 0..100.

Every bar gets a LONG score and a SHORT score; the candidate takes the higher one (LONG on a tie).
A side's score is the sum of seven components, each a piecewise-linear function of the indicators
(:mod:`lib.indicators`, :mod:`lib.scoring.features`) capped at its weight. The weights add up to 100,
so a bar where everything lines up scores 100. ``Candidate.components`` holds the seven contributions
of the chosen side; they add up to ``Candidate.score``.

Notation. ``d`` is +1 for LONG and -1 for SHORT. ``ATR`` is ATR(14) and distances are measured in
ATRs so the same breakpoints fit every price level. Two shapes are used::

    ramp(x, lo, hi)         = clip((x - lo) / (hi - lo), 0, 1)       0 below lo, 1 above hi, linear between
    trapezoid(x, a, b, c, e) = min(ramp(x, a, b), 1 - ramp(x, c, e))  0 outside a..e, 1 on b..c

The components (weights add up to 100)
--------------------------------------
``trend`` (25), trend alignment: the three averages stacked in the trade's direction::

    10 * ramp(d * (EMA21 - EMA50) / ATR, 0, 1.5)
   + 8 * ramp(d * (EMA50 - SMA200) / ATR, 0, 3)
   + 7 * ramp(d * (close - SMA200) / ATR, 0, 3)

``momentum`` (15), RSI(14) in the trade's direction (``r = RSI`` for LONG, ``100 - RSI`` for SHORT):
momentum that has started but is not exhausted::

    15 * trapezoid(r, 50, 58, 68, 80)

``strength`` (15), trend strength: ADX(14) counts only as far as the directional indicators agree
with the side::

    15 * ramp(ADX, 20, 40) * ramp(d * (+DI - -DI), 0, 15)

``volume`` (10), volume surge on a bar that closed in the trade's direction (``close >= open`` for
LONG, ``close <= open`` for SHORT; otherwise 0). ``volume_ratio`` is the bar's volume over the mean of
the 20 bars before it (0 when undefined)::

    10 * ramp(volume_ratio, 1, 3) * [bar agrees]

``entry`` (10), entry distance from EMA21 (``x = d * (close - EMA21) / ATR``): best just on the right
side of the average, worse when chasing an extended move or when still on the wrong side::

    10 * trapezoid(x, -0.5, 0, 1, 2.5)

``volatility`` (10), the ATR band (``p = 100 * ATR / close`` on 5-minute bars): too quiet and fees
and ticks eat the 1.5-ATR stop, too wild and the stop is noise. The band is the same for both sides.
On longer bars the breakpoints grow with the square root of the bar length (``m`` minutes, from the
panel's median bar step): ``k = sqrt(m / 5)``::

    10 * trapezoid(p, 0.2 k, 0.4 k, 1.2 k, 2.5 k)

``confirmation`` (15), breakout and OBV confirmation. ``b`` is the close beyond the range of the 20
bars before it (LONG: ``(close - highest high) / ATR``, SHORT: ``(lowest low - close) / ATR``); ``f`` is
the OBV flow of the last 20 bars (:mod:`lib.scoring.features`, -1..1)::

    8 * ramp(b, -0.5, 0.25) + 7 * ramp(d * f, 0, 0.3)

Confidence is ``(best - other) / best`` of the two sides' scores (:mod:`lib.scoring.features`).
Levels: entry = the last close, SL/TP = entry -/+ 1.5/3.0 ATR (:mod:`lib.scoring.levels`).

A symbol gets no candidate on a bar where any input is undefined: fewer than 200 bars of history
(SMA200), a hole in the data inside the indicators' reach, or an ATR of 0.

Why these breakpoints: on the bundled 5-minute history (8 pairs, 20 days) each ramp reaches its cap
on a minority of bars (``|EMA21 - EMA50|`` is under 1 ATR on ~88% of bars, ADX above 35 on ~18%), and
the conditions partly conflict (a breakout is usually far from EMA21 with a hot RSI), so 80 needs
most of them at once. Scoring every bar of that history (44,438 scored bars; rolling 300-bar windows
give the same figures within 0.5) gives these percentiles::

    p1 24.0   p5 28.0   p10 30.7   p25 36.5   p50 45.9   p75 57.4   p90 67.3   p95 72.4
    p99 79.5  p99.9 86.8   min 14.8   max 94.3   >= 80: 0.83% of bars   >= 70: 7.2%

The breakpoints were set by looking at the indicators' distributions and this spread, not at the
outcomes: the backtest (``lib.research.backtest``) is the evidence of what a score is worth, and on
the bundled data higher scores did *not* mean more TP-first trades (see the README's table).

Pure and vectorized: every bar of every symbol is scored with array operations (``score_bars``);
``score_panel`` reads the panel's last bar. Deterministic: no randomness, no state.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candidate, CandlePanel
from lib.scoring.features import (
    BarScores,
    PanelFeatures,
    base_valid,
    combine_sides,
    last_bar_candidates,
    panel_features,
)

FloatArray = npt.NDArray[np.float64]

NAME = "unirail_core"

COMPONENTS: tuple[str, ...] = (
    "trend",
    "momentum",
    "strength",
    "volume",
    "entry",
    "volatility",
    "confirmation",
)
WEIGHTS: dict[str, float] = {
    "trend": 25.0,
    "momentum": 15.0,
    "strength": 15.0,
    "volume": 10.0,
    "entry": 10.0,
    "volatility": 10.0,
    "confirmation": 15.0,
}

# Breakpoints, as in the module docstring.
TREND_FAST = (10.0, 0.0, 1.0)  # weight, lo, hi of (EMA21 - EMA50) / ATR
TREND_SLOW = (8.0, 0.0, 2.0)  # (EMA50 - SMA200) / ATR
TREND_PRICE = (7.0, 0.0, 2.0)  # (close - SMA200) / ATR
RSI_BAND = (50.0, 58.0, 68.0, 80.0)
ADX_RAMP = (20.0, 35.0)
DI_RAMP = (0.0, 10.0)
VOLUME_RAMP = (1.0, 3.0)
ENTRY_BAND = (-0.5, 0.0, 1.0, 2.5)
ATR_PCT_BAND = (0.2, 0.4, 1.2, 2.5)  # on 5-minute bars, scaled by sqrt(minutes / 5)
BREAKOUT = (8.0, -0.5, 0.25)
FLOW = (7.0, 0.0, 0.3)


def ramp(x: FloatArray, lo: float, hi: float) -> FloatArray:
    """``clip((x - lo) / (hi - lo), 0, 1)``; NaN stays NaN."""
    return np.asarray(np.clip((x - lo) / (hi - lo), 0.0, 1.0), dtype=np.float64)


def trapezoid(x: FloatArray, a: float, b: float, c: float, e: float) -> FloatArray:
    """0 outside ``a..e``, 1 on ``b..c``, linear between; NaN stays NaN."""
    return np.asarray(np.minimum(ramp(x, a, b), 1.0 - ramp(x, c, e)), dtype=np.float64)


def side_components(pf: PanelFeatures, d: float) -> dict[str, FloatArray]:
    """The seven components of side ``d`` (+1 LONG, -1 SHORT) on every bar, symbols x time."""
    ind = pf.ind
    atr = ind.atr14
    close = pf.close
    with np.errstate(invalid="ignore", divide="ignore"):
        trend = (
            TREND_FAST[0] * ramp(d * (ind.ema21 - ind.ema50) / atr, TREND_FAST[1], TREND_FAST[2])
            + TREND_SLOW[0] * ramp(d * (ind.ema50 - ind.sma200) / atr, TREND_SLOW[1], TREND_SLOW[2])
            + TREND_PRICE[0] * ramp(d * (close - ind.sma200) / atr, TREND_PRICE[1], TREND_PRICE[2])
        )
        r = ind.rsi14 if d > 0 else 100.0 - ind.rsi14
        momentum = WEIGHTS["momentum"] * trapezoid(r, *RSI_BAND)
        strength = (
            WEIGHTS["strength"]
            * ramp(ind.adx14, *ADX_RAMP)
            * ramp(d * (ind.plus_di - ind.minus_di), *DI_RAMP)
        )
        ratio = np.nan_to_num(ind.volume_ratio, nan=0.0)
        agrees = (d * (close - pf.open)) >= 0.0
        volume = WEIGHTS["volume"] * ramp(ratio, *VOLUME_RAMP) * agrees
        entry = WEIGHTS["entry"] * trapezoid(d * (close - ind.ema21) / atr, *ENTRY_BAND)
        k = math.sqrt(pf.bar_minutes / 5.0)
        a, b, c, e = (k * v for v in ATR_PCT_BAND)
        volatility = WEIGHTS["volatility"] * trapezoid(pf.atr_pct, a, b, c, e)
        beyond = (close - pf.prev_high20) / atr if d > 0 else (pf.prev_low20 - close) / atr
        confirmation = BREAKOUT[0] * ramp(beyond, BREAKOUT[1], BREAKOUT[2]) + FLOW[0] * ramp(
            d * pf.obv_flow20, FLOW[1], FLOW[2]
        )
    return {
        "trend": trend,
        "momentum": momentum,
        "strength": strength,
        "volume": volume,
        "entry": entry,
        "volatility": volatility,
        "confirmation": confirmation,
    }


def score_features(pf: PanelFeatures) -> BarScores:
    """Score every bar of precomputed features (all of a panel's, or :meth:`PanelFeatures.last_bar`)."""
    valid = base_valid(pf)
    long_c = side_components(pf, 1.0)
    short_c = side_components(pf, -1.0)
    long_score = _total(long_c)
    short_score = _total(short_c)
    return combine_sides(pf, valid, long_score, short_score, long_c, short_c)


def _total(components: dict[str, FloatArray]) -> FloatArray:
    # Added in COMPONENTS order, one by one: the score is exactly the sum a reader of the components
    # would compute in that order.
    total = np.zeros_like(components[COMPONENTS[0]])
    for name in COMPONENTS:
        total = total + components[name]
    return total


def score_bars(panel: CandlePanel) -> BarScores:
    """Score every bar of every symbol in ``panel`` at once (the backtest's entry point)."""
    return score_features(panel_features(panel))


def score_panel(panel: CandlePanel) -> list[Candidate]:
    """At most one candidate per symbol, on the panel's last bar (the scanner's entry point)."""
    return last_bar_candidates(score_features(panel_features(panel).last_bar()))
