"""lib.research.exits and lib.research.simulation: hand-built candle paths with known outcomes."""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pytest

from lib.core.candles import Candles
from lib.core.outcomes import NEITHER, SL_FIRST, TP_FIRST, label_outcomes
from lib.core.sizing import size_order
from lib.errors import InvalidRequest
from lib.research.exits import END, HORIZON, NO_ENTRY, SL, TP, ExitRules, find_exits
from lib.research.market import Market, MarketScores, build_market, market_scores, score_market
from lib.research.simulation import PortfolioRules, derive_filters, market_filters, qualifies, simulate

FIVE = 5 * 60 * 1000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
FREE = ExitRules(horizon_bars=48, fee_bps=0.0, slippage_bps=0.0)


def candles(symbol: str, rows: list[tuple[float, float, float, float]], *, t0: int = T0) -> Candles:
    """Candles from (open, high, low, close) rows, one bar apart."""
    a = np.asarray(rows, dtype=np.float64)
    return Candles(
        symbol=symbol,
        open_time_ms=t0 + FIVE * np.arange(len(rows), dtype=np.int64),
        open=a[:, 0].copy(),
        high=a[:, 1].copy(),
        low=a[:, 2].copy(),
        close=a[:, 3].copy(),
        volume=np.full(len(rows), 10.0),
    )


def flat(n: int, price: float = 100.0) -> list[tuple[float, float, float, float]]:
    """``n`` quiet bars: open = close = price, high/low 0.5 either side."""
    return [(price, price + 0.5, price - 0.5, price)] * n


def signals(market: Market, at: dict[int, tuple[int, float, float, float]]) -> MarketScores:
    """Scores with a signal at each given market row: (sign, score, stop, take); entry = the row's close."""
    n = len(market)
    valid = np.zeros(n, dtype=np.bool_)
    sign = np.zeros(n, dtype=np.int8)
    nan = np.full(n, np.nan)
    score, stop, take, atr = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    for row, (s, sc, sl, tp) in at.items():
        valid[row], sign[row], score[row], stop[row], take[row] = True, s, sc, sl, tp
        atr[row] = abs(market.close[row] - sl) / 1.5
    entry = np.where(valid, market.close, np.nan)
    return MarketScores(valid, sign, score, entry, stop, take, atr)


def one_symbol(rows: list[tuple[float, float, float, float]], symbol: str = "BTCUSDT") -> Market:
    return build_market({symbol: candles(symbol, rows)}, FIVE)


# -- exits ------------------------------------------------------------------------------------------


def test_entry_is_the_next_open_plus_slippage_against_the_trader() -> None:
    rows = [(100, 100.5, 99.5, 100), (101, 101.5, 100.5, 101), *flat(5, 101)]
    market = one_symbol(rows)
    rules = ExitRules(horizon_bars=3, fee_bps=0.0, slippage_bps=2.0)
    long = find_exits(market, [0], 1, 95.0, 110.0, rules)
    assert long.entry_row[0] == 1
    assert long.entry_time_ms[0] == T0 + FIVE
    assert long.entry_price[0] == pytest.approx(101 * 1.0002, rel=1e-15)
    short = find_exits(market, [0], -1, 105.0, 90.0, rules)
    assert short.entry_price[0] == pytest.approx(101 * 0.9998, rel=1e-15)
    # Neither level is reached: the horizon's close (bar 3), minus slippage on the way out.
    assert long.reason[0] == HORIZON
    assert long.exit_row[0] == 3
    assert long.exit_price[0] == pytest.approx(101 * 0.9998, rel=1e-15)


def test_a_bar_that_reaches_both_levels_counts_as_the_stop() -> None:
    rows = [(100, 100.5, 99.5, 100), (100, 100.5, 99.5, 100), (100, 111, 94, 100), *flat(3)]
    market = one_symbol(rows)
    long = find_exits(market, [0], 1, 95.0, 110.0, FREE)
    short = find_exits(market, [0], -1, 105.0, 90.0, FREE)
    assert long.reason[0] == SL
    assert long.exit_row[0] == 2
    assert long.exit_price[0] == 95.0
    assert long.r_net[0] == pytest.approx(-1.0)
    # For the SHORT the same bar's high (111) passes its stop (105) but not its target: SL too.
    assert short.reason[0] == SL
    assert short.exit_price[0] == 105.0


def test_the_target_alone_and_the_entry_bar_itself_count() -> None:
    # The entry bar (row 1) already trades up to the target after its open.
    market = one_symbol([(100, 100.5, 99.5, 100), (100, 112, 99.5, 111), *flat(3, 111)])
    ex = find_exits(market, [0], 1, 95.0, 110.0, FREE)
    assert ex.reason[0] == TP
    assert ex.exit_row[0] == 1
    assert ex.exit_time_ms[0] == T0 + 2 * FIVE  # the exit bar's close
    assert ex.r_net[0] == pytest.approx(2.0)


def test_a_bar_opening_beyond_the_stop_exits_at_its_open() -> None:
    market = one_symbol([(100, 100.5, 99.5, 100), (100, 100.5, 99.5, 100), (93, 94, 92, 93), *flat(2, 93)])
    ex = find_exits(market, [0], 1, 95.0, 110.0, FREE)
    assert ex.reason[0] == SL
    assert ex.exit_price[0] == 93.0
    assert ex.r_net[0] == pytest.approx(-7.0 / 5.0)


def test_the_horizon_closes_at_the_last_bar_inside_it() -> None:
    closes = [100, 100, 101, 102, 103, 104, 105]
    rows = [(c, c + 0.5, c - 0.5, c) for c in closes]
    market = one_symbol(rows)
    ex = find_exits(market, [0], 1, 95.0, 110.0, ExitRules(horizon_bars=3, fee_bps=0, slippage_bps=0))
    # Entry bar 1, horizon bars 1, 2, 3: out at bar 3's close, 102.
    assert ex.reason[0] == HORIZON
    assert ex.exit_row[0] == 3
    assert ex.exit_price[0] == 102.0
    assert ex.exit_time_ms[0] == T0 + 4 * FIVE
    assert ex.r_net[0] == pytest.approx(2.0 / 5.0)
    # Data ending inside the horizon: closed at the last close, but not a final outcome.
    short_data = one_symbol(rows[:3])
    end = find_exits(short_data, [0], 1, 95.0, 110.0, ExitRules(horizon_bars=3, fee_bps=0, slippage_bps=0))
    assert end.reason[0] == END
    assert end.exit_price[0] == 101.0
    assert not end.final[0]


def test_no_entry_without_an_adjacent_bar_or_when_the_open_is_past_a_level() -> None:
    gap = build_market(
        {
            "BTCUSDT": Candles(
                "BTCUSDT",
                np.array([T0, T0 + 3 * FIVE, T0 + 4 * FIVE]),
                np.full(3, 100.0),
                np.full(3, 100.5),
                np.full(3, 99.5),
                np.full(3, 100.0),
                np.ones(3),
            )
        },
        FIVE,
    )
    assert find_exits(gap, [0], 1, 95.0, 110.0, FREE).reason[0] == NO_ENTRY
    last = one_symbol(flat(3))
    assert find_exits(last, [2], 1, 95.0, 110.0, FREE).reason[0] == NO_ENTRY
    gapped_open = one_symbol([(100, 100.5, 99.5, 100), (94, 95, 93, 94), *flat(2)])
    ex = find_exits(gapped_open, [0], 1, 95.0, 110.0, FREE)
    assert ex.reason[0] == NO_ENTRY
    assert ex.entry_row[0] == -1
    assert np.isnan(ex.r_net[0])


def test_fees_are_charged_on_entry_and_exit_and_cut_r_as_computed_by_hand() -> None:
    market = one_symbol([(100, 100.5, 99.5, 100), (101, 101.5, 100.5, 101), (105, 111, 104, 110), *flat(2)])
    rules = ExitRules(horizon_bars=48, fee_bps=5.5, slippage_bps=2.0)
    ex = find_exits(market, [0], 1, 95.0, 110.0, rules)
    fill, out = 101 * 1.0002, 110 * 0.9998
    by_hand = ((out - fill) - 0.00055 * fill - 0.00055 * out) / (fill - 95.0)
    assert ex.reason[0] == TP
    assert ex.r_net[0] == pytest.approx(by_hand, rel=1e-12)
    assert ex.r_gross[0] == pytest.approx((110 - 101) / (fill - 95.0), rel=1e-12)
    free = find_exits(market, [0], 1, 95.0, 110.0, FREE)
    assert free.r_net[0] == pytest.approx(9.0 / 6.0)
    assert ex.r_net[0] < free.r_net[0]


def test_without_costs_the_outcomes_match_the_bar_labels_of_lib_core_outcomes() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.r_[100.0, close[:-1]]  # every bar opens at the previous close: no gaps
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.003, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.003, n))
    rows = list(zip(open_, high, low, close, strict=True))
    market = one_symbol(rows)
    idx = np.arange(0, n - 60)
    sign = np.where(rng.random(idx.size) < 0.5, 1, -1)
    atr = close[idx] * 0.004
    stop, take = close[idx] - sign * 1.5 * atr, close[idx] + sign * 3.0 * atr
    ours = find_exits(market, idx, sign, stop, take, ExitRules(horizon_bars=24, fee_bps=0, slippage_bps=0))
    labels = label_outcomes(
        market.open_time_ms,
        high,
        low,
        close,
        bar_index=idx,
        sign=sign.astype(float),
        entry=close[idx],
        stop_loss=stop,
        take_profit=take,
        horizon_bars=24,
    )
    expected = {TP_FIRST: TP, SL_FIRST: SL, NEITHER: HORIZON}
    assert [expected[int(v)] for v in labels.result] == ours.reason.tolist()
    np.testing.assert_allclose(ours.r_gross, labels.r_multiple, rtol=1e-12)
    assert {TP, SL, HORIZON} <= set(ours.reason.tolist())


def test_find_exits_refuses_bad_input() -> None:
    market = one_symbol(flat(4))
    with pytest.raises(InvalidRequest):
        find_exits(market, [4], 1, 95.0, 110.0)
    with pytest.raises(InvalidRequest):
        find_exits(market, [0], 0, 95.0, 110.0)
    with pytest.raises(InvalidRequest):
        ExitRules(horizon_bars=0)
    with pytest.raises(InvalidRequest):
        ExitRules(fee_bps=-1.0)


# -- the portfolio ----------------------------------------------------------------------------------


def test_the_simulated_trade_pays_both_fees_and_reports_its_r_net() -> None:
    market = one_symbol([(100, 100.5, 99.5, 100), (101, 101.5, 100.5, 101), (105, 111, 104, 110), *flat(2)])
    scores = signals(market, {0: (1, 90.0, 95.0, 110.0)})
    rules = ExitRules(horizon_bars=48, fee_bps=5.5, slippage_bps=2.0)
    sim = simulate(market, scores, 80.0, rules=rules, portfolio=PortfolioRules(initial_equity=10_000.0))
    t = sim.trades
    assert len(t) == 1
    # Sized by the project's sizing on the signal's entry (the close, 100) and stop: 100 USDT / 5.
    qty = float(t.qty[0])
    assert qty == 20.0
    fill, out = 101 * 1.0002, 110 * 0.9998
    assert t.fees[0] == pytest.approx(0.00055 * qty * fill + 0.00055 * qty * out, rel=1e-12)
    assert t.pnl[0] == pytest.approx(qty * (out - fill) - t.fees[0], rel=1e-12)
    assert t.r_net[0] == pytest.approx(t.pnl[0] / (qty * (fill - 95.0)), rel=1e-12)
    assert sim.equity[-1] == pytest.approx(10_000.0 + t.pnl[0], rel=1e-12)
    summary = sim.summary
    assert summary.trades == 1
    assert summary.win_rate == 1.0
    assert summary.total_return == pytest.approx(t.pnl[0] / 10_000.0)
    # The entry fee is the curve's only dip.
    assert summary.max_drawdown == pytest.approx(0.00055 * qty * fill / 10_000.0)


def test_a_second_signal_while_the_symbol_holds_a_position_is_skipped() -> None:
    # Signal at bar 0; the LONG is open from bar 1 to its target at bar 4. Signals at bars 1 and 3 come
    # while it is open; the one at bar 4 (whose close shows the position closed) is taken.
    rows = [*flat(4), (100, 111, 99.5, 110), *flat(6, 110)]
    market = one_symbol(rows)
    at = {0: (1, 90.0, 95.0, 110.0), 1: (1, 85.0, 95.0, 110.0), 3: (-1, 95.0, 105.0, 90.0)}
    at[4] = (-1, 90.0, 115.0, 100.0)
    rules = ExitRules(horizon_bars=5, fee_bps=0.0, slippage_bps=0.0)
    sim = simulate(market, signals(market, at), 80.0, rules=rules)
    assert sim.signals == 4
    assert sim.skipped["position_open"] == 2
    assert sim.trades.signal_time_ms.tolist() == [T0, T0 + 4 * FIVE]
    assert sim.trades.reason.tolist() == [TP, HORIZON]


def test_at_most_max_open_positions_are_held_and_the_best_scores_go_first() -> None:
    rows = [*flat(2), *flat(10, 100.2)]
    symbols = ("AUSDT", "BUSDT", "CUSDT")
    market = build_market({s: candles(s, rows) for s in symbols}, FIVE)
    n = len(rows)
    # One signal per symbol on the same bar (row 0 of each), scores 81, 95, 88.
    at = {0: (1, 81.0, 95.0, 110.0), n: (1, 95.0, 95.0, 110.0), 2 * n: (1, 88.0, 95.0, 110.0)}
    sim = simulate(
        market, signals(market, at), 80.0, rules=FREE, portfolio=PortfolioRules(max_open_positions=2)
    )
    assert sim.skipped["max_open_positions"] == 1
    assert sorted(sim.trades.symbol) == ["BUSDT", "CUSDT"]
    one = simulate(
        market, signals(market, at), 80.0, rules=FREE, portfolio=PortfolioRules(max_open_positions=1)
    )
    assert one.trades.symbol == ("BUSDT",)
    assert one.skipped["max_open_positions"] == 2


def test_equity_compounds_the_second_trade_is_sized_from_the_first_ones_result() -> None:
    # Trade 1: LONG from bar 1 (open 100), target 110 at bar 2. Trade 2 signals at bar 3, stop 5 away.
    rows = [*flat(2), (100, 111, 99.5, 110), *flat(3, 110)]
    market = one_symbol(rows)
    at = {0: (1, 90.0, 95.0, 110.0), 3: (1, 90.0, 105.0, 130.0)}
    portfolio = PortfolioRules(initial_equity=10_000.0, risk_pct=1.0, leverage=10)
    sim = simulate(market, signals(market, at), 80.0, rules=FREE, portfolio=portfolio)
    t = sim.trades
    assert len(t) == 2
    assert t.pnl[0] == pytest.approx(20.0 * 10.0)  # 20 units, +10 each
    equity_after_first = 10_000.0 + float(t.pnl[0])
    filters = sim.filters["BTCUSDT"]
    expected = size_order(
        equity=Decimal(repr(equity_after_first)),
        risk_pct=Decimal(1),
        entry=Decimal(110),
        stop_loss=Decimal(105),
        take_profit=Decimal(130),
        direction="LONG",
        max_position_usd=Decimal("1e12"),
        leverage=10,
        filters=filters,
    )
    assert Decimal(repr(float(t.qty[1]))) == expected.qty == Decimal("20.4")
    assert t.qty[1] != 20.0  # what the initial equity would have given


def test_the_portfolio_rules_hold_on_a_busy_random_market() -> None:
    rng = np.random.default_rng(11)
    symbols = [f"S{k}USDT" for k in range(6)]
    series: dict[str, Candles] = {}
    for s in symbols:
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.004, 4000)))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) * 1.002
        low = np.minimum(open_, close) * 0.998
        series[s] = candles(s, list(zip(open_, high, low, close, strict=True)))
    market = build_market(series, FIVE)
    n = len(market)
    sign = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    atr = market.close * 0.004
    score = rng.uniform(0, 100, n)
    stop, take = market.close - sign * 1.5 * atr, market.close + sign * 3.0 * atr
    valid = np.ones(n, dtype=np.bool_)
    scores = MarketScores(valid, sign, score, market.close.copy(), stop, take, atr)
    portfolio = PortfolioRules(max_open_positions=3)
    sim = simulate(market, scores, 70.0, portfolio=portfolio)
    t = sim.trades
    assert len(t) > 200
    assert sim.skipped["position_open"] > 0
    assert sim.skipped["max_open_positions"] > 0
    for s in symbols:
        mine = [i for i in range(len(t)) if t.symbol[i] == s]
        for a, b in itertools.pairwise(mine):
            assert t.entry_time_ms[b] >= t.exit_time_ms[a]
    for i in range(len(t)):
        holding = (t.entry_time_ms <= t.entry_time_ms[i]) & (t.exit_time_ms > t.entry_time_ms[i])
        assert holding.sum() <= 3
    assert np.all(np.diff(t.entry_time_ms) >= 0)
    assert np.all(np.diff(sim.equity_time_ms) >= 0)
    assert sim.equity[-1] == pytest.approx(10_000.0 + t.pnl.sum(), rel=1e-9)
    risk = t.qty * np.abs(t.entry_price - t.stop_loss)
    np.testing.assert_allclose(t.r_net, t.pnl / risk, rtol=1e-12)
    np.testing.assert_allclose(t.fees, 0.00055 * t.qty * (t.entry_price + t.exit_price), rtol=1e-12)
    taken = len(t) + sum(sim.skipped.values())
    assert taken == sim.signals


def test_signals_outside_the_window_are_not_traded() -> None:
    rows = [*flat(2), (100, 111, 99.5, 110), *flat(10, 110)]
    market = one_symbol(rows)
    at = {0: (1, 90.0, 95.0, 110.0), 6: (1, 90.0, 105.0, 130.0)}
    sim = simulate(market, signals(market, at), 80.0, rules=FREE, start_ms=T0 + FIVE)
    assert sim.signals == 1
    assert sim.trades.signal_time_ms.tolist() == [T0 + 6 * FIVE]
    none = simulate(market, signals(market, at), 80.0, rules=FREE, end_ms=T0)
    assert none.signals == 0
    assert len(none.trades) == 0
    assert none.summary.total_return == 0.0


def test_filters_come_from_the_data_grid_and_a_cent_sized_qty_step() -> None:
    f = derive_filters("BTCUSDT", np.array([60_000.1, 61_234.56, 59_999.99]))
    assert f.tick_size == Decimal("0.01")
    assert f.qty_step == Decimal("1e-7")  # 1e-7 BTC at 61,234.56 is under a cent
    assert f.min_notional == Decimal(5)
    tiny = derive_filters("PEPEUSDT", np.array([0.00000123, 0.0000012]))
    assert tiny.tick_size == Decimal("1e-8")
    assert tiny.qty_step == Decimal(1000)
    market = one_symbol(flat(3, 12.5))
    assert market_filters(market)["BTCUSDT"].tick_size == Decimal("0.1")


def test_scores_must_be_on_the_markets_bars() -> None:
    market = one_symbol(flat(300))
    real = score_market("unirail_core", market)
    assert real.valid.shape == (300,)
    with pytest.raises(InvalidRequest):
        market_scores(market, {})
    with pytest.raises(InvalidRequest):
        build_market({"X": candles("X", flat(3))}, 7 * FIVE)


def test_a_score_qualifies_as_the_scanner_stores_it_to_two_decimals() -> None:
    assert qualifies(np.array([79.996, 79.994, 80.0, np.nan]), 80.0).tolist() == [True, False, True, False]
    market = one_symbol([*flat(2), (100, 111, 99.5, 110), *flat(3, 110)])
    sim = simulate(market, signals(market, {0: (1, 79.996, 95.0, 110.0)}), 80.0, rules=FREE)
    assert sim.signals == len(sim.trades) == 1
