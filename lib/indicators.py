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
  with TA-Lib's to about 1e-12 relative on the bundled data (the tests require 1e-6).
- **Periods** are integers in TA-Lib's ranges: at least 1 for ``sma``, ``ema``, ``atr`` and
  ``volume_ratio`` and MACD's signal period, at least 2 for ``rsi``, ``adx``, ``bollinger`` and MACD's
  fast and slow periods, at most :data:`MAX_PERIOD`. A period out of range, a shape mismatch, or an
  array that is not a 1-D or 2-D array of numbers raises :class:`lib.errors.InvalidRequest`. Inputs are
  never modified.

Speed and compile cost
----------------------
All the work is done by one parallel numba kernel: each public function hands it a list of jobs (an
indicator and its parameters), and it runs them on every symbol's row, the symbols spread over the
cores with ``prange``. The time loops run inside compiled code, one small kernel per indicator.
:func:`features` is one call of that kernel with the whole feature set: a symbol's indicators run back
to back while its row is in the L1 cache, so the inputs are read from memory once. (A prototype that
interleaved the close-based indicators in a single time loop was 1.7x faster for those, about 1.4x
overall: not worth a second implementation of each indicator.) On 500 symbols x 300 candles,
:func:`features` takes about 4 ms on two cores (6-8 ms on one), about 5x less than a per-symbol
TA-Lib loop on a quiet machine; ``bench/indicators.py`` measures it.

The kernels are compiled on first use and cached on disk (``cache=True``: in ``__pycache__`` next to
this module, or in ``NUMBA_CACHE_DIR``). Compiling from an empty cache takes about 12-16 s on a 2-core
machine, once per checkout (the parallel kernel alone costs ~5 s, hence a single one); later processes
load the cache in about a second, on top of about a second to import numba.

This module is pure: no database, network or file access (numba's compile cache aside).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from lib.errors import InvalidRequest

__all__ = [
    "FEATURE_NAMES",
    "MAX_PERIOD",
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

MAX_PERIOD = 100_000
"""The longest period any indicator accepts (TA-Lib's limit)."""

_F = TypeVar("_F", bound=Callable[..., Any])
_NAN = math.nan


def _jit(fn: _F) -> _F:
    """A serial numba kernel, compiled lazily and cached on disk.

    ``error_model="numpy"``: a division by zero gives inf/NaN instead of raising. Every division here is
    by a period >= 1 or guarded, and Python's check would cost a branch per division in the hot loops.
    """
    return cast(_F, numba.njit(cache=True, error_model="numpy")(fn))


def _parallel_jit(fn: _F) -> _F:
    """A numba kernel whose ``prange`` loops run on all cores, compiled lazily and cached on disk."""
    return cast(_F, numba.njit(cache=True, error_model="numpy", parallel=True)(fn))


# --------------------------------------------------------------------------------------------------
# Row kernels: one symbol, a 1-D row. Each one writes every position of its output rows (NaN during
# warm-up), so outputs can be allocated with np.empty. ``start`` is the first bar with data.
# Seeds and recurrences are TA-Lib's. Inside the recurrences a division by the period is replaced by a
# multiplication by its inverse and branches by selects: the loops are bound by the latency of their
# dependency chains, and a division (~14 cycles) or a mispredicted branch would dominate. This changes
# results by rounding only (~1e-15 relative).
# --------------------------------------------------------------------------------------------------


@_jit
def _first_valid(x: FloatArray) -> int:
    n: int = x.shape[0]
    for i in range(n):
        if not np.isnan(x[i]):
            return i
    return n


@_jit
def _first_valid_all(a: FloatArray, b: FloatArray, c: FloatArray) -> int:
    n: int = a.shape[0]
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
    keep = period - 1.0
    inv = 1.0 / period
    for i in range(first + 1, n):
        delta = x[i] - x[i - 1]
        up = delta if delta > 0.0 else 0.0
        down = -delta if delta < 0.0 else 0.0
        gain = (gain * keep + up) * inv
        loss = (loss * keep + down) * inv
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0.0 else 0.0


@_jit
def _true_range(high: FloatArray, low: FloatArray, close: FloatArray, i: int) -> float:
    prev_close = close[i - 1]
    greatest: float = high[i] - low[i]
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
    keep = period - 1.0
    inv = 1.0 / period
    for i in range(first + 1, n):
        prev = (prev * keep + _true_range(high, low, close, i)) * inv
        out[i] = prev


@_jit
def _directional_moves(high: FloatArray, low: FloatArray, i: int) -> tuple[float, float]:
    # Only the larger of the two moves counts, and only if positive (Wilder); ties count for neither.
    up = high[i] - high[i - 1]
    down = low[i - 1] - low[i]
    plus = up if (up > down and up > 0.0) else 0.0
    minus = down if (down > up and down > 0.0) else 0.0
    return plus, minus


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
    # TA-Lib smooths running sums here (sum - sum/period + new, seeded with the sum of the first
    # period-1 bars), not averages seeded over `period` bars as in its ATR: the true-range state of
    # this kernel is not ATR's, and both must be kept to match TA-Lib.
    plus_dm = 0.0
    minus_dm = 0.0
    tr_sum = 0.0
    for i in range(start + 1, first_di):
        up, down = _directional_moves(high, low, i)
        plus_dm += up
        minus_dm += down
        tr_sum += _true_range(high, low, close, i)
    keep = period - 1.0
    inv = 1.0 / period
    decay = 1.0 - inv
    dx_sum = 0.0
    prev_adx = 0.0
    for i in range(first_di, n):
        up, down = _directional_moves(high, low, i)
        plus_dm = plus_dm * decay + up
        minus_dm = minus_dm * decay + down
        tr_sum = tr_sum * decay + _true_range(high, low, close, i)
        # DX is undefined when there was no range or no directional move at all; TA-Lib then leaves
        # ADX as it was (in practice only before the first move, while ADX is still 0).
        has_dx = False
        dx = 0.0
        plus_di = 0.0
        minus_di = 0.0
        if tr_sum != 0.0:
            scale = 100.0 / tr_sum
            plus_di = plus_dm * scale
            minus_di = minus_dm * scale
            di_sum = plus_di + minus_di
            if di_sum != 0.0:
                has_dx = True
                dx = 100.0 * (abs(minus_di - plus_di) / di_sum)
        plus_out[i] = plus_di
        minus_out[i] = minus_di
        if i < first_adx:
            dx_sum += dx
        elif i == first_adx:
            prev_adx = (dx_sum + dx) / period
            adx_out[i] = prev_adx
        else:
            if has_dx:
                prev_adx = (prev_adx * keep + dx) * inv
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
    inv = 1.0 / period
    # The variance comes from running sums of deviations from a reference close to the prices:
    # E[x^2] - E[x]^2 on raw prices (TA-Lib's way) loses most digits when the spread is small next to
    # the price, and recomputing each window costs `period` operations per bar. The reference moves to
    # the window's mean every `period` bars, where the sums are also recomputed, so they cannot drift.
    ref = 0.0
    s1 = 0.0
    s2 = 0.0
    until_recenter = 0
    for i in range(first, n):
        mean = middle_out[i]
        if until_recenter == 0:
            ref = mean
            s1 = 0.0
            s2 = 0.0
            for j in range(i - period + 1, i + 1):
                d = x[j] - ref
                s1 += d
                s2 += d * d
            until_recenter = period
        else:
            d_new = x[i] - ref
            d_old = x[i - period] - ref
            s1 += d_new - d_old
            s2 += (d_new - d_old) * (d_new + d_old)
        until_recenter -= 1
        m1 = s1 * inv
        var = s2 * inv - m1 * m1
        band = k * math.sqrt(var) if var > 0.0 else 0.0
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
        # sign() is +1, -1 or 0 without a branch: the direction of a close is unpredictable.
        total += np.sign(close[i] - close[i - 1]) * volume[i]
        out[i] = total


@_jit
def _volume_ratio_row(volume: FloatArray, start: int, period: int, out: FloatArray) -> None:
    n = volume.shape[0]
    first = start + period
    _fill_nan(out, first)
    if first >= n:
        return
    # The running sum can keep a rounding residue after its window turned all-zero, so zero baselines
    # are detected by counting the zero volumes in the window, which is exact.
    total = 0.0
    zeros = 0
    for i in range(start, first):
        total += volume[i]
        zeros += volume[i] == 0.0
    for i in range(first, n):
        out[i] = volume[i] * period / total if zeros < period else _NAN
        total += volume[i] - volume[i - period]
        zeros += (volume[i] == 0.0) - (volume[i - period] == 0.0)


# --------------------------------------------------------------------------------------------------
# The 2-D kernel. Every public function, features() included, hands it a list of jobs (an indicator
# with its parameters); it runs the jobs on each row, the rows in parallel. Why one kernel: numba
# compiles each parallel function separately, taking seconds each, and each call site of a row kernel
# is compiled again where it is inlined; with one job loop every row kernel is compiled once, and
# features() runs exactly the code of the individual functions.
# --------------------------------------------------------------------------------------------------

# Job kinds. Plain ints: numba freezes module globals into constants.
_SMA = 0
_EMA = 1
_RSI = 2
_ATR = 3
_ADX = 4
_MACD = 5
_BOLLINGER = 6
_OBV = 7
_VOLUME_RATIO = 8

# How many consecutive output slots each kind writes.
_OUTPUTS = {_SMA: 1, _EMA: 1, _RSI: 1, _ATR: 1, _ADX: 3, _MACD: 3, _BOLLINGER: 3, _OBV: 1, _VOLUME_RATIO: 1}

# Columns of the integer job table.
_KIND = 0
_PERIOD = 1
_PERIOD2 = 2
_PERIOD3 = 3
_SLOT = 4


@dataclass(frozen=True, slots=True)
class _Job:
    kind: int
    period: int = 0
    period2: int = 0
    period3: int = 0
    k: float = 0.0


@_jit
def _run_jobs_row(
    jobs: npt.NDArray[np.int64],
    widths: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    v: FloatArray,
    out: FloatArray,
    r: int,
) -> None:
    s_close = _first_valid(c)
    s_hlc = _first_valid_all(h, lo, c)
    for j in range(jobs.shape[0]):
        kind = jobs[j, _KIND]
        p = jobs[j, _PERIOD]
        slot = jobs[j, _SLOT]
        if kind == _SMA:
            _sma_row(c, s_close, p, out[slot, r])
        elif kind == _EMA:
            _ema_row(c, s_close, p, out[slot, r])
        elif kind == _RSI:
            _rsi_row(c, s_close, p, out[slot, r])
        elif kind == _ATR:
            _atr_row(h, lo, c, s_hlc, p, out[slot, r])
        elif kind == _ADX:
            _dmi_row(h, lo, c, s_hlc, p, out[slot, r], out[slot + 1, r], out[slot + 2, r])
        elif kind == _MACD:
            p2 = jobs[j, _PERIOD2]
            p3 = jobs[j, _PERIOD3]
            _macd_row(c, s_close, p, p2, p3, out[slot, r], out[slot + 1, r], out[slot + 2, r])
        elif kind == _BOLLINGER:
            _bollinger_row(c, s_close, p, widths[j], out[slot, r], out[slot + 1, r], out[slot + 2, r])
        elif kind == _OBV:
            _obv_row(c, v, _first_valid_all(c, v, v), out[slot, r])
        elif kind == _VOLUME_RATIO:
            _volume_ratio_row(v, _first_valid(v), p, out[slot, r])


@_parallel_jit
def _run_jobs(
    jobs: npt.NDArray[np.int64],
    widths: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    out: FloatArray,
) -> None:
    # One type signature for every call: C-contiguous float64 symbols x time inputs (inputs a job
    # does not read are any array of the same shape) and a 3-D block out[slot, symbol, time].
    for r in numba.prange(close.shape[0]):
        _run_jobs_row(jobs, widths, high[r], low[r], close[r], volume[r], out, r)


def _run(
    jobs: Sequence[_Job],
    one_d: bool,
    close: FloatArray,
    high: FloatArray | None = None,
    low: FloatArray | None = None,
    volume: FloatArray | None = None,
) -> list[FloatArray]:
    """Run ``jobs`` on (symbols x time) inputs; their outputs in order, 1-D rows if ``one_d``."""
    table = np.empty((len(jobs), 5), dtype=np.int64)
    slot = 0
    for j, job in enumerate(jobs):
        table[j] = (job.kind, job.period, job.period2, job.period3, slot)
        slot += _OUTPUTS[job.kind]
    widths = np.array([job.k for job in jobs], dtype=np.float64)
    block = np.empty((slot, *close.shape), dtype=np.float64)
    _run_jobs(
        table,
        widths,
        close if high is None else high,
        close if low is None else low,
        close,
        close if volume is None else volume,
        block,
    )
    if one_d:
        return [block[i, 0] for i in range(slot)]
    return [block[i] for i in range(slot)]


# The feature set: jobs in the order of Features' fields.
_FEATURE_JOBS = (
    _Job(_EMA, 21),
    _Job(_EMA, 50),
    _Job(_SMA, 200),
    _Job(_RSI, 14),
    _Job(_ATR, 14),
    _Job(_ADX, 14),
    _Job(_MACD, 12, 26, 9),
    _Job(_BOLLINGER, 20, k=2.0),
    _Job(_OBV),
    _Job(_VOLUME_RATIO, 20),
)


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


def _as_arrays(**named: npt.ArrayLike) -> tuple[list[FloatArray], bool]:
    """Convert and check inputs that must share one shape.

    Returns them as 2-D (symbols x time) arrays, and whether they came as 1-D series.
    """
    arrays = {name: _as_array(name, values) for name, values in named.items()}
    shapes = {name: arr.shape for name, arr in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise InvalidRequest(
            f"inputs must have the same shape, got {listed}",
            details={"shapes": {name: list(shape) for name, shape in shapes.items()}},
        )
    one_d = next(iter(arrays.values())).ndim == 1
    return [arr.reshape(1, -1) if one_d else arr for arr in arrays.values()], one_d


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
    if value > MAX_PERIOD:
        raise InvalidRequest(
            f"{name} must be at most {MAX_PERIOD}, got {value}",
            details={"field": name, "value": int(value), "maximum": MAX_PERIOD},
        )
    return int(value)


def sma(x: npt.ArrayLike, period: int) -> FloatArray:
    """Simple moving average over ``period`` bars (TA-Lib ``SMA``). First value at ``s + period - 1``."""
    p = _period("period", period, 1)
    (arr,), one_d = _as_arrays(x=x)
    return _run([_Job(_SMA, p)], one_d, arr)[0]


def ema(x: npt.ArrayLike, period: int) -> FloatArray:
    """Exponential moving average, ``k = 2 / (period + 1)``, seeded with the SMA of the first ``period``
    values (TA-Lib ``EMA``). First value at ``s + period - 1``."""
    p = _period("period", period, 1)
    (arr,), one_d = _as_arrays(x=x)
    return _run([_Job(_EMA, p)], one_d, arr)[0]


def rsi(close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's relative strength index in 0..100 (TA-Lib ``RSI``). First value at ``s + period``.

    0 where the averaged gains and losses are both 0 (no move at all), as in TA-Lib.
    """
    p = _period("period", period, 2)
    (arr,), one_d = _as_arrays(close=close)
    return _run([_Job(_RSI, p)], one_d, arr)[0]


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's average true range (TA-Lib ``ATR``): the mean of the first ``period`` true ranges, then
    ``(prev * (period - 1) + tr) / period``. First value at ``s + period``."""
    p = _period("period", period, 1)
    (h, lo, c), one_d = _as_arrays(high=high, low=low, close=close)
    return _run([_Job(_ATR, p)], one_d, c, high=h, low=lo)[0]


def adx(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Wilder's directional movement system: ``(adx, plus_di, minus_di)``, each in 0..100 (TA-Lib
    ``ADX``, ``PLUS_DI``, ``MINUS_DI``). +DI and -DI start at ``s + period``, ADX at
    ``s + 2 * period - 1``."""
    p = _period("period", period, 2)
    (h, lo, c), one_d = _as_arrays(high=high, low=low, close=close)
    adx_line, plus_di, minus_di = _run([_Job(_ADX, p)], one_d, c, high=h, low=lo)
    return adx_line, plus_di, minus_di


def macd(
    close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD as TA-Lib computes it: ``(macd, signal, hist)`` with ``macd = ema_fast - ema_slow``,
    ``signal = ema(macd, signal)`` and ``hist = macd - signal``.

    Both EMAs are seeded on the slow EMA's first bar (TA-Lib's way), so the fast line is not
    ``ema(close, fast)`` early on. All three start at ``s + slow - 1 + signal - 1`` (bar 33 for
    12/26/9).
    """
    f = _period("fast", fast, 2)
    sl = _period("slow", slow, 2)
    sg = _period("signal", signal, 1)
    if f > sl:
        raise InvalidRequest(
            f"fast period ({f}) must not exceed slow period ({sl})", details={"fast": f, "slow": sl}
        )
    (arr,), one_d = _as_arrays(close=close)
    line, sig, hist = _run([_Job(_MACD, f, sl, sg)], one_d, arr)
    return line, sig, hist


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
            f"k must be a finite number >= 0, got {k}", details={"field": "k", "value": repr(k)}
        )
    (arr,), one_d = _as_arrays(close=close)
    upper, middle, lower = _run([_Job(_BOLLINGER, p, k=width)], one_d, arr)
    return upper, middle, lower


def obv(close: npt.ArrayLike, volume: npt.ArrayLike) -> FloatArray:
    """On-balance volume (TA-Lib ``OBV``): the first bar's volume, then plus the bar's volume when the
    close rose and minus it when the close fell. Defined from ``s`` on (no warm-up)."""
    (c, v), one_d = _as_arrays(close=close, volume=volume)
    return _run([_Job(_OBV)], one_d, c, volume=v)[0]


def volume_ratio(volume: npt.ArrayLike, period: int = 20) -> FloatArray:
    """A bar's volume over the average volume of the ``period`` bars *before* it.

    The current bar is left out of its own baseline so that a surge is not diluted by itself (with it
    included, the ratio could never exceed ``period``). 1.0 means average volume, 3.0 three times the
    recent average. It equals ``volume[t] / sma(volume, period)[t - 1]``; TA-Lib has no such
    indicator. First value at ``s + period``; NaN where the baseline is 0 (all ``period`` volumes 0).
    """
    p = _period("period", period, 1)
    (arr,), one_d = _as_arrays(volume=volume)
    return _run([_Job(_VOLUME_RATIO, p)], one_d, arr)[0]


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


# Field names of Features, in the order _FEATURE_JOBS produces them.
FEATURE_NAMES: tuple[str, ...] = tuple(field.name for field in fields(Features))


def features(
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
) -> Features:
    """Compute every feature the scorers use in one parallel pass over the symbols.

    Takes a full candle set (1-D for one symbol or 2-D symbols x time, all the same shape; rows may be
    left-padded with NaN) and returns :class:`Features` with arrays of that shape. ``open`` is checked
    but no current feature reads it; it is in the signature so callers hand over whole candles. Each
    field is bit for bit the matching individual function (``ema(close, 21)``,
    ``adx(high, low, close, 14)[1]`` for ``plus_di`` and so on): both run the same kernels.
    """
    (_, h, lo, c, v), one_d = _as_arrays(open=open, high=high, low=low, close=close, volume=volume)
    arrays = _run(_FEATURE_JOBS, one_d, c, high=h, low=lo, volume=v)
    return Features(**dict(zip(FEATURE_NAMES, arrays, strict=True)))
