"""lib.core.outcomes: TP first, SL first or neither on hand-built candle paths, with R multiples."""

from __future__ import annotations

import numpy as np
import pytest

from lib.core.outcomes import NEITHER, SL_FIRST, TP_FIRST, Outcomes, label_outcomes
from lib.errors import InvalidRequest

FIVE = 5 * 60 * 1000


def path(bars: list[tuple[float, float, float]], times: list[int] | None = None) -> dict[str, np.ndarray]:
    """Candles from (high, low, close) rows, 5 minutes apart unless ``times`` (in bars) is given."""
    table = np.array(bars, dtype=np.float64)
    minutes = np.arange(len(bars)) if times is None else np.array(times)
    return {
        "open_time_ms": (1_700_000_000_000 + minutes * FIVE).astype(np.int64),
        "high": table[:, 0],
        "low": table[:, 1],
        "close": table[:, 2],
    }


def label(candles: dict[str, np.ndarray], **signal: object) -> Outcomes:
    return label_outcomes(**candles, **signal)  # type: ignore[arg-type]


# Entry at 100 with the stop 3 away and the target 6 away (2 R), LONG and SHORT.
LONG = {"bar_index": 0, "sign": 1, "entry": 100.0, "stop_loss": 97.0, "take_profit": 106.0}
SHORT = {"bar_index": 0, "sign": -1, "entry": 100.0, "stop_loss": 103.0, "take_profit": 94.0}


def test_a_long_that_reaches_its_target_first_is_tp_first_with_two_r() -> None:
    candles = path([(100.5, 99.5, 100.0), (103.0, 99.0, 102.0), (106.0, 101.0, 105.0), (104, 96, 97)])
    out = label(candles, **LONG, horizon_bars=10)
    assert out.result.tolist() == [TP_FIRST]
    assert out.r_multiple.tolist() == [2.0]
    assert out.exit_offset.tolist() == [2]  # a high exactly at the target counts as a hit


def test_a_long_that_hits_its_stop_first_is_sl_first_with_minus_one_r() -> None:
    candles = path([(100.5, 99.5, 100.0), (101.0, 97.0, 98.0), (107.0, 99.0, 106.5)])
    out = label(candles, **LONG, horizon_bars=10)
    assert out.result.tolist() == [SL_FIRST]
    assert out.r_multiple.tolist() == [-1.0]
    assert out.exit_offset.tolist() == [1]


def test_a_short_mirrors_a_long() -> None:
    tp_path = path([(100.5, 99.5, 100.0), (101.0, 97.0, 98.0), (99.0, 94.0, 95.0)])
    sl_path = path([(100.5, 99.5, 100.0), (103.0, 99.0, 102.0), (101.0, 90.0, 91.0)])
    tp = label(tp_path, **SHORT, horizon_bars=10)
    sl = label(sl_path, **SHORT, horizon_bars=10)
    assert (tp.result.tolist(), tp.r_multiple.tolist(), tp.exit_offset.tolist()) == ([TP_FIRST], [2.0], [2])
    assert (sl.result.tolist(), sl.r_multiple.tolist(), sl.exit_offset.tolist()) == ([SL_FIRST], [-1.0], [1])


def test_a_bar_that_hits_both_levels_counts_as_the_stop_first() -> None:
    candles = path([(100.5, 99.5, 100.0), (106.5, 96.5, 105.0)])
    long = label(candles, **LONG, horizon_bars=5)
    short_candles = path([(100.5, 99.5, 100.0), (103.5, 93.5, 95.0)])
    short = label(short_candles, **SHORT, horizon_bars=5)
    assert long.result.tolist() == short.result.tolist() == [SL_FIRST]
    assert long.r_multiple.tolist() == short.r_multiple.tolist() == [-1.0]


def test_neither_is_marked_to_market_at_the_horizons_last_close() -> None:
    # Closes 101, 102, 101.5 inside a 3-bar horizon; the 4th bar would hit the target but is outside.
    candles = path(
        [
            (100.5, 99.5, 100.0),
            (101.5, 99.0, 101.0),
            (102.5, 100.5, 102.0),
            (102, 101, 101.5),
            (107, 101, 106),
        ]
    )
    long = label(candles, **LONG, horizon_bars=3)
    short = label(candles, **SHORT, horizon_bars=3)
    assert long.result.tolist() == short.result.tolist() == [NEITHER]
    assert long.r_multiple.tolist() == [pytest.approx(0.5)]  # (101.5 - 100) / 3
    assert short.r_multiple.tolist() == [pytest.approx(-0.5)]
    assert long.exit_offset.tolist() == [3]
    assert long.complete.tolist() == [True]


def test_a_hit_on_the_horizons_last_bar_counts_and_one_bar_later_does_not() -> None:
    candles = path([(100.5, 99.5, 100.0), (101, 99, 100.5), (101, 99, 100.5), (106, 100, 105)])
    assert label(candles, **LONG, horizon_bars=3).result.tolist() == [TP_FIRST]
    assert label(candles, **LONG, horizon_bars=2).result.tolist() == [NEITHER]


def test_an_unresolved_signal_whose_horizon_runs_past_the_data_is_incomplete() -> None:
    candles = path([(100.5, 99.5, 100.0), (101, 99, 100.5), (101, 99, 101.0)])
    out = label(candles, **LONG, horizon_bars=5)
    assert out.result.tolist() == [NEITHER]
    assert out.complete.tolist() == [False]
    assert out.r_multiple.tolist() == [pytest.approx(1.0 / 3.0)]


def test_a_resolved_signal_near_the_end_of_the_data_is_complete() -> None:
    candles = path([(100.5, 99.5, 100.0), (106.5, 99, 106.0)])
    out = label(candles, **LONG, horizon_bars=5)
    assert (out.result.tolist(), out.complete.tolist()) == ([TP_FIRST], [True])


def test_a_signal_on_the_last_bar_has_no_candle_and_is_incomplete() -> None:
    candles = path([(100.5, 99.5, 100.0)])
    out = label(candles, **LONG, horizon_bars=5)
    assert out.result.tolist() == [NEITHER]
    assert out.r_multiple.tolist() == [0.0]
    assert out.exit_offset.tolist() == [0]
    assert out.complete.tolist() == [False]


def test_a_gap_shortens_the_horizon_instead_of_stretching_it() -> None:
    # Candles at bars 0, 1, then a gap to bar 5. With a 3-bar horizon, bar 5 (which hits the target)
    # is outside: the trade is marked at bar 1's close, and the data covers the horizon (bar 5 exists).
    candles = path(
        [(100.5, 99.5, 100.0), (101.5, 99.5, 101.5), (107.0, 101.0, 106.5)],
        times=[0, 1, 5],
    )
    out = label(candles, **LONG, horizon_bars=3)
    assert out.result.tolist() == [NEITHER]
    assert out.r_multiple.tolist() == [pytest.approx(0.5)]
    assert out.exit_offset.tolist() == [1]
    assert out.complete.tolist() == [True]
    # With a horizon that reaches bar 5, the candle after the gap decides.
    assert label(candles, **LONG, horizon_bars=5).result.tolist() == [TP_FIRST]


def test_many_signals_at_once_match_one_at_a_time() -> None:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, 300))
    high = close + rng.uniform(0, 1, 300)
    low = close - rng.uniform(0, 1, 300)
    candles = {
        "open_time_ms": np.arange(300, dtype=np.int64) * FIVE,
        "high": high,
        "low": low,
        "close": close,
    }
    idx = np.arange(0, 300, 3)
    sign = np.where(idx % 2 == 0, 1.0, -1.0)
    entry = close[idx]
    stop = entry - sign * 1.5
    take = entry + sign * 3.0
    together = label_outcomes(
        **candles, bar_index=idx, sign=sign, entry=entry, stop_loss=stop, take_profit=take, horizon_bars=20
    )
    for k, i in enumerate(idx):
        alone = label_outcomes(
            **candles,
            bar_index=[i],
            sign=[sign[k]],
            entry=[entry[k]],
            stop_loss=[stop[k]],
            take_profit=[take[k]],
            horizon_bars=20,
        )
        assert together.result[k] == alone.result[0]
        assert together.r_multiple[k] == alone.r_multiple[0]
        assert together.exit_offset[k] == alone.exit_offset[0]
        assert together.complete[k] == alone.complete[0]
    assert set(together.result.tolist()) == {TP_FIRST, SL_FIRST, NEITHER}


def test_levels_on_the_wrong_side_of_the_entry_are_refused() -> None:
    candles = path([(100.5, 99.5, 100.0), (101, 99, 100)])
    with pytest.raises(InvalidRequest, match="out of order"):
        label(candles, bar_index=0, sign=1, entry=100.0, stop_loss=103.0, take_profit=106.0, horizon_bars=3)
    with pytest.raises(InvalidRequest, match="horizon_bars"):
        label(candles, **LONG, horizon_bars=0)
    with pytest.raises(InvalidRequest, match="bar_index"):
        label(candles, **{**LONG, "bar_index": 2}, horizon_bars=3)
