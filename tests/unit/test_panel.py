"""Klines -> one CandlePanel of closed bars: alignment, the candle in progress, gaps, bad data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

from lib.core.panel import build_panel
from lib.core.timeframes import INTERVAL_MS, candle_close_ms, candle_open_ms, previous_open_ms
from lib.errors import InvalidRequest

FIVE = INTERVAL_MS["5"]
T0 = 1_700_000_100_000 // FIVE * FIVE  # a 5-minute boundary


@dataclass(frozen=True)
class Series:
    open_time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def series(times: list[int] | np.ndarray, base: float = 100.0) -> Series:
    """Candles at ``times`` whose close encodes the bar's index (base + i), so positions are checkable."""
    t = np.asarray(times, dtype=np.int64)
    close = base + np.arange(t.size, dtype=np.float64)
    return Series(t, close - 0.5, close + 1.0, close - 1.0, close, np.full(t.size, 10.0))


def grid(count: int, start: int = T0, step: int = FIVE) -> list[int]:
    return [start + i * step for i in range(count)]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_the_candle_in_progress_is_dropped_and_only_closed_bars_are_kept() -> None:
    times = grid(11)  # the 11th opened at T0 + 50 min and is still forming at now
    now = T0 + 10 * FIVE + 60_000

    built = build_panel({"AAA": series(times)}, "5", now, min_bars=5)

    assert built.panel is not None
    assert built.in_progress_dropped == 1
    assert built.panel.open_time_ms.tolist() == times[:10]
    assert built.panel.close[0, -1] == 109.0
    assert built.last_bar_ms == times[9]


def test_a_bar_closing_exactly_now_counts_as_closed() -> None:
    times = grid(10)
    now = times[-1] + FIVE  # the last bar's close is now: it is complete

    built = build_panel({"AAA": series(times)}, "5", now, min_bars=5)

    assert built.in_progress_dropped == 0
    assert built.last_bar_ms == times[-1]


def test_symbols_with_less_history_are_left_padded_with_nan_on_one_time_axis() -> None:
    long, short = grid(12), grid(8, start=T0 + 4 * FIVE)
    now = T0 + 12 * FIVE

    built = build_panel({"LONG1": series(long), "SHORT1": series(short, base=500.0)}, "5", now, min_bars=6)

    panel = built.panel
    assert panel is not None
    assert panel.symbols == ("LONG1", "SHORT1")
    assert panel.open_time_ms.tolist() == long
    assert np.isnan(panel.close[1, :4]).all()
    assert panel.close[1, 4:].tolist() == [500.0 + i for i in range(8)]
    assert panel.close[0].tolist() == [100.0 + i for i in range(12)]
    assert built.problems == ()


def test_a_gap_keeps_only_the_unbroken_run_after_it_and_nothing_is_interpolated() -> None:
    times = grid(12)
    del times[3]  # bar 3 is missing: bars 0..2 sit before the gap
    now = T0 + 12 * FIVE
    other = grid(12)

    built = build_panel({"GAPPY": series(times), "FULL": series(other)}, "5", now, min_bars=5)

    panel = built.panel
    assert panel is not None
    row = panel.close[panel.symbols.index("GAPPY")]
    assert np.isnan(row[:4]).all()  # before and at the gap: no data, never invented
    assert row[4:].tolist() == [103.0 + i for i in range(8)]  # the run after the gap, at its own times
    assert not np.isnan(panel.close[panel.symbols.index("FULL")]).any()


def test_a_gap_that_leaves_too_little_history_is_reported_not_raised() -> None:
    times = grid(12)
    del times[8]
    now = T0 + 12 * FIVE

    built = build_panel({"GAPPY": series(times), "FULL": series(grid(12))}, "5", now, min_bars=5)

    assert built.panel is not None
    assert built.panel.symbols == ("FULL",)
    (problem,) = built.problems
    assert (problem.symbol, problem.code) == ("GAPPY", "too_little_history")
    assert "3 closed bars after a gap" in problem.message


def test_columns_nobody_has_data_in_after_gaps_are_trimmed() -> None:
    times = grid(12)
    del times[2]
    now = T0 + 12 * FIVE

    built = build_panel({"A1": series(times), "B1": series(times, base=7.0)}, "5", now, min_bars=5)

    assert built.panel is not None
    assert built.panel.open_time_ms.tolist() == grid(12)[3:]
    assert not np.isnan(built.panel.close).any()


def test_a_symbol_without_a_candle_for_the_latest_bar_is_stale() -> None:
    now = T0 + 12 * FIVE

    built = build_panel({"LIVE": series(grid(12)), "HALTED": series(grid(10))}, "5", now, min_bars=5)

    assert built.panel is not None
    assert built.panel.symbols == ("LIVE",)
    assert [(p.symbol, p.code) for p in built.problems] == [("HALTED", "stale")]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("close", np.nan, "NaN"),
        ("high", np.inf, "NaN or infinite"),
        ("low", 0.0, "at or below zero"),
        ("volume", -1.0, "negative volume"),
    ],
)
def test_nan_or_impossible_numbers_make_a_symbol_bad_data(field: str, value: float, reason: str) -> None:
    broken = series(grid(10))
    getattr(broken, field)[4] = value
    now = T0 + 10 * FIVE

    built = build_panel({"BROKEN": broken, "FINE": series(grid(10))}, "5", now, min_bars=5)

    assert built.panel is not None
    assert built.panel.symbols == ("FINE",)
    (problem,) = built.problems
    assert (problem.symbol, problem.code) == ("BROKEN", "bad_data")
    assert reason in problem.message


def test_nan_in_the_candle_in_progress_does_not_matter_since_it_is_dropped() -> None:
    forming = series(grid(11))
    forming.volume[-1] = np.nan
    built = build_panel({"AAA": forming}, "5", T0 + 10 * FIVE, min_bars=5)
    assert built.panel is not None
    assert built.problems == ()


def test_times_off_the_timeframe_grid_are_misaligned() -> None:
    off = [t + 60_000 for t in grid(10)]
    built = build_panel({"OFF": series(off), "ON": series(grid(10))}, "5", T0 + 11 * FIVE, min_bars=5)

    assert [(p.symbol, p.code) for p in built.problems] == [("OFF", "misaligned")]


def test_no_closed_candle_at_all_is_no_data_and_no_symbol_gives_no_panel() -> None:
    built = build_panel({"NEW": series([T0])}, "5", T0 + 1, min_bars=1)

    assert built.panel is None
    assert [(p.symbol, p.code) for p in built.problems] == [("NEW", "no_data")]
    assert build_panel({}, "5", T0, min_bars=1).panel is None


def test_max_bars_keeps_the_newest_bars() -> None:
    built = build_panel({"AAA": series(grid(50))}, "5", T0 + 50 * FIVE, min_bars=5, max_bars=20)

    assert built.panel is not None
    assert built.panel.open_time_ms.tolist() == grid(50)[30:]
    assert built.panel.close[0, -1] == 149.0


def test_hourly_and_monthly_panels_align_on_bybits_utc_boundaries() -> None:
    hour = INTERVAL_MS["60"]
    hours = grid(6, start=ms("2024-03-01T00:00:00"), step=hour)
    built = build_panel({"H1": series(hours)}, "60", hours[-1] + hour // 2, min_bars=3)
    assert built.panel is not None
    assert built.panel.open_time_ms.tolist() == hours[:5]

    months = [ms(f"2024-{m:02d}-01T00:00:00") for m in range(1, 7)]
    built = build_panel({"M1": series(months)}, "M", ms("2024-06-15T00:00:00"), min_bars=3)
    assert built.panel is not None
    assert built.panel.open_time_ms.tolist() == months[:5]


def test_candle_boundaries_follow_bybit_minutes_days_mondays_and_months() -> None:
    t = ms("2024-02-29T13:47:12")  # a Thursday, in a leap February
    assert candle_open_ms("5", t) == ms("2024-02-29T13:45:00")
    assert candle_open_ms("240", t) == ms("2024-02-29T12:00:00")
    assert candle_open_ms("D", t) == ms("2024-02-29T00:00:00")
    assert candle_open_ms("W", t) == ms("2024-02-26T00:00:00")  # Monday
    assert candle_open_ms("M", t) == ms("2024-02-01T00:00:00")
    assert candle_close_ms("M", ms("2024-02-01T00:00:00")) == ms("2024-03-01T00:00:00")
    assert candle_close_ms("M", ms("2024-12-01T00:00:00")) == ms("2025-01-01T00:00:00")
    assert candle_close_ms("W", ms("2024-02-26T00:00:00")) == ms("2024-03-04T00:00:00")
    assert previous_open_ms("M", ms("2024-03-01T00:00:00")) == ms("2024-02-01T00:00:00")


def test_an_unknown_timeframe_or_impossible_bar_counts_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        build_panel({}, "7", T0, min_bars=1)
    with pytest.raises(InvalidRequest):
        build_panel({}, "5", T0, min_bars=10, max_bars=5)
    with pytest.raises(InvalidRequest):
        candle_open_ms("2h", T0)
