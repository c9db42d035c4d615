"""Where a trade entered after a signal leaves the market: one compiled pass over many candidate entries.

The rules (what the executor's market order with SL/TP attached would do on Bybit)
-----------------------------------------------------------------------------------
A signal on bar ``t`` (computed when ``t`` closes) is entered by a market order at the **open of bar
t + 1** plus slippage against the trader: a LONG fills at ``open * (1 + slip)``, a SHORT at
``open * (1 - slip)`` (``slip = slippage_bps / 10,000``). The order carries the **signal's own SL and
TP prices**, as :mod:`lib.services.execution.pair` sends them (sized from the signal's entry, placed
with ``stopLoss``/``takeProfit``); they are not re-anchored at the fill. That is what the executor
does, so the simulated risk per unit is ``|fill - stop_loss|``, a little more or less than planned.

No entry (``NO_ENTRY``) when there is no bar ``t + 1`` one bar after ``t`` (a data gap: the signal
would have expired) or when that bar opens at or beyond a level (Bybit refuses a buy whose stop is
not below the last price).

Then, bar by bar from the entry bar on (its high and low come after its open, so it counts):

- a bar that **opens** beyond a level exits there at the open (the first trade of the bar is the
  first price beyond it): SL for a LONG's ``open <= stop``, TP for ``open >= take``, mirrored for a
  SHORT;
- otherwise ``low <= stop`` (LONG) exits at the stop, ``high >= take`` at the target; a bar that
  reaches **both** counts as the stop (the candle cannot say which came first; never book a win that
  cannot be proven);
- the **horizon** is ``horizon_bars`` bars in time from the entry bar's open; with neither hit, the
  trade is closed at the close of the last candle inside it (``HORIZON``). A gap shortens it.
- if the data ends before the horizon does, the trade closes at the last close but is marked ``END``:
  not a final outcome (statistics leave it out; the portfolio books it).

Bybit's TP/SL orders are market orders when triggered, so every exit also slips against the trader.
Fees: ``fee_bps`` on the notional of the entry and again of the exit (taker both times).

R, net of fees, per unit: ``(d * (exit - fill) - fee * (fill + exit)) / |fill - stop|`` with ``d`` +1
LONG, -1 SHORT. ``r_gross`` is the same move without fees or slippage (raw open to raw exit price over
the same risk): ``r_gross - r_net`` is what costs took from the trade, in R.

Speed: :func:`find_exits` runs one ``prange`` loop over the candidates (numba, all cores); each one
scans at most ``horizon_bars`` bars. ``exit_time_ms`` is the close of the exit bar: the first moment
the candles show the position closed (a signal of that bar may reuse the slot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lib.errors import InvalidRequest
from lib.research.market import Market

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

TP = 1
SL = -1
HORIZON = 0
END = 2
NO_ENTRY = 3
REASON_NAMES: dict[int, str] = {
    TP: "TP",
    SL: "SL",
    HORIZON: "horizon",
    END: "end_of_data",
    NO_ENTRY: "no_entry",
}

DEFAULT_HORIZON_BARS = 48
DEFAULT_FEE_BPS = 5.5
DEFAULT_SLIPPAGE_BPS = 2.0


@dataclass(frozen=True, slots=True)
class ExitRules:
    """The costs and the horizon of every simulated trade (see the module docstring)."""

    horizon_bars: int = DEFAULT_HORIZON_BARS
    fee_bps: float = DEFAULT_FEE_BPS
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS

    def __post_init__(self) -> None:
        h = self.horizon_bars
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise InvalidRequest(f"horizon_bars must be an integer >= 1, got {h!r}")
        for name in ("fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value < 10_000.0):
                raise InvalidRequest(f"{name} must be in [0, 10000), got {value!r}")


@dataclass(frozen=True, slots=True)
class Exits:
    """One entry per candidate: ``reason`` (``TP``/``SL``/``HORIZON``/``END``/``NO_ENTRY``), the rows and
    times of entry and exit, the filled prices (slippage included), and R per unit net and gross of
    costs. For ``NO_ENTRY`` the rows are -1 and the floats NaN."""

    reason: Int8Array
    entry_row: IntArray
    exit_row: IntArray
    entry_time_ms: IntArray
    exit_time_ms: IntArray
    entry_price: FloatArray
    exit_price: FloatArray
    r_net: FloatArray
    r_gross: FloatArray

    @property
    def final(self) -> npt.NDArray[np.bool_]:
        """Outcomes that are final: TP, SL or the full horizon (not ``END``, not ``NO_ENTRY``)."""
        final: npt.NDArray[np.bool_] = (self.reason == TP) | (self.reason == SL) | (self.reason == HORIZON)
        return final


def _kernel(
    times: IntArray,
    o: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    symbol_end: IntArray,
    bar_ms: int,
    rows: IntArray,
    sign: Int8Array,
    stop_loss: FloatArray,
    take_profit: FloatArray,
    horizon: int,
    slip: float,
    fee: float,
    reason: Int8Array,
    entry_row: IntArray,
    exit_row: IntArray,
    entry_px: FloatArray,
    exit_px: FloatArray,
    r_net: FloatArray,
    r_gross: FloatArray,
) -> None:  # pragma: no cover - compiled by numba; exercised through find_exits
    for i in numba.prange(rows.shape[0]):
        t = rows[i]
        e = t + 1
        end = symbol_end[t]
        d = 1.0 if sign[i] > 0 else -1.0
        stop = stop_loss[i]
        take = take_profit[i]
        reason[i] = NO_ENTRY
        entry_row[i] = -1
        exit_row[i] = -1
        entry_px[i] = np.nan
        exit_px[i] = np.nan
        r_net[i] = np.nan
        r_gross[i] = np.nan
        if e >= end or times[e] != times[t] + bar_ms:
            continue
        first = o[e]
        if not (d * (first - stop) > 0.0 and d * (take - first) > 0.0):
            continue
        limit = times[e] + horizon * bar_ms
        code = HORIZON
        level = np.nan
        k = e
        last = e
        while k < end and times[k] < limit:
            last = k
            if k > e and d * (o[k] - stop) <= 0.0:
                code = SL
                level = o[k]
                break
            if k > e and d * (o[k] - take) >= 0.0:
                code = TP
                level = o[k]
                break
            adverse = lo[k] if d > 0.0 else h[k]
            favourable = h[k] if d > 0.0 else lo[k]
            if d * (adverse - stop) <= 0.0:
                code = SL
                level = stop
                break
            if d * (favourable - take) >= 0.0:
                code = TP
                level = take
                break
            k += 1
        if code == HORIZON:
            level = c[last]
            if times[end - 1] < limit - bar_ms:
                code = END
        fill = first * (1.0 + d * slip)
        out = level * (1.0 - d * slip)
        reason[i] = code
        entry_row[i] = e
        exit_row[i] = last
        entry_px[i] = fill
        exit_px[i] = out
        r_net[i] = (d * (out - fill) - fee * (fill + out)) / abs(fill - stop)
        r_gross[i] = d * (level - first) / abs(fill - stop)


_exit_kernel: Any = numba.njit(cache=True, parallel=True, error_model="numpy")(_kernel)


def find_exits(
    market: Market,
    rows: npt.ArrayLike,
    sign: npt.ArrayLike,
    stop_loss: npt.ArrayLike,
    take_profit: npt.ArrayLike,
    rules: ExitRules = ExitRules(),
) -> Exits:
    """Enter a trade after each signal row of ``market`` and find its exit (module docstring rules).

    ``rows`` are signal bars (market rows); ``sign`` +1 LONG, -1 SHORT; ``stop_loss``/``take_profit``
    the signal's levels, one per row. Levels on the wrong side of the next open give ``NO_ENTRY``.
    """
    idx = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1))
    n = idx.shape[0]
    s = np.ascontiguousarray(np.broadcast_to(np.asarray(sign, dtype=np.int8), (n,)))
    sl = np.ascontiguousarray(np.broadcast_to(np.asarray(stop_loss, dtype=np.float64), (n,)))
    tp = np.ascontiguousarray(np.broadcast_to(np.asarray(take_profit, dtype=np.float64), (n,)))
    if n and (idx.min() < 0 or idx.max() >= len(market)):
        raise InvalidRequest(f"signal rows outside the market's {len(market)} rows")
    if not np.all((s == 1) | (s == -1)):
        raise InvalidRequest("sign must be +1 (LONG) or -1 (SHORT)")
    reason = np.empty(n, dtype=np.int8)
    entry_row = np.empty(n, dtype=np.int64)
    exit_row = np.empty(n, dtype=np.int64)
    entry_px = np.empty(n)
    exit_px = np.empty(n)
    r_net = np.empty(n)
    r_gross = np.empty(n)
    _exit_kernel(
        market.open_time_ms,
        market.open,
        market.high,
        market.low,
        market.close,
        market.symbol_end,
        market.bar_ms,
        idx,
        s,
        sl,
        tp,
        rules.horizon_bars,
        rules.slippage_bps / 10_000.0,
        rules.fee_bps / 10_000.0,
        reason,
        entry_row,
        exit_row,
        entry_px,
        exit_px,
        r_net,
        r_gross,
    )
    entered = entry_row >= 0
    entry_time = np.full(n, -1, dtype=np.int64)
    exit_time = np.full(n, -1, dtype=np.int64)
    entry_time[entered] = market.open_time_ms[entry_row[entered]]
    exit_time[entered] = market.open_time_ms[exit_row[entered]] + market.bar_ms
    return Exits(
        reason=reason,
        entry_row=entry_row,
        exit_row=exit_row,
        entry_time_ms=entry_time,
        exit_time_ms=exit_time,
        entry_price=entry_px,
        exit_price=exit_px,
        r_net=r_net,
        r_gross=r_gross,
    )
