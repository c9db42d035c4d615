"""Technical indicators on numpy arrays, computed for many symbols at once.

Conventions
-----------
- **Shapes.** Every indicator takes either a 1-D series (one symbol, oldest first) or a 2-D array of
  symbols x time (time on the last axis) and returns arrays of the same shape, ``float64``. Inputs of
  any integer or float dtype are accepted and converted to ``float64``.
- **Warm-up.** Positions where an indicator is not defined yet are NaN. The first defined position of
  each indicator is TA-Lib's (its "lookback"), counted from the first bar with data:

  ========================  ===========================================
  indicator                 first value at (``s`` = first bar with data)
  ========================  ===========================================
  ``sma``, ``ema``          ``s + period - 1``
  ``bollinger``             ``s + period - 1``
  ``rsi``, ``atr``          ``s + period``
  ``adx``: +DI, -DI         ``s + period``
  ``adx``: ADX              ``s + 2 * period - 1``
  ``macd`` (all three)      ``s + slow - 1 + signal - 1``
  ``obv``                   ``s``
  ``volume_ratio``          ``s + period``
  ========================  ===========================================

- **Leading NaN padding.** Rows of a 2-D array may be left-padded with NaN (a symbol with a shorter
  history than the others). Leading NaNs mean "no data yet": the output is NaN there and warm-up starts
  at ``s``, the first bar where every input of that indicator is non-NaN (for ``atr`` and ``adx`` the
  first bar where high, low and close all are). A padded row therefore gives exactly the values of the
  unpadded series, shifted. This is also what TA-Lib's Python wrapper does. NaNs *after* ``s`` are not
  skipped: as in TA-Lib they propagate into the recursive and running-sum indicators from there on, so
  callers should not put holes inside a series.
- **Definitions follow TA-Lib** (default compatibility mode, no extra "unstable period"): EMA with
  ``k = 2 / (period + 1)`` seeded with the SMA of its first ``period`` values; RSI, ATR and ADX with
  Wilder's smoothing, seeded with simple averages exactly where TA-Lib seeds them; MACD's fast EMA seeded
  on the same bar as the slow one (TA-Lib's quirk, so MACD's fast line differs from a standalone
  ``ema(close, fast)`` early on); Bollinger bands use the population standard deviation. Where TA-Lib
  picks a value for 0/0 we pick the same: RSI is 0 when there was no move at all, +DI/-DI are 0 when the
  true range is 0, and a bar with an undefined DX leaves ADX unchanged. After warm-up the values agree
  with TA-Lib's to about 1e-13 relative on the bundled data (the tests require 1e-6).
- **Minimum periods** are TA-Lib's: 1 for ``sma``, ``ema``, ``atr`` and ``volume_ratio``; 2 for ``rsi``,
  ``adx``, ``bollinger`` and MACD's fast and slow periods (1 for its signal period). Anything else, a
  shape mismatch or an array that is not 1-D or 2-D raises :class:`lib.errors.InvalidRequest`.

Speed and compile cost
----------------------
The work is done by numba kernels that loop over time inside compiled code and run the symbols in
parallel (``prange``). :func:`features` computes the whole feature set in one parallel sweep over the
symbols, every indicator of a symbol back to back while its row is still in cache. The kernels are
compiled on first use and cached on disk (``cache=True``, next to this module or in
``NUMBA_CACHE_DIR``): the first call in a fresh checkout spends several seconds compiling; later
processes load the cache in well under a second. ``bench/indicators.py`` measures both.

This module is pure: no database, network or file access of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from lib.errors import InvalidRequest

__all__ = [
    "FEATURE_NAMES",
    "Features",
    "adx",
    "atr",
    "bollinger",
    "ema",
    "features",
    "macd",
    "obv",
    "rsi",
    "sma",
    "volume_ratio",
]

FloatArray = npt.NDArray[np.float64]

_F = TypeVar("_F", bound=Callable[..., Any])
_NAN = math.nan


def _jit(fn: _F) -> _F:
    """A serial numba kernel, compiled lazily and cached on disk."""
    return cast(_F, numba.njit(cache=True)(fn))


def _parallel_jit(fn: _F) -> _F:
    """A numba kernel whose ``prange`` loops run on all cores, compiled lazily and cached on disk."""
    return cast(_F, numba.njit(cache=True, parallel=True)(fn))


# --------------------------------------------------------------------------------------------------
# Row kernels: one symbol, a 1-D row. Each one writes every position of its output rows (NaN during
# warm-up), so outputs can be allocated with np.empty. ``start`` is the first bar with data.
# The arithmetic mirrors TA-Lib's operation order so results agree to rounding error.
# --------------------------------------------------------------------------------------------------


@_jit
def _first_valid(x: FloatArray) -> int:
    n = x.shape[0]
    for i in range(n):
        if not np.isnan(x[i]):
            return i
    return n


@_jit
def _first_valid_all(a: FloatArray, b: FloatArray, c: FloatArray) -> int:
    n = a.shape[0]
    for i in range(n):
        if not (np.isnan(a[i]) or np.isnan(b[i]) or np.isnan(c[i])):
            return i
    return n


@_jit
def _fill_nan(out: FloatArray, stop: int) -> None:
    for i in range(min(stop, out.shape[0])):
        out[i] = _NAN


@_jit
def _sma_row(x: FloatArray, start: int, period: int, out: FloatArray) -> None:
    n = x.shape[0]
    first = start + period - 1
    _fill_nan(out, first)
    if first >= n:
        return
    total = 0.0
    for i in range(start, first):
        total += x[i]
    for i in range(first, n):
        total += x[i]
        out[i] = total / period
        total -= x[i - period + 1]


@_jit
def _ema_row(x: FloatArray, start: int, period: int, out: FloatArray) -> None:
    n = x.shape[0]
    first = start + period - 1
    _fill_nan(out, first)
    if first >= n:
        return
    k = 2.0 / (period + 1)
    total = 0.0
    for i in range(start, first + 1):
        total += x[i]
    prev = total / period
    out[first] = prev
    for i in range(first + 1, n):
        prev = (x[i] - prev) * k + prev
        out[i] = prev


@_jit
def _rsi_row(x: FloatArray, start: int, period: int, out: FloatArray) -> None:
    n = x.shape[0]
    first = start + period
    _fill_nan(out, first)
    if first >= n:
        return
    gain = 0.0
    loss = 0.0
    for i in range(start + 1, first + 1):
        delta = x[i] - x[i - 1]
        if delta < 0.0:
            loss -= delta
        else:
            gain += delta
    gain /= period
    loss /= period
    total = gain + loss
    out[first] = 100.0 * (gain / total) if total != 0.0 else 0.0
    for i in range(first + 1, n):
        delta = x[i] - x[i - 1]
        gain *= period - 1
        loss *= period - 1
        if delta < 0.0:
            loss -= delta
        else:
            gain += delta
        gain /= period
        loss /= period
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0.0 else 0.0


@_jit
def _true_range(high: FloatArray, low: FloatArray, close: FloatArray, i: int) -> float:
    prev_close = close[i - 1]
    greatest = high[i] - low[i]
    up = abs(prev_close - high[i])
    if up > greatest:
        greatest = up
    down = abs(prev_close - low[i])
    if down > greatest:
        greatest = down
    return greatest


@_jit
def _atr_row(
    high: FloatArray, low: FloatArray, close: FloatArray, start: int, period: int, out: FloatArray
) -> None:
    n = high.shape[0]
    first = start + period
    _fill_nan(out, first)
    if first >= n:
        return
    total = 0.0
    for i in range(start + 1, first + 1):
        total += _true_range(high, low, close, i)
    prev = total / period
    out[first] = prev
    for i in range(first + 1, n):
        prev = (prev * (period - 1) + _true_range(high, low, close, i)) / period
        out[i] = prev


@_jit
def _directional_moves(high: FloatArray, low: FloatArray, i: int) -> tuple[float, float]:
    # Only the larger of the two moves counts, and only if positive (Wilder); ties count for neither.
    up = high[i] - high[i - 1]
    down = low[i - 1] - low[i]
    if down > 0.0 and up < down:
        return 0.0, down
    if up > 0.0 and up > down:
        return up, 0.0
    return 0.0, 0.0


@_jit
def _dmi_row(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    start: int,
    period: int,
    adx_out: FloatArray,
    plus_out: FloatArray,
    minus_out: FloatArray,
) -> None:
    n = high.shape[0]
    first_di = start + period
    first_adx = start + 2 * period - 1
    _fill_nan(plus_out, first_di)
    _fill_nan(minus_out, first_di)
    _fill_nan(adx_out, first_adx)
    if first_di >= n:
        return
    # TA-Lib smooths *sums* here (x - x/period + new), seeded with the sum of period-1 bars, unlike
    # ATR which smooths an average; DI is a ratio of two such sums, so only the seeding matters.
    plus_dm = 0.0
    minus_dm = 0.0
    tr_sum = 0.0
    for i in range(start + 1, first_di):
        up, down = _directional_moves(high, low, i)
        plus_dm += up
        minus_dm += down
        tr_sum += _true_range(high, low, close, i)
    dx_sum = 0.0
    prev_adx = 0.0
    for i in range(first_di, n):
        up, down = _directional_moves(high, low, i)
        plus_dm = plus_dm - plus_dm / period + up
        minus_dm = minus_dm - minus_dm / period + down
        tr_sum = tr_sum - tr_sum / period + _true_range(high, low, close, i)
        dx = _NAN
        if tr_sum != 0.0:
            plus_di = 100.0 * (plus_dm / tr_sum)
            minus_di = 100.0 * (minus_dm / tr_sum)
            di_sum = plus_di + minus_di
            if di_sum != 0.0:
                dx = 100.0 * (abs(minus_di - plus_di) / di_sum)
        else:
            plus_di = 0.0
            minus_di = 0.0
        plus_out[i] = plus_di
        minus_out[i] = minus_di
        if i < first_adx:
            if not np.isnan(dx):
                dx_sum += dx
        elif i == first_adx:
            if not np.isnan(dx):
                dx_sum += dx
            prev_adx = dx_sum / period
            adx_out[i] = prev_adx
        else:
            if not np.isnan(dx):
                prev_adx = (prev_adx * (period - 1) + dx) / period
            adx_out[i] = prev_adx


@_jit
def _macd_row(
    x: FloatArray,
    start: int,
    fast: int,
    slow: int,
    signal: int,
    macd_out: FloatArray,
    signal_out: FloatArray,
    hist_out: FloatArray,
) -> None:
    n = x.shape[0]
    seed = start + slow - 1
    first = seed + signal - 1
    _fill_nan(macd_out, first)
    _fill_nan(signal_out, first)
    _fill_nan(hist_out, first)
    if first >= n:
        return
    k_fast = 2.0 / (fast + 1)
    k_slow = 2.0 / (slow + 1)
    k_signal = 2.0 / (signal + 1)
    # Both EMAs are seeded on the slow one's first bar: the fast seed averages the last `fast` values
    # up to there, not the first ones. This is TA-Lib's MACD, not two standalone EMAs.
    slow_total = 0.0
    for i in range(start, seed + 1):
        slow_total += x[i]
    fast_total = 0.0
    for i in range(seed - fast + 1, seed + 1):
        fast_total += x[i]
    slow_ema = slow_total / slow
    fast_ema = fast_total / fast
    line = fast_ema - slow_ema
    signal_total = line
    for i in range(seed + 1, first + 1):
        fast_ema = (x[i] - fast_ema) * k_fast + fast_ema
        slow_ema = (x[i] - slow_ema) * k_slow + slow_ema
        line = fast_ema - slow_ema
        signal_total += line
    signal_ema = signal_total / signal
    macd_out[first] = line
    signal_out[first] = signal_ema
    hist_out[first] = line - signal_ema
    for i in range(first + 1, n):
        fast_ema = (x[i] - fast_ema) * k_fast + fast_ema
        slow_ema = (x[i] - slow_ema) * k_slow + slow_ema
        line = fast_ema - slow_ema
        signal_ema = (line - signal_ema) * k_signal + signal_ema
        macd_out[i] = line
        signal_out[i] = signal_ema
        hist_out[i] = line - signal_ema


@_jit
def _bollinger_row(
    x: FloatArray,
    start: int,
    period: int,
    k: float,
    upper_out: FloatArray,
    middle_out: FloatArray,
    lower_out: FloatArray,
) -> None:
    n = x.shape[0]
    first = start + period - 1
    _sma_row(x, start, period, middle_out)
    _fill_nan(upper_out, first)
    _fill_nan(lower_out, first)
    for i in range(first, n):
        mean = middle_out[i]
        # Two-pass variance over the window: E[x^2] - E[x]^2 from running sums cancels badly when the
        # spread is small next to the price, and is no faster at period 20.
        sq = 0.0
        for j in range(i - period + 1, i + 1):
            d = x[j] - mean
            sq += d * d
        band = k * math.sqrt(sq / period)
        upper_out[i] = mean + band
        lower_out[i] = mean - band


@_jit
def _obv_row(close: FloatArray, volume: FloatArray, start: int, out: FloatArray) -> None:
    n = close.shape[0]
    _fill_nan(out, start)
    if start >= n:
        return
    total = volume[start]
    out[start] = total
    for i in range(start + 1, n):
        if close[i] > close[i - 1]:
            total += volume[i]
        elif close[i] < close[i - 1]:
            total -= volume[i]
        out[i] = total


@_jit
def _volume_ratio_row(volume: FloatArray, start: int, period: int, out: FloatArray) -> None:
    n = volume.shape[0]
    first = start + period
    _fill_nan(out, first)
    if first >= n:
        return
    total = 0.0
    for i in range(start, first):
        total += volume[i]
    for i in range(first, n):
        baseline = total / period
        out[i] = volume[i] / baseline if baseline != 0.0 else _NAN
        total += volume[i] - volume[i - period]


# --------------------------------------------------------------------------------------------------
# 2-D drivers: one parallel loop over symbols each. Inputs are C-contiguous float64 (symbols x time);
# one signature per driver keeps numba to one compilation each.
# --------------------------------------------------------------------------------------------------


@_parallel_jit
def _sma_2d(x: FloatArray, period: int, out: FloatArray) -> None:
    for r in numba.prange(x.shape[0]):
        _sma_row(x[r], _first_valid(x[r]), period, out[r])


@_parallel_jit
def _ema_2d(x: FloatArray, period: int, out: FloatArray) -> None:
    for r in numba.prange(x.shape[0]):
        _ema_row(x[r], _first_valid(x[r]), period, out[r])


@_parallel_jit
def _rsi_2d(x: FloatArray, period: int, out: FloatArray) -> None:
    for r in numba.prange(x.shape[0]):
        _rsi_row(x[r], _first_valid(x[r]), period, out[r])


@_parallel_jit
def _atr_2d(high: FloatArray, low: FloatArray, close: FloatArray, period: int, out: FloatArray) -> None:
    for r in numba.prange(high.shape[0]):
        start = _first_valid_all(high[r], low[r], close[r])
        _atr_row(high[r], low[r], close[r], start, period, out[r])


@_parallel_jit
def _dmi_2d(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    period: int,
    adx_out: FloatArray,
    plus_out: FloatArray,
    minus_out: FloatArray,
) -> None:
    for r in numba.prange(high.shape[0]):
        start = _first_valid_all(high[r], low[r], close[r])
        _dmi_row(high[r], low[r], close[r], start, period, adx_out[r], plus_out[r], minus_out[r])


@_parallel_jit
def _macd_2d(
    x: FloatArray,
    fast: int,
    slow: int,
    signal: int,
    macd_out: FloatArray,
    signal_out: FloatArray,
    hist_out: FloatArray,
) -> None:
    for r in numba.prange(x.shape[0]):
        _macd_row(x[r], _first_valid(x[r]), fast, slow, signal, macd_out[r], signal_out[r], hist_out[r])


@_parallel_jit
def _bollinger_2d(
    x: FloatArray,
    period: int,
    k: float,
    upper_out: FloatArray,
    middle_out: FloatArray,
    lower_out: FloatArray,
) -> None:
    for r in numba.prange(x.shape[0]):
        _bollinger_row(x[r], _first_valid(x[r]), period, k, upper_out[r], middle_out[r], lower_out[r])


@_parallel_jit
def _obv_2d(close: FloatArray, volume: FloatArray, out: FloatArray) -> None:
    for r in numba.prange(close.shape[0]):
        start = _first_valid_all(close[r], volume[r], volume[r])
        _obv_row(close[r], volume[r], start, out[r])


@_parallel_jit
def _volume_ratio_2d(volume: FloatArray, period: int, out: FloatArray) -> None:
    for r in numba.prange(volume.shape[0]):
        _volume_ratio_row(volume[r], _first_valid(volume[r]), period, out[r])


# Index of each feature in the block _features_2d fills (its first axis).
FEATURE_NAMES: tuple[str, ...] = (
    "ema21",
    "ema50",
    "sma200",
    "rsi14",
    "atr14",
    "adx14",
    "plus_di",
    "minus_di",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_mid",
    "bb_lower",
    "obv",
    "volume_ratio",
)


@_parallel_jit
def _features_2d(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, out: FloatArray
) -> None:
    for r in numba.prange(close.shape[0]):
        h = high[r]
        lo = low[r]
        c = close[r]
        v = volume[r]
        s_close = _first_valid(c)
        s_hlc = _first_valid_all(h, lo, c)
        _ema_row(c, s_close, 21, out[0, r])
        _ema_row(c, s_close, 50, out[1, r])
        _sma_row(c, s_close, 200, out[2, r])
        _rsi_row(c, s_close, 14, out[3, r])
        _atr_row(h, lo, c, s_hlc, 14, out[4, r])
        _dmi_row(h, lo, c, s_hlc, 14, out[5, r], out[6, r], out[7, r])
        _macd_row(c, s_close, 12, 26, 9, out[8, r], out[9, r], out[10, r])
        _bollinger_row(c, s_close, 20, 2.0, out[11, r], out[12, r], out[13, r])
        _obv_row(c, v, _first_valid_all(c, v, v), out[14, r])
        _volume_ratio_row(v, _first_valid(v), 20, out[15, r])


# --------------------------------------------------------------------------------------------------
# Input checks and the public API.
# --------------------------------------------------------------------------------------------------


def _as_array(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged nested lists, for instance
        raise InvalidRequest(f"{name} is not a numeric array: {exc}", details={"field": name}) from exc
    if raw.dtype.kind not in "iuf":
        raise InvalidRequest(
            f"{name} must hold integers or floats, not {raw.dtype}",
            details={"field": name, "dtype": str(raw.dtype)},
        )
    if raw.ndim not in (1, 2):
        raise InvalidRequest(
            f"{name} must be a 1-D series or a 2-D array of symbols x time, got {raw.ndim}-D "
            f"shape {raw.shape}",
            details={"field": name, "shape": list(raw.shape)},
        )
    return np.ascontiguousarray(raw, dtype=np.float64)


def _as_arrays(**named: npt.ArrayLike) -> list[FloatArray]:
    """Convert and check inputs that must share one shape; returned as 2-D (symbols x time)."""
    arrays = {name: _as_array(name, values) for name, values in named.items()}
    shapes = {name: arr.shape for name, arr in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise InvalidRequest(
            f"inputs must have the same shape, got {listed}",
            details={"shapes": {name: list(shape) for name, shape in shapes.items()}},
        )
    return [arr.reshape(1, -1) if arr.ndim == 1 else arr for arr in arrays.values()]


def _period(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidRequest(
            f"{name} must be an integer, got {value!r}", details={"field": name, "value": repr(value)}
        )
    if value < minimum:
        raise InvalidRequest(
            f"{name} must be at least {minimum}, got {value}",
            details={"field": name, "value": int(value), "minimum": minimum},
        )
    return int(value)


def _shaped_like(out: FloatArray, template: npt.ArrayLike) -> FloatArray:
    return out.reshape(-1) if np.ndim(template) == 1 else out


def sma(x: npt.ArrayLike, period: int) -> FloatArray:
    """Simple moving average over ``period`` bars (TA-Lib ``SMA``). First value at ``s + period - 1``."""
    p = _period("period", period, 1)
    (arr,) = _as_arrays(x=x)
    out = np.empty_like(arr)
    _sma_2d(arr, p, out)
    return _shaped_like(out, x)


def ema(x: npt.ArrayLike, period: int) -> FloatArray:
    """Exponential moving average, ``k = 2 / (period + 1)``, seeded with the SMA of the first ``period``
    values (TA-Lib ``EMA``). First value at ``s + period - 1``."""
    p = _period("period", period, 1)
    (arr,) = _as_arrays(x=x)
    out = np.empty_like(arr)
    _ema_2d(arr, p, out)
    return _shaped_like(out, x)


def rsi(close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's relative strength index in 0..100 (TA-Lib ``RSI``). First value at ``s + period``;
    0 when the seed window or the smoothed averages saw no move at all, as TA-Lib does."""
    p = _period("period", period, 2)
    (arr,) = _as_arrays(close=close)
    out = np.empty_like(arr)
    _rsi_2d(arr, p, out)
    return _shaped_like(out, close)


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's average true range (TA-Lib ``ATR``): the mean of the first ``period`` true ranges, then
    ``(prev * (period - 1) + tr) / period``. First value at ``s + period``."""
    p = _period("period", period, 1)
    h, lo, c = _as_arrays(high=high, low=low, close=close)
    out = np.empty_like(c)
    _atr_2d(h, lo, c, p, out)
    return _shaped_like(out, close)


def adx(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Wilder's directional movement system: ``(adx, plus_di, minus_di)``, each 0..100 (TA-Lib ``ADX``,
    ``PLUS_DI``, ``MINUS_DI``). +DI/-DI start at ``s + period``, ADX at ``s + 2 * period - 1``."""
    p = _period("period", period, 2)
    h, lo, c = _as_arrays(high=high, low=low, close=close)
    adx_out = np.empty_like(c)
    plus_out = np.empty_like(c)
    minus_out = np.empty_like(c)
    _dmi_2d(h, lo, c, p, adx_out, plus_out, minus_out)
    return (
        _shaped_like(adx_out, close),
        _shaped_like(plus_out, close),
        _shaped_like(minus_out, close),
    )


def macd(
    close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD as TA-Lib computes it: ``(macd, signal, hist)`` with ``macd = ema_fast - ema_slow``,
    ``signal = ema(macd, signal)``, ``hist = macd - signal``. Both EMAs are seeded on the slow EMA's
    first bar. All three start at ``s + slow - 1 + signal - 1`` (bar 33 for 12/26/9)."""
    f = _period("fast", fast, 2)
    sl = _period("slow", slow, 2)
    sg = _period("signal", signal, 1)
    if f > sl:
        raise InvalidRequest(
            f"fast period ({f}) must not exceed slow period ({sl})", details={"fast": f, "slow": sl}
        )
    (arr,) = _as_arrays(close=close)
    line = np.empty_like(arr)
    sig = np.empty_like(arr)
    hist = np.empty_like(arr)
    _macd_2d(arr, f, sl, sg, line, sig, hist)
    return _shaped_like(line, close), _shaped_like(sig, close), _shaped_like(hist, close)


def bollinger(
    close: npt.ArrayLike, period: int = 20, k: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands ``(upper, middle, lower)``: the SMA over ``period`` bars plus and minus ``k``
    population standard deviations of the same window (TA-Lib ``BBANDS`` with an SMA). First value at
    ``s + period - 1``."""
    p = _period("period", period, 2)
    if isinstance(k, bool) or not isinstance(k, int | float | np.integer | np.floating):
        raise InvalidRequest(f"k must be a number, got {k!r}", details={"field": "k", "value": repr(k)})
    width = float(k)
    if not math.isfinite(width) or width < 0.0:
        raise InvalidRequest(
            f"k must be a finite number >= 0, got {k}", details={"field": "k", "value": width}
        )
    (arr,) = _as_arrays(close=close)
    upper = np.empty_like(arr)
    middle = np.empty_like(arr)
    lower = np.empty_like(arr)
    _bollinger_2d(arr, p, width, upper, middle, lower)
    return _shaped_like(upper, close), _shaped_like(middle, close), _shaped_like(lower, close)


def obv(close: npt.ArrayLike, volume: npt.ArrayLike) -> FloatArray:
    """On-balance volume (TA-Lib ``OBV``): starts at the first bar's volume, then adds the bar's volume
    when the close rose, subtracts it when it fell. Defined from ``s`` (no warm-up)."""
    c, v = _as_arrays(close=close, volume=volume)
    out = np.empty_like(c)
    _obv_2d(c, v, out)
    return _shaped_like(out, close)


def volume_ratio(volume: npt.ArrayLike, period: int = 20) -> FloatArray:
    """A bar's volume over the average volume of the ``period`` bars *before* it.

    The current bar is left out of its own baseline so that a surge is not diluted by itself (with it
    included, the ratio could never exceed ``period``). 1.0 means average volume, 3.0 three times the
    recent average. First value at ``s + period``; NaN where the baseline volume is 0 (undefined).
    Equals ``volume[t] / sma(volume, period)[t - 1]``; TA-Lib has no such indicator.
    """
    p = _period("period", period, 1)
    (arr,) = _as_arrays(volume=volume)
    out = np.empty_like(arr)
    _volume_ratio_2d(arr, p, out)
    return _shaped_like(out, volume)


@dataclass(frozen=True, slots=True)
class Features:
    """The project's full feature set for ``unirail_core`` (and ``quantum_ai``), shaped like the inputs.

    Each field is the named indicator with the standard parameters: EMA 21 and 50, SMA 200, RSI 14,
    ATR 14, ADX/+DI/-DI 14, MACD 12/26/9, Bollinger 20 x 2.0, OBV and the 20-bar volume ratio. The
    arrays are views into one block allocated by :func:`features`.
    """

    ema21: FloatArray
    ema50: FloatArray
    sma200: FloatArray
    rsi14: FloatArray
    atr14: FloatArray
    adx14: FloatArray
    plus_di: FloatArray
    minus_di: FloatArray
    macd: FloatArray
    macd_signal: FloatArray
    macd_hist: FloatArray
    bb_upper: FloatArray
    bb_mid: FloatArray
    bb_lower: FloatArray
    obv: FloatArray
    volume_ratio: FloatArray


def features(
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
) -> Features:
    """Compute every feature the scorers use in one parallel pass over the symbols.

    Takes a full candle set (1-D for one symbol or 2-D symbols x time, all the same shape) and returns
    :class:`Features` with arrays of that shape. ``open`` is checked but not used by any current
    feature; it is part of the signature so callers hand over whole candles. Each field equals the
    matching individual function (``ema(close, 21)``, ``adx(high, low, close, 14)[1]`` for ``plus_di``
    and so on), NaN padding included.
    """
    _, h, lo, c, v = _as_arrays(open=open, high=high, low=low, close=close, volume=volume)
    block = np.empty((len(FEATURE_NAMES), *c.shape), dtype=np.float64)
    _features_2d(h, lo, c, v, block)
    one_d = np.ndim(close) == 1
    fields = {name: block[i, 0] if one_d else block[i] for i, name in enumerate(FEATURE_NAMES)}
    return Features(**fields)
