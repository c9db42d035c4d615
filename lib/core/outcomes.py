"""What happened after a signal: TP first, SL first, or neither within a horizon, and the R multiple.

Shared by the backtest (``lib.research.backtest``) and the training of ``quantum_ai`` so both label trades the
same way. Pure and vectorized: many signals of one symbol are labeled at once with one 2-D gather
(signals x horizon bars).

The rules
---------
A signal on bar ``t`` (a row of one symbol's candles, oldest first) enters at ``entry`` (the close of
bar ``t``) with a stop ``stop_loss`` and a target ``take_profit``. The horizon is the next ``H`` bars
**in time**: the candles with ``open_time_ms`` in ``(time[t], time[t] + H * bar_ms]``. A gap in the data
is a gap: missing candles are neither invented nor replaced by later ones, so a gap shortens the
horizon instead of stretching it. In each candle of the horizon, in order:

- LONG: the target is hit when ``high >= take_profit``, the stop when ``low <= stop_loss``;
- SHORT: the target is hit when ``low <= take_profit``, the stop when ``high >= stop_loss``.

The first candle where either is hit decides. If both are hit in the same candle, the candles do not
say which came first, and the stop is assumed first (conservative: the backtest never books a win it
cannot prove). A candle that opens beyond a level counts as hitting it at the level (no slippage).

With ``risk = |entry - stop_loss|``, the R multiple is:

- TP first (``TP_FIRST = 1``): ``+|take_profit - entry| / risk``;
- SL first (``SL_FIRST = -1``): ``-1``;
- neither (``NEITHER = 0``): mark to market at the close of the last candle inside the horizon,
  ``sign * (close - entry) / risk`` (``sign`` +1 LONG, -1 SHORT); 0 if the horizon holds no candle.

``complete`` says whether the outcome is final: the trade was resolved by TP or SL, or the data runs to
the end of the horizon (the series has a candle at or after ``time[t] + H * bar_ms``). An incomplete
"neither" only means the data ended; the backtest and training leave those out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import InvalidRequest

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TP_FIRST = 1
SL_FIRST = -1
NEITHER = 0


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Labels of many signals, one entry per signal.

    ``result`` is ``TP_FIRST``, ``SL_FIRST`` or ``NEITHER``; ``exit_offset`` the number of rows after the
    signal bar where TP or SL was hit, or of the last candle inside the horizon for "neither" (0 when the
    horizon holds no candle); ``complete`` whether the outcome is final (see the module docstring).
    """

    result: IntArray
    r_multiple: FloatArray
    exit_offset: IntArray
    complete: BoolArray


def label_outcomes(
    open_time_ms: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    *,
    bar_index: npt.ArrayLike,
    sign: npt.ArrayLike,
    entry: npt.ArrayLike,
    stop_loss: npt.ArrayLike,
    take_profit: npt.ArrayLike,
    horizon_bars: int,
    bar_ms: int = FIVE_MINUTES_MS,
) -> Outcomes:
    """Label signals on one symbol's candles (1-D, oldest first) by the rules of the module docstring.

    ``bar_index``, ``sign`` (+1 LONG, -1 SHORT), ``entry``, ``stop_loss`` and ``take_profit`` are 1-D
    arrays with one entry per signal (scalars are broadcast). Levels must be on the right sides of the
    entry (LONG: stop < entry < target); anything else raises :class:`InvalidRequest`.
    """
    if isinstance(horizon_bars, bool) or not isinstance(horizon_bars, int | np.integer) or horizon_bars < 1:
        raise InvalidRequest(f"horizon_bars must be an integer >= 1, got {horizon_bars!r}")
    if bar_ms <= 0:
        raise InvalidRequest(f"bar_ms must be positive, got {bar_ms}")
    times = np.asarray(open_time_ms, dtype=np.int64)
    hi = np.asarray(high, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    cl = np.asarray(close, dtype=np.float64)
    n = times.shape[0]
    if times.ndim != 1 or hi.shape != (n,) or lo.shape != (n,) or cl.shape != (n,):
        raise InvalidRequest("open_time_ms, high, low and close must be 1-D arrays of one length")
    idx, s, e, sl, tp = np.broadcast_arrays(
        np.atleast_1d(np.asarray(bar_index, dtype=np.int64)),
        np.atleast_1d(np.asarray(sign, dtype=np.float64)),
        np.atleast_1d(np.asarray(entry, dtype=np.float64)),
        np.atleast_1d(np.asarray(stop_loss, dtype=np.float64)),
        np.atleast_1d(np.asarray(take_profit, dtype=np.float64)),
    )
    if idx.ndim != 1:
        raise InvalidRequest("signals must be given as 1-D arrays")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InvalidRequest(f"bar_index outside the {n} candles")
    if not np.all((s == 1.0) | (s == -1.0)):
        raise InvalidRequest("sign must be +1 (LONG) or -1 (SHORT)")
    with np.errstate(invalid="ignore"):
        ordered = (s * (e - sl) > 0.0) & (s * (tp - e) > 0.0)
    if not np.all(ordered):
        raise InvalidRequest("levels out of order: LONG needs stop < entry < target, SHORT the mirror")

    h = int(horizon_bars)
    # rows[i, j] is the (j+1)-th row after signal i; rows past the end are clipped and masked out.
    # Rows are strictly increasing in time with at least bar_ms between them, so the H rows after a
    # signal always include every candle of its H-bar time horizon.
    rows = idx[:, None] + np.arange(1, h + 1, dtype=np.int64)[None, :]
    in_data = rows < n
    rows = np.minimum(rows, n - 1)
    horizon_end = times[idx] + h * bar_ms
    inside = in_data & (times[rows] <= horizon_end[:, None])

    up = s[:, None] > 0.0
    row_high = hi[rows]
    row_low = lo[rows]
    tp_hit = inside & np.where(up, row_high >= tp[:, None], row_low <= tp[:, None])
    sl_hit = inside & np.where(up, row_low <= sl[:, None], row_high >= sl[:, None])
    never = h  # an index past any hit, so "no hit" compares as latest
    first_tp = np.where(tp_hit.any(axis=1), tp_hit.argmax(axis=1), never)
    first_sl = np.where(sl_hit.any(axis=1), sl_hit.argmax(axis=1), never)

    stopped = (first_sl < never) & (first_sl <= first_tp)  # same candle: the stop counts first
    target = (first_tp < never) & ~stopped
    result = np.where(stopped, SL_FIRST, np.where(target, TP_FIRST, NEITHER)).astype(np.int64)

    risk = np.abs(e - sl)
    # The last candle inside the horizon: `inside` is a prefix of each row, so count its True values.
    n_inside = inside.sum(axis=1)
    last_row = np.where(n_inside > 0, idx + n_inside, idx)
    mark = np.where(n_inside > 0, s * (cl[last_row] - e) / risk, 0.0)
    r_multiple = np.where(stopped, -1.0, np.where(target, np.abs(tp - e) / risk, mark))
    exit_offset = np.where(stopped, first_sl + 1, np.where(target, first_tp + 1, n_inside)).astype(np.int64)
    # Final when resolved, or when the data reaches the horizon's end (a later candle exists).
    complete = (result != NEITHER) | (times[n - 1] >= horizon_end) if n else np.zeros(idx.shape, bool)
    return Outcomes(
        result=result,
        r_multiple=r_multiple.astype(np.float64),
        exit_offset=exit_offset,
        complete=np.asarray(complete, dtype=np.bool_),
    )
