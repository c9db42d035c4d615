"""The paper exchange's precomputed candle texts give, byte for byte, what the per-row Decimal code gave.

The reference functions below are the Decimal implementations the paper exchange used before its market
data was formatted at load (klines ``build_klines``/``_aggregate`` and the ticker's 24-hour statistics),
kept verbatim as the oracle. Every answer is compared with them on random data built to reach the corners:
gaps, irregular open times, integers, tiny and huge values, zero volumes, sums long enough for the
28-digit Decimal context to round (the exact sums must then step aside), negative volumes, and the
replay clock advancing one step at a time (nothing from after the replay time may ever show).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.core.candles import Candles
from lib.core.timeframes import FIVE_MINUTES_MS, TIMEFRAMES
from lib.paper_exchange import app as paper_app
from lib.paper_exchange.candle_text import (
    CandleText,
    candle_text,
    candle_texts,
    candles_between,
    decimal_sums,
    scaled_text,
)
from lib.paper_exchange.config import PaperExchangeConfig
from lib.paper_exchange.engine import PaperEngine
from lib.paper_exchange.instruments import derive_instrument
from lib.paper_exchange.klines import (
    KlineQuery,
    bucket_starts,
    bucket_width_ms,
    build_klines,
)
from lib.paper_exchange.market import MarketData
from lib.paper_exchange.numbers import dec, fmt
from lib.paper_exchange.tickers import DAY_MS, ticker
from lib.research.bundled_data import BUNDLED_USDT_DIR

PROPERTY = settings(max_examples=400, derandomize=True, database=None, deadline=None)
T0 = 1_515_542_400_000  # 2018-01-10 00:00 UTC
INTERVALS = [i for i in TIMEFRAMES if i not in ("1", "3")]


# ---------------------------------------------------------------------------------- the reference code


def reference_klines(market: MarketData, query: KlineQuery, now_ms: int) -> list[list[str]]:
    """``build_klines`` as it was: per-bucket Decimal aggregation."""
    times = market.series(query.symbol).open_time_ms
    width = bucket_width_ms(query.interval)
    end = now_ms if query.end_ms is None else min(query.end_ms, now_ms)
    forward = query.start_ms is not None and query.end_ms is None
    if query.start_ms is not None and forward:
        lower = query.start_ms
        upper = _align(query.start_ms + (query.limit + 1) * width, query.interval)
    else:
        lower = _align(end - (query.limit + 1) * width, query.interval)
        if query.start_ms is not None:
            lower = max(lower, query.start_ms)
        upper = end + width
    first = int(np.searchsorted(times, lower, side="left"))
    last = int(np.searchsorted(times, min(upper, now_ms + 1), side="left"))
    if first >= last:
        return []
    forming = market.forming_index(query.symbol, now_ms)
    keys = bucket_starts(times[first:last], query.interval)
    boundaries = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], boundaries)).tolist()
    stops = np.concatenate((boundaries, [last - first])).tolist()
    rows = []
    for lo, hi in zip(starts, stops, strict=True):
        key = int(keys[lo])
        if (query.start_ms is not None and key < query.start_ms) or key > end:
            continue
        rows.append(_aggregate(market, query.symbol, first + lo, first + hi, forming, key))
    rows = rows[: query.limit] if forward else rows[-query.limit :]
    rows.reverse()
    return rows


def _align(t_ms: int, interval: str) -> int:
    return int(bucket_starts(np.array([t_ms], dtype=np.int64), interval)[0])


def _aggregate(market: MarketData, symbol: str, lo: int, hi: int, forming: int | None, key: int) -> list[str]:
    series = market.series(symbol)
    complete_hi = hi if forming is None or not lo <= forming < hi else forming
    open_ = dec(series.open[lo])
    highs = [dec(v) for v in series.high[lo:complete_hi]]
    lows = [dec(v) for v in series.low[lo:complete_hi]]
    if complete_hi < hi:
        forming_open = dec(series.open[complete_hi])
        highs.append(forming_open)
        lows.append(forming_open)
        close = forming_open
    else:
        close = dec(series.close[hi - 1])
    volume = Decimal(0)
    turnover = Decimal(0)
    for index in range(lo, complete_hi):
        candle_volume = dec(series.volume[index])
        volume += candle_volume
        turnover += candle_volume * dec(series.close[index])
    return [str(key), fmt(open_), fmt(max(highs)), fmt(min(lows)), fmt(close), fmt(volume), fmt(turnover)]


def reference_ticker_stats(market: MarketData, symbol: str, now_ms: int) -> dict[str, str]:
    """The 24-hour fields of the ticker as they were computed: Decimal loops over the window."""
    last = market.price(symbol, now_ms)
    assert last is not None
    series = market.series(symbol)
    window = market.completed_between(symbol, now_ms - DAY_MS, now_ms)
    highs = [dec(series.high[i]) for i in window] + [last]
    lows = [dec(series.low[i]) for i in window] + [last]
    volume = sum((dec(series.volume[i]) for i in window), Decimal(0))
    turnover = sum((dec(series.volume[i]) * dec(series.close[i]) for i in window), Decimal(0))
    return {
        "lastPrice": fmt(last),
        "highPrice24h": fmt(max(highs)),
        "lowPrice24h": fmt(min(lows)),
        "turnover24h": fmt(turnover),
        "volume24h": fmt(volume),
    }


# ------------------------------------------------------------------------------------------- test data


def _digits(rng: np.random.Generator, values: np.ndarray, low: int = 1, high: int = 17) -> np.ndarray:
    """``values`` rounded to a random number of significant digits each (as CSV text would carry)."""
    return np.array([float(f"{v:.{int(rng.integers(low, high + 1))}g}") for v in values.tolist()])


def random_candles(seed: int, kind: str, n: int = 700) -> Candles:
    """Candles of one flavour: ``plain``, ``wide`` (tiny to huge values, integers, zero volumes),
    ``rounding`` (sums past 28 digits), ``negative`` (a negative volume), ``irregular`` (open times
    off the 5-minute grid, some closer than 5 minutes)."""
    rng = np.random.default_rng(seed)
    if kind == "irregular":
        steps = rng.integers(60_000, 12 * 60_000, n)
        times = T0 + 37_000 + np.cumsum(steps)
    else:
        times = T0 + FIVE_MINUTES_MS * np.sort(rng.choice(int(n * 1.2), n, replace=False))  # with gaps
    scale = {"wide": 10.0 ** rng.integers(-12, 16, n)}.get(kind, rng.uniform(0.001, 50.0) * np.ones(n))
    close = scale * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    volume = rng.lognormal(5, 2, n)
    if kind == "wide":
        integral = rng.random(n) < 0.2
        close[integral] = np.round(close[integral])  # "100.0"-style reprs
        volume[rng.random(n) < 0.1] = 0.0
        volume = volume * 10.0 ** rng.integers(-6, 12, n)
    if kind == "rounding":
        # Huge and tiny volumes with 17 digits: a 24 h (or daily) sum spans more than 28 digits.
        volume = np.where(rng.random(n) < 0.5, rng.uniform(1e14, 9e14, n), rng.uniform(1e-9, 9e-9, n))
    columns = [_digits(rng, c) for c in (open_, high, low, close)]
    volume = _digits(rng, volume, 1, 17 if kind == "rounding" else 10)
    if kind == "negative":
        volume[rng.integers(0, n, 3)] *= -1
    if kind == "nan":  # a broken file: the Decimal comparisons fail, and must keep failing the same way
        columns[1][rng.integers(0, n, 4)] = np.nan
    o, h, lo, c = columns
    return Candles(
        "XUSDT",
        times.astype(np.int64),
        o,
        np.maximum(h, np.maximum(o, c)),
        np.minimum(lo, np.minimum(o, c)),
        c,
        volume,
    )


KINDS = ["plain", "wide", "rounding", "negative", "irregular"]


def market_of(kind: str, seed: int = 1) -> MarketData:
    # Texts grow 97 candles at a time, so every comparison below also runs across grown texts.
    return MarketData({"XUSDT": random_candles(seed, kind)}, text_step=97)


# ---------------------------------------------------------------------------------- formatting helpers


@PROPERTY
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_candle_text_is_fmt_of_dec(value: float) -> None:
    assert candle_text(value) == fmt(dec(value))


@PROPERTY
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=50))
def test_candle_texts_is_candle_text_of_each(values: list[float]) -> None:
    assert candle_texts(np.array(values, dtype=np.float64)) == [candle_text(v) for v in values]


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, 100.0, 1e16, 1.5e16, 1e22, 5.33e-05, 1e-05, 0.0001, 1e-300, 5e-324, -2.5e-07, 123.456],
)
def test_candle_text_examples(value: float) -> None:
    assert candle_text(value) == fmt(dec(value))


@PROPERTY
@given(st.integers(min_value=0, max_value=10**28 - 1), st.integers(0, 12), st.integers(0, 40))
def test_scaled_text_is_fmt_of_the_decimal(coefficient: int, zeros: int, scale: int) -> None:
    # Up to 28 significant digits: the only texts scaled_text is asked for.
    units = coefficient * 10**zeros
    exact = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
    assert scaled_text(units, scale) == fmt(Decimal(units).scaleb(-scale, context=exact))


@pytest.mark.parametrize("kind", KINDS)
def test_window_sums_equal_the_decimal_loop(kind: str) -> None:
    candles = random_candles(3, kind)
    text = CandleText.build(candles)
    rng = np.random.default_rng(5)
    n = len(candles)
    fallbacks = 0
    for _ in range(400):
        cuts = np.sort(rng.choice(n + 1, 6, replace=False))
        los, his = cuts[0::2], cuts[1::2]  # disjoint windows, some far apart
        volumes, turnovers = text.sum_texts(los, his)
        for lo, hi, volume, turnover in zip(los, his, volumes, turnovers, strict=True):
            assert (volume, turnover) == decimal_sums(candles, int(lo), int(hi))
        sums = text.volume_sums
        if sums is not None:
            fallbacks += sum(t is None for t in sums.texts(los, his))
    if kind == "rounding":
        assert fallbacks > 0  # the context does round there, and the Decimal loop took over
    if kind == "negative":
        assert text.volume_sums is None
        assert text.turnover_sums is None


@pytest.mark.parametrize("kind", KINDS)
def test_each_candle_text_is_its_decimal_text(kind: str) -> None:
    candles = random_candles(4, kind)
    text = CandleText.build(candles)
    for i in range(len(candles)):
        assert text.open[i] == fmt(dec(candles.open[i]))
        assert text.high[i] == fmt(dec(candles.high[i]))
        assert text.low[i] == fmt(dec(candles.low[i]))
        assert text.close[i] == fmt(dec(candles.close[i]))
        assert (text.volume[i], text.turnover[i]) == decimal_sums(candles, i, i + 1)


@pytest.mark.parametrize("kind", [*KINDS, "nan"])
def test_a_text_grown_step_by_step_is_the_whole_file_text(kind: str) -> None:
    candles = random_candles(6, kind)
    whole = CandleText.build(candles)
    grown = CandleText.build(candles_between(candles, 0, 1))
    for upto in (2, 3, 50, 51, 333, 699, 700):
        grown = grown.extended(candles, upto)
        assert len(grown.candles) == upto
    for name in ("open", "high", "low", "close", "volume", "turnover"):
        assert getattr(grown, name).tolist() == getattr(whole, name).tolist(), name
    assert grown.ordered == whole.ordered
    for name in ("volume_sums", "turnover_sums"):
        a, b = getattr(grown, name), getattr(whole, name)
        assert (a is None) == (b is None)
        if a is not None:
            # The scale may differ (a step may reach further decimals); the values may not.
            assert a.last_digit.tolist() == b.last_digit.tolist()
            assert [Decimal(u).scaleb(-a.scale) for u in a.prefix] == [
                Decimal(u).scaleb(-b.scale) for u in b.prefix
            ]
    rng = np.random.default_rng(8)
    for _ in range(100):
        cuts = np.sort(rng.choice(701, 4, replace=False))
        assert grown.sum_texts(cuts[0::2], cuts[1::2]) == whole.sum_texts(cuts[0::2], cuts[1::2])


# ----------------------------------------------------------------------------------------------- klines


def _queries(rng: np.random.Generator, interval: str, now: int) -> list[KlineQuery]:
    first = T0 - 10 * FIVE_MINUTES_MS
    a = int(rng.integers(first, now + 1))
    b = int(rng.integers(a, now + 200 * FIVE_MINUTES_MS))
    return [
        KlineQuery("XUSDT", interval, None, None, 200),
        KlineQuery("XUSDT", interval, None, None, int(rng.integers(1, 1001))),
        KlineQuery("XUSDT", interval, a, None, int(rng.integers(1, 60))),
        KlineQuery("XUSDT", interval, None, b, int(rng.integers(1, 60))),
        KlineQuery("XUSDT", interval, a, b, 1000),
    ]


def outcome(function: Callable[[], object]) -> object:
    """What ``function`` returns, or the type of what it raises."""
    try:
        return function()
    except Exception as exc:  # compared with the reference's outcome
        return type(exc)


def test_a_nan_price_fails_or_answers_as_before() -> None:
    market = market_of("nan")
    times = market.series("XUSDT").open_time_ms
    inst = derive_instrument("XUSDT", Decimal("1"), int(times[0]))
    rng = np.random.default_rng(17)
    failures = 0
    for now in sorted({int(t) for t in rng.choice(times, 8)} | {int(times[-1]) + FIVE_MINUTES_MS}):
        for interval in ("5", "60", "D"):
            query = KlineQuery("XUSDT", interval, None, None, 1000)
            expected = outcome(lambda: reference_klines(market, query, now))  # noqa: B023
            assert outcome(lambda: build_klines(market, query, now)) == expected  # noqa: B023
            failures += expected is InvalidOperation
        stats = outcome(lambda: reference_ticker_stats(market, "XUSDT", now))  # noqa: B023
        item = outcome(lambda: ticker(market, inst, "linear", now))  # noqa: B023
        if isinstance(stats, dict):
            assert isinstance(item, dict)
            assert {key: item[key] for key in stats} == stats
        else:
            assert item == stats
    assert failures > 0


@pytest.mark.parametrize("kind", KINDS)
def test_klines_equal_the_decimal_aggregation(kind: str) -> None:
    market = market_of(kind)
    times = market.series("XUSDT").open_time_ms
    rng = np.random.default_rng(11)
    nows = {int(t) for t in rng.choice(times, 4)} | {int(t) + 1 for t in rng.choice(times, 4)}
    nows |= {int(times[0]) - 1, int(times[-1]) + FIVE_MINUTES_MS, int(times[-1]) + 10 * DAY_MS}
    nows |= {int(x) for x in rng.integers(int(times[0]), int(times[-1]), 4)}
    for now in sorted(nows):
        for interval in INTERVALS:
            for query in _queries(rng, interval, now):
                assert build_klines(market, query, now) == reference_klines(market, query, now), (query, now)


@pytest.mark.parametrize(("kind", "offset_ms"), [("plain", 0), ("plain", 123_000), ("irregular", 0)])
def test_advancing_the_clock_never_serves_a_later_candle(kind: str, offset_ms: int) -> None:
    market = market_of(kind, seed=2)
    series = market.series("XUSDT")
    times = series.open_time_ms
    now = int(times[0]) - FIVE_MINUTES_MS + offset_ms
    for _ in range(150):  # advances of one candle, some landing inside gaps
        now += FIVE_MINUTES_MS + (7_000 if kind == "irregular" else 0)
        forming = market.forming_index("XUSDT", now)
        for interval in ("5", "15", "60", "D"):
            query = KlineQuery("XUSDT", interval, None, None, 1000)
            rows = build_klines(market, query, now)
            assert rows == reference_klines(market, query, now)
            assert all(int(row[0]) <= now for row in rows)
            if interval != "5" or kind == "irregular":
                continue  # off-grid candles may share a 5-minute bucket: checked against the reference only
            if forming is not None:
                opening = fmt(dec(series.open[forming]))
                assert rows[0][1:] == [opening, opening, opening, opening, "0", "0"]
            complete = rows[1:] if forming is not None else rows
            for row in complete:  # every other row is a completed candle, in full
                i = int(np.searchsorted(times, int(row[0])))
                assert int(times[i]) + FIVE_MINUTES_MS <= now
                assert row[2] == fmt(dec(series.high[i]))


# ---------------------------------------------------------------------------------------------- tickers


@pytest.mark.parametrize("kind", KINDS)
def test_ticker_statistics_equal_the_decimal_loops(kind: str) -> None:
    market = market_of(kind)
    times = market.series("XUSDT").open_time_ms
    inst = derive_instrument("XUSDT", Decimal("1"), int(times[0]))
    rng = np.random.default_rng(13)
    nows = {int(t) for t in rng.choice(times, 25)} | {int(t) + 150_000 for t in rng.choice(times, 25)}
    nows |= {int(times[-1]) + FIVE_MINUTES_MS, int(times[-1]) + 2 * DAY_MS}
    for now in sorted(nows):
        item = ticker(market, inst, "linear", now)
        assert item is not None
        expected = reference_ticker_stats(market, "XUSDT", now)
        assert {key: item[key] for key in expected} == expected, now
    assert ticker(market, inst, "linear", int(times[0]) - 1) is None


def _usdt_folder_with_gaps(folder: Path) -> None:
    """BTCUSDT's first five-minute candles with gaps cut in, and ACAUSDT's first hourly ones."""
    rng = np.random.default_rng(21)
    lines = (
        gzip.decompress((BUNDLED_USDT_DIR / "5m" / "BTCUSDT-5m.csv.gz").read_bytes()).decode().splitlines()
    )
    rows = lines[1:1500]
    kept = [row for row in rows if rng.random() > 0.05]  # about one candle in twenty missing
    (folder / "BTCUSDT-5m.csv").write_text("\n".join([lines[0], *kept]) + "\n")
    hourly = gzip.decompress((BUNDLED_USDT_DIR / "1h" / "ACAUSDT-1h.csv.gz").read_bytes()).decode()
    (folder / "ACAUSDT-1h.csv").write_text("\n".join(hourly.splitlines()[:200]) + "\n")


def test_the_engine_serves_the_reference_answers_as_the_clock_advances(tmp_path: Path) -> None:
    _usdt_folder_with_gaps(tmp_path)
    engine = PaperEngine(PaperExchangeConfig(data_dir=tmp_path, state_path=None))
    assert engine.market.candle_ms("ACAUSDT") == 12 * FIVE_MINUTES_MS
    served = {"BTCUSDT": ("5", "30", "D"), "ACAUSDT": ("60", "240", "D")}
    for _ in range(40):
        now = engine.advance(23)
        for symbol, intervals in served.items():
            for interval in intervals:
                query = KlineQuery(symbol, interval, None, None, 300)
                params = {"symbol": symbol, "interval": interval, "limit": "300"}
                answer = paper_app.kline(engine, params, now)
                assert answer["list"] == reference_klines(engine.market, query, now)
            item = paper_app.tickers(engine, {"category": "spot", "symbol": symbol}, now)["list"][0]
            expected = reference_ticker_stats(engine.market, symbol, now)
            assert {key: item[key] for key in expected} == expected
        finer = paper_app.kline(engine, {"symbol": "ACAUSDT", "interval": "15"}, now)
        assert finer["list"] == []
