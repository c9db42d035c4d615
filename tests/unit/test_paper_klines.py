"""Klines are aggregated from the candles known at the replay time (5-minute, or hourly where the data
has nothing finer), newest first."""

from decimal import Decimal as D

import numpy as np
import pytest

from lib.core.candles import Candles
from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import ExchangeRejected
from lib.paper_exchange.klines import KlineQuery, bucket_starts, build_klines, check_interval
from lib.paper_exchange.market import MarketData

T0 = 1_515_542_400_000  # 2018-01-10 00:00 UTC, a Wednesday


def market(
    rows: list[tuple[int, float, float, float, float, float]], candle_ms: int = FIVE_MINUTES_MS
) -> MarketData:
    table = np.array(rows, dtype=np.float64)
    candles = Candles(
        symbol="XUSDT",
        open_time_ms=table[:, 0].astype(np.int64),
        open=table[:, 1].copy(),
        high=table[:, 2].copy(),
        low=table[:, 3].copy(),
        close=table[:, 4].copy(),
        volume=table[:, 5].copy(),
    )
    return MarketData({"XUSDT": candles}, {"XUSDT": candle_ms})


# Six 5-minute candles from T0 (two whole 15-minute buckets), the 5th missing (a gap).
ROWS = [
    (T0 + 0 * FIVE_MINUTES_MS, 1.0, 1.5, 0.9, 1.2, 10.0),
    (T0 + 1 * FIVE_MINUTES_MS, 1.2, 2.0, 1.1, 1.9, 20.0),
    (T0 + 2 * FIVE_MINUTES_MS, 1.9, 1.95, 1.7, 1.8, 30.0),
    (T0 + 3 * FIVE_MINUTES_MS, 1.8, 1.85, 1.6, 1.7, 5.0),
    (T0 + 5 * FIVE_MINUTES_MS, 1.75, 1.8, 1.5, 1.6, 7.0),
]


def query(interval: str, limit: int = 200, start: int | None = None, end: int | None = None) -> KlineQuery:
    return KlineQuery(symbol="XUSDT", interval=interval, start_ms=start, end_ms=end, limit=limit)


def test_a_15_minute_kline_aggregates_its_5_minute_candles() -> None:
    rows = build_klines(market(ROWS), query("15"), now_ms=T0 + 6 * FIVE_MINUTES_MS)
    assert rows == [
        [
            str(T0 + 3 * FIVE_MINUTES_MS),
            "1.8",
            "1.85",
            "1.5",
            "1.6",
            "12",
            str(D("5") * D("1.7") + D("7") * D("1.6")),
        ],
        [str(T0), "1", "2", "0.9", "1.8", "60", str(D("12") + D("38") + D("54"))],
    ]


def test_the_forming_candle_shows_only_its_open() -> None:
    rows = build_klines(market(ROWS), query("5"), now_ms=T0 + 2 * FIVE_MINUTES_MS)
    assert rows[0] == [str(T0 + 2 * FIVE_MINUTES_MS), "1.9", "1.9", "1.9", "1.9", "0", "0"]
    assert [int(r[0]) for r in rows] == [T0 + 2 * FIVE_MINUTES_MS, T0 + FIVE_MINUTES_MS, T0]


def test_a_forming_bucket_never_reveals_later_prices() -> None:
    rows = build_klines(market(ROWS), query("15"), now_ms=T0 + FIVE_MINUTES_MS)
    assert rows == [[str(T0), "1", "1.5", "0.9", "1.2", "10", "12"]]


def test_nothing_is_served_before_the_first_candle() -> None:
    assert build_klines(market(ROWS), query("5"), now_ms=T0 - 1) == []


def test_a_gap_stays_a_gap() -> None:
    starts = [int(r[0]) for r in build_klines(market(ROWS), query("5"), now_ms=T0 + 6 * FIVE_MINUTES_MS)]
    assert T0 + 4 * FIVE_MINUTES_MS not in starts
    assert len(starts) == 5


def test_limit_keeps_the_newest_and_start_alone_keeps_the_oldest() -> None:
    m = market(ROWS)
    now = T0 + 6 * FIVE_MINUTES_MS
    assert [int(r[0]) for r in build_klines(m, query("5", limit=2), now)] == [
        T0 + 5 * FIVE_MINUTES_MS,
        T0 + 3 * FIVE_MINUTES_MS,
    ]
    assert [int(r[0]) for r in build_klines(m, query("5", limit=2, start=T0), now)] == [
        T0 + FIVE_MINUTES_MS,
        T0,
    ]
    window = build_klines(m, query("5", start=T0 + FIVE_MINUTES_MS, end=T0 + 2 * FIVE_MINUTES_MS), now)
    assert [int(r[0]) for r in window] == [T0 + 2 * FIVE_MINUTES_MS, T0 + FIVE_MINUTES_MS]


def test_buckets_start_on_utc_day_monday_and_month_boundaries() -> None:
    t = np.array([T0 + 13 * 3_600_000], dtype=np.int64)  # 2018-01-10 13:00 UTC
    assert int(bucket_starts(t, "D")[0]) == T0
    assert int(bucket_starts(t, "W")[0]) == T0 - 2 * 86_400_000  # Monday 2018-01-08
    assert int(bucket_starts(t, "M")[0]) == 1_514_764_800_000  # 2018-01-01
    assert int(bucket_starts(t, "240")[0]) == T0 + 12 * 3_600_000


@pytest.mark.parametrize("interval", ["1", "3", "2", "H"])
def test_intervals_the_replay_cannot_build_are_refused_with_10001(interval: str) -> None:
    with pytest.raises(ExchangeRejected) as caught:
        check_interval(interval)
    assert caught.value.ret_code == 10001


HOUR_MS = 12 * FIVE_MINUTES_MS
# Five hourly candles from T0 (an hourly-only symbol).
HOURLY = [
    (T0 + 0 * HOUR_MS, 1.0, 1.5, 0.9, 1.2, 10.0),
    (T0 + 1 * HOUR_MS, 1.2, 2.0, 1.1, 1.9, 20.0),
    (T0 + 2 * HOUR_MS, 1.9, 1.95, 1.7, 1.8, 30.0),
    (T0 + 3 * HOUR_MS, 1.8, 1.85, 1.6, 1.7, 5.0),
    (T0 + 4 * HOUR_MS, 1.75, 1.8, 1.5, 1.6, 7.0),
]


def test_hourly_data_serves_60_minutes_and_longer() -> None:
    hourly = market(HOURLY, HOUR_MS)
    now = T0 + 4 * HOUR_MS + 30 * 60_000  # 04:30: the 04:00 candle is forming
    rows = build_klines(hourly, query("60"), now_ms=now)
    assert [row[0] for row in rows] == [str(T0 + k * HOUR_MS) for k in (4, 3, 2, 1, 0)]
    assert rows[0][1:] == ["1.75", "1.75", "1.75", "1.75", "0", "0"]  # forming: its open only
    assert rows[1][1:6] == ["1.8", "1.85", "1.6", "1.7", "5"]
    two_hours = build_klines(hourly, query("120"), now_ms=now)
    assert two_hours[1][1:6] == ["1.9", "1.95", "1.6", "1.7", "35"]
    assert build_klines(hourly, query("D"), now_ms=now)[0][1:4] == ["1", "2", "0.9"]


@pytest.mark.parametrize("interval", ["5", "15", "30"])
def test_an_interval_finer_than_the_data_is_an_empty_list_as_bybit_answers_too_little_history(
    interval: str,
) -> None:
    hourly = market(HOURLY, HOUR_MS)
    assert check_interval(interval) == interval  # a valid interval: no 10001
    assert build_klines(hourly, query(interval), now_ms=T0 + 5 * HOUR_MS) == []
    assert build_klines(hourly, query(interval, start=T0), now_ms=T0 + 5 * HOUR_MS) == []
    # the same interval on five-minute data is served
    assert build_klines(market(ROWS), query(interval), now_ms=T0 + 6 * FIVE_MINUTES_MS) != []


def test_an_hourly_candle_completes_an_hour_after_it_opens() -> None:
    hourly = market(HOURLY, HOUR_MS)
    assert hourly.completed_count("XUSDT", T0 + HOUR_MS - 1) == 0
    assert hourly.completed_count("XUSDT", T0 + HOUR_MS) == 1
    assert hourly.price("XUSDT", T0 + 30 * 60_000) == D("1")  # the forming candle's open all hour
    assert hourly.candle("XUSDT", 0).close_time_ms == T0 + HOUR_MS
    assert hourly.last_close_ms == T0 + 5 * HOUR_MS
