"""The numba kernels behind :mod:`lib.indicators`: one small kernel per indicator and one parallel
driver that runs a list of jobs over every symbol's row. Private: callers use the public API.

About 524 lines because each indicator's time loop is spelled out in compiled code; splitting the
kernels across modules would split the one job table they share. See :mod:`lib.indicators` for the
conventions (shapes, warm-up, TA-Lib definitions) these kernels implement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

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
SMA = 0
EMA = 1
RSI = 2
ATR = 3
ADX = 4
MACD = 5
BOLLINGER = 6
OBV = 7
VOLUME_RATIO = 8

# How many consecutive output slots each kind writes.
_OUTPUTS = {SMA: 1, EMA: 1, RSI: 1, ATR: 1, ADX: 3, MACD: 3, BOLLINGER: 3, OBV: 1, VOLUME_RATIO: 1}

# Columns of the integer job table.
_KIND = 0
_PERIOD = 1
_PERIOD2 = 2
_PERIOD3 = 3
_SLOT = 4


@dataclass(frozen=True, slots=True)
class Job:
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
        if kind == SMA:
            _sma_row(c, s_close, p, out[slot, r])
        elif kind == EMA:
            _ema_row(c, s_close, p, out[slot, r])
        elif kind == RSI:
            _rsi_row(c, s_close, p, out[slot, r])
        elif kind == ATR:
            _atr_row(h, lo, c, s_hlc, p, out[slot, r])
        elif kind == ADX:
            _dmi_row(h, lo, c, s_hlc, p, out[slot, r], out[slot + 1, r], out[slot + 2, r])
        elif kind == MACD:
            p2 = jobs[j, _PERIOD2]
            p3 = jobs[j, _PERIOD3]
            _macd_row(c, s_close, p, p2, p3, out[slot, r], out[slot + 1, r], out[slot + 2, r])
        elif kind == BOLLINGER:
            _bollinger_row(c, s_close, p, widths[j], out[slot, r], out[slot + 1, r], out[slot + 2, r])
        elif kind == OBV:
            _obv_row(c, v, _first_valid_all(c, v, v), out[slot, r])
        elif kind == VOLUME_RATIO:
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


def run(
    jobs: Sequence[Job],
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
FEATURE_JOBS = (
    Job(EMA, 21),
    Job(EMA, 50),
    Job(SMA, 200),
    Job(RSI, 14),
    Job(ATR, 14),
    Job(ADX, 14),
    Job(MACD, 12, 26, 9),
    Job(BOLLINGER, 20, k=2.0),
    Job(OBV),
    Job(VOLUME_RATIO, 20),
)
