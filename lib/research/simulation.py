"""The backtest as a trading simulation: what the executor would have done with every signal.

:func:`simulate` takes a :class:`~lib.research.market.Market`, an algorithm's scores on it and a
threshold, and trades like the executor (:mod:`lib.services.execution`):

1. **Signals**: every scored bar whose score, rounded to two decimals as the scanner stores and judges
   it (``numeric(5, 2)``), is at least ``threshold`` (:func:`qualifies`); optionally only signal bars
   in ``[start_ms, end_ms)``. Each is on the scored side with the signal's entry (the bar's close),
   SL and TP.
2. **Exits** of all of them at once, in one compiled pass (:func:`lib.research.exits.find_exits`):
   entry at the next bar's open plus slippage, SL/TP inside later bars (SL first when one bar reaches
   both), or the horizon's close; taker fees on entry and exit. The signal's SL/TP prices are kept, as
   the executor sends them (see that module for why and for every rule).
3. **The portfolio**, one walk in time order over those entries only (simultaneous entries: higher
   score first, then symbol). Before an entry, every position whose exit bar has closed is closed and
   booked. Then the entry is skipped, and counted, when its symbol already holds a position
   (``position_open``: one position per symbol), when ``max_open_positions`` are open
   (``max_open_positions``), when the sizing refuses it (its ``skip_reason``) or when its initial
   margin (notional / leverage) exceeds the equity not already held as margin by open positions
   (``insufficient_margin``, as Bybit would refuse the order), or when even the whole equity at full
   leverage is below the 5 USDT minimum order value (``account_too_small``: no order is possible, so
   the sizing is not asked; a ruined account's remaining signals cost nothing). A signal without an
   entry (no adjacent next bar, or the next open beyond a level) counts as ``no_entry``.
4. **Sizing** with the project's own pure code, :func:`lib.core.sizing.size_order` (risk per trade
   over the stop distance, capped by max position and leverage, rounded down to the qty step) on the
   **compounding** equity: the initial equity plus every closed trade's P&L minus every fee paid so
   far. Unrealized P&L of open positions is not counted (the wallet balance, not Bybit's total
   equity, which would need a mark price per open symbol at every entry).

Instrument filters (:func:`derive_filters`). The bundled candles are not Bybit's, so their filters are
derived from the data: the tick is the data's own price grid (the coarsest power of ten every price is
a multiple of), so tick-normalizing a level cannot move it past any candle's high or low (between a
level and its rounding away from the entry there is no multiple of the tick); the qty step is the
largest power of ten worth at most 0.01 USDT at the symbol's highest price, so rounding a size down
changes its risk by at most a cent; ``min_notional`` is Bybit's 5 USDT for linear contracts.

R net of fees is each trade's P&L over its risk at entry, ``qty * |fill - stop_loss|``, which is the
per-unit R of the exit pass. ``PortfolioRules``' defaults are not the users' preference defaults (a
1,000 USDT cap at 1x leverage caps nearly every trade, so the curve would measure the cap, not the
signals): 10,000 USDT, 1 % risk, 10x, no position cap, at most 5 open positions.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from lib.core.instruments import TRADING, InstrumentFilters
from lib.core.preferences import DEFAULT_PREFERENCES
from lib.core.sizing import size_order
from lib.errors import InvalidRequest
from lib.research.exits import NO_ENTRY, ExitRules, find_exits
from lib.research.market import Market, MarketScores

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

MIN_NOTIONAL_USDT = Decimal(5)
_MAX_DECIMALS = 12
_QTY_STEP_VALUE_USDT = 0.01


@dataclass(frozen=True, slots=True)
class PortfolioRules:
    """Account and risk settings of a simulation (defaults: the module docstring)."""

    initial_equity: float = 10_000.0
    risk_pct: float = float(DEFAULT_PREFERENCES.risk_per_trade_pct)
    leverage: int = 10
    max_position_usd: float = 1e12
    max_open_positions: int = DEFAULT_PREFERENCES.max_open_positions

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_equity) and self.initial_equity > 0):
            raise InvalidRequest(f"initial_equity must be positive, got {self.initial_equity!r}")
        if not (math.isfinite(self.risk_pct) and 0 < self.risk_pct <= 100):
            raise InvalidRequest(f"risk_pct must be in (0, 100], got {self.risk_pct!r}")
        if not (math.isfinite(self.max_position_usd) and self.max_position_usd > 0):
            raise InvalidRequest(f"max_position_usd must be positive, got {self.max_position_usd!r}")
        for name in ("leverage", "max_open_positions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequest(f"{name} must be an integer >= 1, got {value!r}")


def _price_decimals(prices: FloatArray) -> int:
    """The fewest decimals that write every price exactly (at most 12)."""
    finite = prices[np.isfinite(prices)]
    for k in range(_MAX_DECIMALS + 1):
        scaled = finite * 10.0**k
        # Parsing a decimal into a float errs by ~1e-16 relative; anything off the grid is far more.
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return k
    return _MAX_DECIMALS


def derive_filters(symbol: str, prices: npt.ArrayLike) -> InstrumentFilters:
    """Instrument filters for a symbol traded at ``prices`` (its candles' prices; module docstring)."""
    p = np.asarray(prices, dtype=np.float64).reshape(-1)
    top = float(np.nanmax(p)) if p.size and np.isfinite(p).any() else 1.0
    tick = Decimal(1).scaleb(-_price_decimals(p))
    step = Decimal(10) ** (math.floor(math.log10(_QTY_STEP_VALUE_USDT / max(top, 1e-12))))
    return InstrumentFilters(
        symbol=symbol,
        category="linear",
        status=TRADING,
        tick_size=tick,
        qty_step=step,
        min_qty=step,
        max_qty=Decimal("1e18"),
        min_notional=MIN_NOTIONAL_USDT,
    )


def market_filters(market: Market) -> dict[str, InstrumentFilters]:
    """:func:`derive_filters` for every symbol of ``market``, from its open, high, low and close."""
    out: dict[str, InstrumentFilters] = {}
    for k, symbol in enumerate(market.symbols):
        part = slice(int(market.start[k]), int(market.start[k + 1]))
        prices = np.concatenate([market.open[part], market.high[part], market.low[part], market.close[part]])
        out[symbol] = derive_filters(symbol, prices)
    return out


@dataclass(frozen=True, slots=True)
class Trades:
    """The simulated trades in the order they were opened, one entry per trade (columns).

    ``sign`` +1 LONG, -1 SHORT; ``reason`` an exit code of :mod:`lib.research.exits` (TP, SL, HORIZON,
    END); ``fees`` both legs' fees; ``pnl`` net of fees; ``r_net`` = ``pnl / (qty * |entry - stop|)``.
    """

    symbol: tuple[str, ...]
    sign: Int8Array
    signal_time_ms: IntArray
    entry_time_ms: IntArray
    entry_price: FloatArray
    stop_loss: FloatArray
    take_profit: FloatArray
    exit_time_ms: IntArray
    exit_price: FloatArray
    reason: Int8Array
    qty: FloatArray
    fees: FloatArray
    pnl: FloatArray
    r_net: FloatArray
    score: FloatArray

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline figures of a simulation. Ratios are NaN without trades."""

    trades: int
    win_rate: float
    mean_r_net: float
    total_return: float
    max_drawdown: float
    final_equity: float
    fees: float


@dataclass(frozen=True, slots=True)
class Simulation:
    """What :func:`simulate` returns: the trades, the equity curve and what was skipped.

    ``equity`` is the wallet balance after each event (``equity_time_ms``): the start, every entry (its
    fee) and every exit (its P&L and fee). ``signals`` counts the signals considered; ``skipped`` maps
    each skip reason (module docstring) to how many signals it stopped.
    """

    threshold: float
    rules: ExitRules
    portfolio: PortfolioRules
    signals: int
    skipped: dict[str, int]
    trades: Trades
    equity_time_ms: IntArray
    equity: FloatArray
    filters: dict[str, InstrumentFilters] = field(repr=False)

    @property
    def summary(self) -> Summary:
        """Trades, win rate (P&L > 0), mean R net, total return, max drawdown (of the equity curve)."""
        t = self.trades
        n = len(t)
        final = float(self.equity[-1]) if self.equity.size else self.portfolio.initial_equity
        peak = np.maximum.accumulate(self.equity) if self.equity.size else np.ones(1)
        drawdown = float(np.max(1.0 - self.equity / peak)) if self.equity.size else 0.0
        return Summary(
            trades=n,
            win_rate=float(np.mean(t.pnl > 0)) if n else math.nan,
            mean_r_net=float(np.mean(t.r_net)) if n else math.nan,
            total_return=final / self.portfolio.initial_equity - 1.0,
            max_drawdown=drawdown,
            final_equity=final,
            fees=float(np.sum(t.fees)),
        )


def qualifies(score: npt.ArrayLike, threshold: float) -> npt.NDArray[np.bool_]:
    """Where ``score`` reaches ``threshold`` as the scanner judges it: on the stored two-decimal score."""
    with np.errstate(invalid="ignore"):
        return np.asarray(np.round(np.asarray(score, dtype=np.float64), 2) >= threshold, dtype=np.bool_)


def signal_rows(
    market: Market,
    scores: MarketScores,
    threshold: float,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> IntArray:
    """Market rows that are signals: scored, :func:`qualifies`, signal bar in ``[start_ms, end_ms)``."""
    mask = scores.valid & qualifies(scores.score, threshold)
    if start_ms is not None:
        mask &= market.open_time_ms >= start_ms
    if end_ms is not None:
        mask &= market.open_time_ms < end_ms
    return np.flatnonzero(mask).astype(np.int64)


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def simulate(
    market: Market,
    scores: MarketScores,
    threshold: float,
    *,
    rules: ExitRules = ExitRules(),  # noqa: B008 - frozen dataclasses: one shared default is safe
    portfolio: PortfolioRules = PortfolioRules(),
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Simulation:
    """Trade every signal of ``scores`` at or above ``threshold`` like the executor (module docstring)."""
    rows = signal_rows(market, scores, threshold, start_ms=start_ms, end_ms=end_ms)
    ex = find_exits(market, rows, scores.sign[rows], scores.stop_loss[rows], scores.take_profit[rows], rules)
    filters = market_filters(market)
    skipped = {
        "no_entry": int(np.sum(ex.reason == NO_ENTRY)),
        "position_open": 0,
        "max_open_positions": 0,
        "insufficient_margin": 0,
        "account_too_small": 0,
    }
    min_notional = float(MIN_NOTIONAL_USDT)
    entered = np.flatnonzero(ex.reason != NO_ENTRY)
    sym = market.symbol_id[rows[entered]]
    order = entered[np.lexsort((sym, -scores.score[rows[entered]], ex.entry_time_ms[entered]))]

    fee = rules.fee_bps / 10_000.0
    lev = portfolio.leverage
    risk_pct = _dec(portfolio.risk_pct)
    max_position = _dec(portfolio.max_position_usd)
    equity = portfolio.initial_equity
    margin_used = 0.0
    first_time = int(market.open_time_ms[rows].min()) if rows.size else 0
    curve_t: list[int] = [first_time]
    curve_e: list[float] = [equity]
    # Open positions: (exit time, opening sequence, symbol id, gross P&L, exit fee, margin).
    book: list[tuple[int, int, int, float, float, float]] = []
    busy: set[int] = set()
    taken: list[int] = []
    qtys: list[float] = []
    fees: list[float] = []
    pnls: list[float] = []

    def close_until(t: int) -> None:
        nonlocal equity, margin_used
        while book and book[0][0] <= t:
            exit_time, _, symbol_id, gross, exit_fee, margin = heapq.heappop(book)
            equity += gross - exit_fee
            margin_used -= margin
            busy.discard(symbol_id)
            curve_t.append(exit_time)
            curve_e.append(equity)

    # Python lists: the walk reads one scalar of each per signal, far cheaper than numpy indexing.
    o_rows = rows[order]
    walk = zip(
        order.tolist(),
        market.symbol_id[o_rows].tolist(),
        scores.sign[o_rows].tolist(),
        ex.entry_time_ms[order].tolist(),
        ex.exit_time_ms[order].tolist(),
        ex.entry_price[order].tolist(),
        ex.exit_price[order].tolist(),
        scores.entry[o_rows].tolist(),
        scores.stop_loss[o_rows].tolist(),
        scores.take_profit[o_rows].tolist(),
        strict=True,
    )
    for i, symbol_id, d, entry_time, exit_time, fill, out, entry, stop, take in walk:
        close_until(entry_time)
        if symbol_id in busy:
            skipped["position_open"] += 1
            continue
        if len(book) >= portfolio.max_open_positions:
            skipped["max_open_positions"] += 1
            continue
        if equity * lev < min_notional:
            skipped["account_too_small"] += 1
            continue
        decision = size_order(
            equity=_dec(equity),
            risk_pct=risk_pct,
            entry=_dec(entry),
            stop_loss=_dec(stop),
            take_profit=_dec(take),
            direction="LONG" if d > 0 else "SHORT",
            max_position_usd=max_position,
            leverage=lev,
            filters=filters[market.symbols[symbol_id]],
        )
        if not decision.ok:
            reason = str(decision.skip_reason)
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        qty = float(decision.qty)
        margin = qty * fill / lev
        if margin > equity - margin_used:
            skipped["insufficient_margin"] += 1
            continue
        entry_fee = fee * qty * fill
        exit_fee = fee * qty * out
        gross = d * qty * (out - fill)
        equity -= entry_fee
        margin_used += margin
        curve_t.append(entry_time)
        curve_e.append(equity)
        heapq.heappush(book, (exit_time, len(taken), symbol_id, gross, exit_fee, margin))
        busy.add(symbol_id)
        taken.append(i)
        qtys.append(qty)
        fees.append(entry_fee + exit_fee)
        pnls.append(gross - entry_fee - exit_fee)
    close_until(np.iinfo(np.int64).max)

    pick = np.asarray(taken, dtype=np.int64)
    trade_rows = rows[pick]
    qty_a = np.asarray(qtys, dtype=np.float64)
    pnl_a = np.asarray(pnls, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        risk = qty_a * np.abs(ex.entry_price[pick] - scores.stop_loss[trade_rows])
        r_net = pnl_a / risk
    trades = Trades(
        symbol=tuple(market.symbols[int(k)] for k in market.symbol_id[trade_rows]),
        sign=scores.sign[trade_rows].astype(np.int8),
        signal_time_ms=market.open_time_ms[trade_rows],
        entry_time_ms=ex.entry_time_ms[pick],
        entry_price=ex.entry_price[pick],
        stop_loss=scores.stop_loss[trade_rows],
        take_profit=scores.take_profit[trade_rows],
        exit_time_ms=ex.exit_time_ms[pick],
        exit_price=ex.exit_price[pick],
        reason=ex.reason[pick],
        qty=qty_a,
        fees=np.asarray(fees, dtype=np.float64),
        pnl=pnl_a,
        r_net=r_net,
        score=scores.score[trade_rows],
    )
    return Simulation(
        threshold=float(threshold),
        rules=rules,
        portfolio=portfolio,
        signals=int(rows.size),
        skipped=skipped,
        trades=trades,
        equity_time_ms=np.asarray(curve_t, dtype=np.int64),
        equity=np.asarray(curve_e, dtype=np.float64),
        filters=filters,
    )
