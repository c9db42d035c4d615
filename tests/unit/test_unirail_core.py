"""unirail_core: a hand-computed example, the score's bookkeeping, levels, history rules, real data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lib.core.candles import Candidate, CandlePanel, Candles
from lib.core.vocabulary import ALGORITHMS
from lib.errors import InvalidRequest
from lib.research.bundled_data import load_all
from lib.scoring import score, unirail_core
from lib.scoring.features import single_symbol_panel

FIVE = 5 * 60 * 1000
T0 = 1_700_000_000_000


def flat_then_spike(n: int = 250, *, minutes: int = 5) -> CandlePanel:
    """``n - 1`` identical bars (open = close = 100, high 101, low 99, volume 1000), then one up bar:
    open 100, high 102, low 99.5, close 101, volume 3000. Every indicator can be worked out by hand.

    A second symbol is the mirror image (prices reflected around 100), a falling market.
    """
    o = np.full(n, 100.0)
    h = np.full(n, 101.0)
    lo = np.full(n, 99.0)
    c = np.full(n, 100.0)
    v = np.full(n, 1000.0)
    h[-1], lo[-1], c[-1], v[-1] = 102.0, 99.5, 101.0, 3000.0
    return CandlePanel(
        symbols=("UP", "DOWN"),
        open_time_ms=T0 + np.arange(n, dtype=np.int64) * minutes * 60_000,
        open=np.vstack([o, 200 - o]),
        high=np.vstack([h, 200 - lo]),
        low=np.vstack([lo, 200 - h]),
        close=np.vstack([c, 200 - c]),
        volume=np.vstack([v, v]),
    )


def ramp(x: float, lo: float, hi: float) -> float:
    return min(max((x - lo) / (hi - lo), 0.0), 1.0)


def test_the_hand_computed_example_matches_every_component_and_the_total() -> None:
    (up, down) = unirail_core.score_panel(flat_then_spike())

    # Indicators on the last bar, by hand. True ranges are 2 before it and 2.5 on it (102 - 99.5).
    atr = (13 * 2.0 + 2.5) / 14  # Wilder: 2.0357
    ema21 = 100 + 1 * 2 / 22
    ema50 = 100 + 1 * 2 / 51
    sma200 = 100 + 1 / 200
    close = 101.0
    # RSI: the only move is up, so RSI = 100 (LONG r = 100, SHORT r = 0): momentum 0 on both sides.
    # ADX: no directional move until the last bar, whose DX is 100: ADX = 100 / 14 = 7.1 < 20.
    # Volume ratio: 3000 / 1000 = 3 on an up bar. OBV flow: +3000 / (19 * 1000 + 3000).
    flow = 3000 / 22000
    atr_pct = 100 * atr / close

    trend = (
        10 * ramp((ema21 - ema50) / atr, 0, 1)
        + 8 * ramp((ema50 - sma200) / atr, 0, 2)
        + 7 * ramp((close - sma200) / atr, 0, 2)
    )
    volatility = 10 * (1 - ramp(atr_pct, 1.2, 2.5))  # ATR% 2.016: on the falling edge of the band
    expected_long = {
        "trend": trend,
        "momentum": 0.0,
        "strength": 0.0,
        "volume": 10.0,  # ratio 3 reaches the top of the 1..3 ramp, and the bar closed up
        "entry": 10.0,  # (close - EMA21) / ATR = 0.447, inside the 0..1 plateau
        "volatility": volatility,
        "confirmation": 8 * ramp(0.0, -0.5, 0.25) + 7 * ramp(flow, 0, 0.3),  # closed at the 20-bar high
    }
    assert up.symbol == "UP"
    assert up.direction == "LONG"
    assert up.components == pytest.approx(expected_long, abs=1e-9)
    assert up.components["trend"] == pytest.approx(2.0319, abs=1e-4)
    assert up.components["confirmation"] == pytest.approx(5.3333 + 3.1818, abs=1e-4)
    assert up.score == pytest.approx(sum(expected_long.values()), abs=1e-9)
    assert up.score == pytest.approx(34.2735, abs=1e-4)

    # The SHORT side of the same bar: only the entry (just below EMA21) and the volatility band count.
    short_score = 10 * ramp(-(close - ema21) / atr, -0.5, 0) + volatility
    assert up.confidence == pytest.approx((up.score - short_score) / up.score, abs=1e-9)
    assert up.entry == close
    assert up.atr == pytest.approx(atr, abs=1e-12)
    assert up.stop_loss == pytest.approx(close - 1.5 * atr, abs=1e-12)
    assert up.take_profit == pytest.approx(close + 3.0 * atr, abs=1e-12)
    assert up.bar_time_ms == T0 + 249 * FIVE

    # The mirror image gets the mirror verdict: SHORT, with the same components except the ATR band
    # (the same ATR is a larger share of a price of 99).
    assert down.direction == "SHORT"
    mirrored = {**expected_long, "volatility": 10 * (1 - ramp(100 * atr / 99.0, 1.2, 2.5))}
    assert down.components == pytest.approx(mirrored, abs=1e-9)
    assert down.stop_loss == pytest.approx(99.0 + 1.5 * atr, abs=1e-12)
    assert down.take_profit == pytest.approx(99.0 - 3.0 * atr, abs=1e-12)


def test_the_atr_band_widens_with_the_square_root_of_the_bar_length() -> None:
    (up15, _) = unirail_core.score_panel(flat_then_spike(minutes=15))
    atr_pct = 100 * ((13 * 2.0 + 2.5) / 14) / 101.0
    k = math.sqrt(3.0)
    assert atr_pct < 1.2 * k  # inside the 15-minute plateau, where 5-minute bars were past it
    assert up15.components["volatility"] == pytest.approx(10.0)


def test_the_ramps_are_linear_between_their_breakpoints() -> None:
    x = np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0, np.nan])
    assert unirail_core.ramp(x, 0.0, 1.0)[:6].tolist() == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert np.isnan(unirail_core.ramp(x, 0.0, 1.0)[6])
    tz = unirail_core.trapezoid(np.array([50.0, 54.0, 58.0, 63.0, 68.0, 74.0, 80.0, 90.0]), 50, 58, 68, 80)
    assert tz.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    assert sum(unirail_core.WEIGHTS.values()) == 100.0
    assert tuple(unirail_core.WEIGHTS) == unirail_core.COMPONENTS


def bundled_panel(length: int | None = None, end: int | None = None) -> CandlePanel:
    """The bundled symbols, right-aligned by row (each row is one symbol's own bars), as a panel."""
    candles = load_all()
    stop = end if end is not None else min(len(c) for c in candles.values())
    start = 0 if length is None else stop - length
    symbols = tuple(sorted(candles))

    def rows(name: str) -> np.ndarray:
        return np.vstack([getattr(candles[s], name)[start:stop] for s in symbols])

    return CandlePanel(
        symbols=symbols,
        open_time_ms=candles[symbols[0]].open_time_ms[start:stop],
        open=rows("open"),
        high=rows("high"),
        low=rows("low"),
        close=rows("close"),
        volume=rows("volume"),
    )


@pytest.fixture(scope="module")
def bundled() -> dict[str, Candles]:
    return load_all()


def full_history_scores(bundled: dict[str, Candles]) -> dict[str, np.ndarray]:
    out = {}
    for symbol, c in bundled.items():
        panel = single_symbol_panel(symbol, c.open_time_ms, c.open, c.high, c.low, c.close, c.volume)
        bars = unirail_core.score_bars(panel)
        out[symbol] = bars.score[0][bars.valid[0]]
    return out


def test_components_add_up_to_the_score_on_real_data() -> None:
    for end in (300, 2000, 4000, 5700):
        candidates = unirail_core.score_panel(bundled_panel(300, end))
        assert len(candidates) == 8
        for cand in candidates:
            assert set(cand.components) == set(unirail_core.COMPONENTS)
            assert sum(cand.components.values()) == pytest.approx(cand.score, abs=1e-9)
            for name, value in cand.components.items():
                assert 0.0 <= value <= unirail_core.WEIGHTS[name] + 1e-12


def test_levels_sit_on_the_right_sides_for_long_and_short() -> None:
    seen: dict[str, Candidate] = {}
    for end in range(300, 5700, 150):
        for cand in unirail_core.score_panel(bundled_panel(300, end)):
            seen.setdefault(cand.direction, cand)
    long, short = seen["LONG"], seen["SHORT"]
    assert long.stop_loss < long.entry < long.take_profit
    assert short.take_profit < short.entry < short.stop_loss
    for cand, sign in ((long, 1), (short, -1)):
        assert cand.stop_loss == pytest.approx(cand.entry - sign * 1.5 * cand.atr, rel=1e-12)
        assert cand.take_profit == pytest.approx(cand.entry + sign * 3.0 * cand.atr, rel=1e-12)


def test_scoring_is_deterministic() -> None:
    panel = bundled_panel(300, 3000)
    assert unirail_core.score_panel(panel) == unirail_core.score_panel(panel)
    assert score("unirail_core", panel) == unirail_core.score_panel(panel)


def test_a_symbol_needs_200_bars_of_history() -> None:
    panel = flat_then_spike(250)

    def cut(p: CandlePanel, n: int) -> CandlePanel:
        last = slice(p.open_time_ms.shape[0] - n, None)
        return CandlePanel(
            p.symbols,
            p.open_time_ms[last],
            p.open[:, last],
            p.high[:, last],
            p.low[:, last],
            p.close[:, last],
            p.volume[:, last],
        )

    assert unirail_core.score_panel(cut(panel, 199)) == []
    assert [c.symbol for c in unirail_core.score_panel(cut(panel, 200))] == ["UP", "DOWN"]


def test_a_left_padded_symbol_without_enough_history_gets_no_candidate() -> None:
    panel = bundled_panel(300, 3000)
    close = panel.close.copy()
    close[2, :120] = np.nan  # only 180 bars for the third symbol
    padded = CandlePanel(
        panel.symbols, panel.open_time_ms, panel.open, panel.high, panel.low, close, panel.volume
    )
    symbols = [c.symbol for c in unirail_core.score_panel(padded)]
    assert symbols == [s for i, s in enumerate(panel.symbols) if i != 2]


def test_a_market_that_never_moves_gets_no_candidate() -> None:
    n = 260
    flat = np.full((1, n), 50.0)
    panel = CandlePanel(("FLAT",), T0 + np.arange(n, dtype=np.int64) * FIVE, flat, flat, flat, flat, flat)
    assert unirail_core.score_panel(panel) == []  # ATR 0: no stop can be placed


def test_a_300_bar_window_scores_like_the_full_history(bundled: dict[str, Candles]) -> None:
    for symbol, c in bundled.items():
        panel = single_symbol_panel(symbol, c.open_time_ms, c.open, c.high, c.low, c.close, c.volume)
        full = unirail_core.score_bars(panel)
        for t in range(299, len(c), 397):
            w = slice(t - 299, t + 1)
            window = single_symbol_panel(
                symbol, c.open_time_ms[w], c.open[w], c.high[w], c.low[w], c.close[w], c.volume[w]
            )
            (cand,) = unirail_core.score_panel(window)
            assert cand.score == pytest.approx(full.score[0, t], abs=0.01)
            assert cand.direction == ("LONG" if full.sign[0, t] > 0 else "SHORT")


def test_the_scanner_path_scores_the_last_bar_exactly_like_the_backtest_path() -> None:
    panel = bundled_panel(300, 4321)
    bars = unirail_core.score_bars(panel)
    for i, cand in enumerate(unirail_core.score_panel(panel)):
        assert cand.score == bars.score[i, -1]
        assert cand.components == {name: bars.components[name][i, -1] for name in unirail_core.COMPONENTS}
        assert (cand.stop_loss, cand.take_profit) == (bars.stop_loss[i, -1], bars.take_profit[i, -1])


def test_scores_spread_across_the_range_on_the_bundled_data(bundled: dict[str, Candles]) -> None:
    scores = np.concatenate(list(full_history_scores(bundled).values()))
    assert scores.size > 40_000
    high = float(np.mean(scores >= 80))
    assert 0.0 < high < 0.05  # some bars pass the default threshold, most do not
    p10, p50, p90 = np.percentile(scores, [10, 50, 90])
    assert p90 - p10 > 25  # not a constant
    assert 30 < p50 < 60
    assert scores.min() < 20
    assert scores.max() > 85


def test_score_dispatches_by_name_and_refuses_unknown_algorithms() -> None:
    assert ALGORITHMS == ("unirail_core", "quantum_ai")
    with pytest.raises(InvalidRequest) as info:
        score("astrology", flat_then_spike())
    assert info.value.details["known"] == ["unirail_core", "quantum_ai"]
