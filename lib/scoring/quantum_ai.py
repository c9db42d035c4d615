"""``quantum_ai``: a learned estimate of P(TP before SL within the horizon), as a score in 0..100.

The model
---------
An additive model of boosted decision stumps (a "GAM" grown by gradient boosting), fitted in numpy:

    logit = bias + sum_f table_f[bin_f(x_f)]
    p     = sigmoid(a * logit + b)            (Platt calibration)
    score = 100 * p

Each feature ``x_f`` is cut into at most 32 bins at quantiles of the training data (``edges_f``; a value
goes to bin ``searchsorted(edges_f, x, side="right")``) and gets a table of per-bin logit contributions.
Each boosting round adds one stump (one feature, one cut, two leaf values) to its feature's table, so
the fitted model stays a sum of one-feature step functions: the contribution of every feature to a
score is exact, not an approximation. The tables are centered (a feature's mean contribution over the
training data is 0, the mean goes into ``bias``), so a contribution reads as "this feature moved the
log-odds by so much against a typical bar".

The label is ``TP first`` (:mod:`lib.core.outcomes`) for a trade entered at the bar's close with the levels
of :mod:`lib.scoring.levels` (SL 1.5 ATR, TP 3 ATR) within the backtest's horizon of 48 bars
(:data:`lib.research.exits.DEFAULT_HORIZON_BARS`; four hours of 5-minute bars); SL first and "neither"
are both 0. Each bar gives two samples, LONG and SHORT: the features
are oriented by the side (``d`` = +1 LONG, -1 SHORT) so that "in the trade's favour" reads the same
for both, and a ``side`` feature lets the model learn a difference between them.

Features (``ATR`` = ATR14; all scale-free, so one model serves every price level):

====================  ======================================================================
``side``              ``d``
``trend_fast``        ``d * (EMA21 - EMA50) / ATR``
``trend_slow``        ``d * (EMA50 - SMA200) / ATR``
``dist_sma200``       ``d * (close - SMA200) / ATR``
``dist_ema21``        ``d * (close - EMA21) / ATR``
``rsi``               ``50 + d * (RSI14 - 50)``
``adx``               ``ADX14``
``di_spread``         ``d * (+DI - -DI)``
``volume_ratio``      bar volume / mean of the 20 before (0 when undefined)
``candle``            ``d * (close - open) / ATR``
``atr_pct``           ``100 * ATR / close``
``breakout``          LONG ``(close - highest high of the 20 bars before) / ATR``, SHORT mirrored
``obv_flow``          ``d *`` the 20-bar OBV flow (:mod:`lib.scoring.features`)
``macd_hist``         ``d * MACD histogram / ATR``
``bb_position``       ``d * (close - BB mid) / (BB upper - BB mid)`` (0 for a zero-width band)
``change12``          ``d * (close - close 12 bars ago) / ATR``
``bb_width``          ``(BB upper - BB lower) / ATR``
====================  ======================================================================

Inference (:func:`score_bars`, :func:`score_panel`) is numpy only and deterministic. The candidate's
side is the one with the higher probability (LONG on a tie); ``components`` are the chosen side's
per-feature contributions to the *calibrated* logit (``a * table_f[bin]``) plus ``intercept``
(``a * bias + b``): they add up to ``logit(score / 100)``, not to the score. Confidence is
``(best - other) / best`` of the two sides' probabilities.

What to expect: with 2 R targets the TP-first rate on the bundled 2024 USDT data is about 32%, and the
calibrated probabilities of v2 stay between about 0.2 and 0.5 (out of sample they beat the base rate
only slightly: README, "quantum_ai v2"). A ``quantum_ai`` score therefore never comes near the
default threshold of 80; a threshold for this algorithm has to be chosen on its own scale.

The weights live in ``lib/scoring/weights/quantum_ai_v2.json`` (:mod:`lib.scoring.quantum_ai_weights`:
the model's types, the file's codec and the feature names it must carry). Training is offline, in
:mod:`lib.research.training` (run by ``scripts/train_quantum_ai.py``): rolling walk-forward folds,
held-out symbols, boosting, Platt calibration and the comparison with scikit-learn; this module only
scores.
"""

from __future__ import annotations

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
from lib.scoring.quantum_ai_weights import (
    FEATURE_NAMES,
    CalibratedModel,
    load_weights,
)

__all__ = ["NAME", "score_bars", "score_features", "score_panel", "side_features", "sigmoid"]

FloatArray = npt.NDArray[np.float64]

NAME = "quantum_ai"


def side_features(pf: PanelFeatures, d: float) -> dict[str, FloatArray]:
    """The model's features for side ``d`` (+1 LONG, -1 SHORT) on every bar (see the module docstring)."""
    ind = pf.ind
    atr = ind.atr14
    close = pf.close
    with np.errstate(invalid="ignore", divide="ignore"):
        half_band = ind.bb_upper - ind.bb_mid
        bb_position = np.where(
            half_band > 0.0, (close - ind.bb_mid) / np.where(half_band > 0, half_band, 1), 0
        )
        bb_position = np.where(np.isnan(half_band), np.nan, bb_position)
        breakout = (close - pf.prev_high20) / atr if d > 0 else (pf.prev_low20 - close) / atr
        out = {
            "side": np.full(close.shape, d),
            "trend_fast": d * (ind.ema21 - ind.ema50) / atr,
            "trend_slow": d * (ind.ema50 - ind.sma200) / atr,
            "dist_sma200": d * (close - ind.sma200) / atr,
            "dist_ema21": d * (close - ind.ema21) / atr,
            "rsi": 50.0 + d * (ind.rsi14 - 50.0),
            "adx": ind.adx14,
            "di_spread": d * (ind.plus_di - ind.minus_di),
            "volume_ratio": np.nan_to_num(ind.volume_ratio, nan=0.0),
            "candle": d * (close - pf.open) / atr,
            "atr_pct": pf.atr_pct,
            "breakout": breakout,
            "obv_flow": d * pf.obv_flow20,
            "macd_hist": d * ind.macd_hist / atr,
            "bb_position": d * bb_position,
            "change12": d * pf.change12 / atr,
            "bb_width": (ind.bb_upper - ind.bb_lower) / atr,
        }
    return {name: np.asarray(out[name], dtype=np.float64) for name in FEATURE_NAMES}


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function, elementwise."""
    # exp of a negative magnitude only: no overflow warning for large |z|.
    e = np.exp(-np.abs(z))
    return np.asarray(np.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e)), dtype=np.float64)


def score_features(pf: PanelFeatures, model: CalibratedModel, with_components: bool = True) -> BarScores:
    """Score every bar of precomputed features (a whole panel's, or its last bar's) with ``model``.

    ``with_components=False`` leaves ``components`` empty (the backtest drops them): the scores are the
    same, and the 36 per-bar component arrays are never built.
    """
    valid = base_valid(pf)
    sides: list[tuple[FloatArray, dict[str, FloatArray]]] = []
    a, b = model.platt.a, model.platt.b
    for d in (1.0, -1.0):
        x = side_features(pf, d)
        for name in FEATURE_NAMES:
            valid &= np.isfinite(x[name])
        # Summed feature by feature from the bias, in the order training sums them (raw_logit); both
        # paths do the same floating-point additions, so they give the same bits.
        components: dict[str, FloatArray] = {}
        if with_components:
            contrib = model.model.contributions(x)
            logit = np.full(pf.close.shape, model.model.bias)
            for name in FEATURE_NAMES:
                logit += contrib[name]
            components["intercept"] = np.full(pf.close.shape, a * model.model.bias + b)
            components.update({name: a * contrib[name] for name in FEATURE_NAMES})
        else:
            logit = model.model.logit(x)
        sides.append((100.0 * sigmoid(a * logit + b), components))
    (long_score, long_c), (short_score, short_c) = sides
    return combine_sides(pf, valid, long_score, short_score, long_c, short_c)


def score_bars(panel: CandlePanel, model: CalibratedModel | None = None) -> BarScores:
    """Score every bar of every symbol in ``panel`` (default: the deployed model of the weights file)."""
    return score_features(panel_features(panel), model or load_weights().final)


def score_panel(panel: CandlePanel, model: CalibratedModel | None = None) -> list[Candidate]:
    """At most one candidate per symbol, on the panel's last bar (the scanner's entry point)."""
    return last_bar_candidates(
        score_features(panel_features(panel).last_bar(), model or load_weights().final)
    )
