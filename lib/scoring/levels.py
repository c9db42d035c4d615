"""Stop-loss and take-profit levels from the ATR, shared by both scorers, the backtest and training.

For a trade entered at ``entry`` (the signal bar's close) with the bar's ATR(14) ``atr``::

    LONG:  stop_loss = entry - SL_ATR * atr      take_profit = entry + TP_ATR * atr
    SHORT: stop_loss = entry + SL_ATR * atr      take_profit = entry - TP_ATR * atr

with ``SL_ATR = 1.5`` and ``TP_ATR = 3.0``: the stop sits one and a half average bar ranges away,
outside the noise of a single bar, and the target is twice as far, so a trade that reaches its
target earns +2 R (R = the stop distance) and one that is stopped loses 1 R. Break-even therefore
needs a TP-first share above 1/3 when nothing is left open.

A level is only usable when the ATR is positive and both levels stay above zero (a LONG's stop or a
SHORT's target at or below 0 cannot be placed): :func:`levels_valid` says where. Pure: numpy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SL_ATR = 1.5
"""Stop distance in ATRs."""
TP_ATR = 3.0
"""Target distance in ATRs (2 R with ``SL_ATR = 1.5``)."""


def levels(
    entry: npt.ArrayLike,
    atr: npt.ArrayLike,
    sign: npt.ArrayLike,
    *,
    sl_atr: float = SL_ATR,
    tp_atr: float = TP_ATR,
) -> tuple[FloatArray, FloatArray]:
    """``(stop_loss, take_profit)`` for entries at ``entry`` with ``atr``; ``sign`` is +1 LONG, -1 SHORT.

    Broadcasts like numpy; NaN inputs give NaN levels.
    """
    e = np.asarray(entry, dtype=np.float64)
    a = np.asarray(atr, dtype=np.float64)
    s = np.asarray(sign, dtype=np.float64)
    return e - s * sl_atr * a, e + s * tp_atr * a


def levels_valid(
    entry: npt.ArrayLike,
    atr: npt.ArrayLike,
    sign: npt.ArrayLike,
    *,
    sl_atr: float = SL_ATR,
    tp_atr: float = TP_ATR,
) -> BoolArray:
    """Where levels can be placed: finite entry and ATR, ATR > 0, entry > 0, a positive stop and target,
    and the levels strictly on their sides of the entry (an ATR too small to move the entry in floating
    point fails this)."""
    e = np.asarray(entry, dtype=np.float64)
    s = np.asarray(sign, dtype=np.float64)
    a = np.asarray(atr, dtype=np.float64)
    stop, take = levels(e, a, s, sl_atr=sl_atr, tp_atr=tp_atr)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(e) & np.isfinite(a) & (a > 0.0) & (e > 0.0) & (stop > 0.0) & (take > 0.0)
        ok &= (s * (e - stop) > 0.0) & (s * (take - e) > 0.0)
    return np.asarray(ok, dtype=np.bool_)
