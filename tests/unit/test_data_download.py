"""``aitradex data download`` without a network: the candle grid, the paging back through a fake kline
source that answers as Bybit does, and the CSV files (new, appended, read back)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from lib.core.candle_files import CANDLE_HEADER as HEADER
from lib.core.candles import Candles
from lib.errors import ConfigError, ExchangeError, InvalidRequest
from lib.ops.data.candle_files import (
    candle_file,
    csv_rows,
    number_texts,
    read_existing,
    write_candles,
)
from lib.ops.data.candle_range import (
    candle_count,
    first_break,
    first_open_from,
    last_closed_open,
)
from lib.ops.data.download import DownloadRequest
from lib.ops.data.paging import PAGE_LIMIT, fetch_range
from lib.research.bundled_data import load_candles

FIVE_MIN = 300_000
HOUR = 3_600_000
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def series(opens: np.ndarray, symbol: str = "BTCUSDT") -> Candles:
    """Candles at ``opens`` whose prices encode their open time (so a row can be traced back)."""
    price = 100.0 + (opens - T0) / FIVE_MIN * 0.01
    return Candles(
        symbol=symbol,
        open_time_ms=opens.astype(np.int64),
        open=price,
        high=price + 0.5,
        low=price - 0.5,
        close=price + 0.25,
        volume=np.full(opens.shape, 12.5),
    )


@dataclass
class FakeKlines:
    """A kline source with Bybit's answer: the newest ``limit`` candles opening in ``[start, end]``."""

    candles: Candles
    calls: list[tuple[int | None, int | None, int]] = field(default_factory=list)

    async def klines(
        self,
        category: str,
        symbol: str,
        interval: str | int,
        limit: int = 200,
        start: int | None = None,
        end: int | None = None,
    ) -> Candles:
        self.calls.append((start, end, limit))
        t = self.candles.open_time_ms
        keep = np.ones(t.shape, dtype=bool)
        if start is not None:
            keep &= t >= start
        if end is not None:
            keep &= t <= end
        index = np.flatnonzero(keep)[-limit:]
        c = self.candles
        return Candles(
            symbol, t[index], c.open[index], c.high[index], c.low[index], c.close[index], c.volume[index]
        )


def grid(first: int, count: int, width: int = FIVE_MIN) -> np.ndarray:
    return first + width * np.arange(count, dtype=np.int64)


# -- the candle grid -------------------------------------------------------------------------------


def test_the_range_starts_at_the_first_candle_opening_at_or_after_since() -> None:
    assert first_open_from("5", T0) == T0
    assert first_open_from("5", T0 + 1) == T0 + FIVE_MIN
    assert first_open_from("60", ms("2024-01-01T00:30")) == ms("2024-01-01T01:00")
    assert first_open_from("M", ms("2024-01-15T00:00")) == ms("2024-02-01T00:00")


def test_the_candle_in_progress_is_never_in_the_range() -> None:
    # Two minutes into the 10:05 candle: 10:00 is the newest closed one.
    assert last_closed_open("5", ms("2024-01-01T10:07")) == ms("2024-01-01T10:00")
    # At exactly 10:05 the 10:00 candle has just closed and 10:05 has just opened.
    assert last_closed_open("5", ms("2024-01-01T10:05")) == ms("2024-01-01T10:00")
    # --until closes the range the same way, and the earlier of the two wins.
    assert last_closed_open("60", ms("2024-01-03T00:00"), ms("2024-01-02T00:00")) == ms("2024-01-01T23:00")
    assert last_closed_open("60", ms("2024-01-02T00:00"), ms("2024-01-03T00:00")) == ms("2024-01-01T23:00")
    assert last_closed_open("M", ms("2024-03-10T00:00")) == ms("2024-02-01T00:00")


def test_candle_counts() -> None:
    assert candle_count("5", T0, T0) == 1
    assert candle_count("5", T0, T0 + 2499 * FIVE_MIN) == 2500
    assert candle_count("5", T0 + FIVE_MIN, T0) == 0
    assert candle_count("M", ms("2024-01-01T00:00"), ms("2024-12-01T00:00")) == 12


def test_the_first_break_names_the_first_missing_candle() -> None:
    opens = np.delete(grid(T0, 20), [5, 6, 7, 12])
    hole = first_break("5", opens)
    assert hole is not None
    assert hole.is_hole
    assert hole.missing == 3
    assert hole.describe() == "3 candles missing: 2024-01-01 00:25 UTC to 2024-01-01 00:35 UTC"
    assert first_break("5", grid(T0, 20)) is None
    repeated = first_break("5", np.array([T0, T0 + FIVE_MIN, T0 + FIVE_MIN]))
    assert repeated is not None
    assert not repeated.is_hole
    off_grid = first_break("5", np.array([T0 + 1, T0 + 1 + FIVE_MIN]))
    assert off_grid is not None
    assert off_grid.after_ms is None
    months = np.array([ms("2024-01-01T00:00"), ms("2024-02-01T00:00"), ms("2024-04-01T00:00")])
    month_hole = first_break("M", months)
    assert month_hole is not None
    assert month_hole.describe() == "1 candle missing: 2024-03-01 00:00 UTC"


def test_bad_requests_are_refused_on_creation(tmp_path: Path) -> None:
    def request(**changes: object) -> DownloadRequest:
        fields: dict[str, object] = {
            "symbols": ("BTCUSDT",),
            "interval": "5",
            "since_ms": T0,
            "until_ms": None,
            "environment": "paper",
            "out_dir": tmp_path,
        }
        return DownloadRequest(**{**fields, **changes})  # type: ignore[arg-type]

    request()
    for changes, message in (
        ({"symbols": ("BTC/USDT",)}, "not a symbol"),
        ({"symbols": ("../ETC",)}, "not a symbol"),
        ({"symbols": ()}, "no symbol"),
        ({"interval": "7"}, "unknown interval"),
        ({"until_ms": T0}, "must be before --until"),
        ({"until_ms": T0 - HOUR}, "must be before --until"),
        ({"environment": "moon"}, "unknown environment"),
    ):
        with pytest.raises(InvalidRequest, match=message):
            request(**changes)


# -- paging back -----------------------------------------------------------------------------------


async def test_pages_of_1000_move_end_back_to_since() -> None:
    source = FakeKlines(series(grid(T0 - 50 * FIVE_MIN, 2600)))
    first, last = T0, T0 + 2499 * FIVE_MIN
    fetched = await fetch_range(source, "BTCUSDT", "5", first, last)
    assert fetched.candles is not None
    assert fetched.candles.open_time_ms.tolist() == grid(T0, 2500).tolist()
    # The newest 1,000 first; then each page ends at the candle before the oldest one received.
    assert source.calls == [
        (first, last, PAGE_LIMIT),
        (first, last - 1000 * FIVE_MIN, PAGE_LIMIT),
        (first, last - 2000 * FIVE_MIN, PAGE_LIMIT),
    ]
    assert fetched.notes == []
    # The values come through row for row.
    np.testing.assert_array_equal(fetched.candles.close, series(grid(T0, 2500)).close)


async def test_a_range_of_whole_pages_takes_no_extra_request() -> None:
    source = FakeKlines(series(grid(T0, 3000)))
    fetched = await fetch_range(source, "BTCUSDT", "5", T0, T0 + 1999 * FIVE_MIN)
    assert fetched.candles is not None
    assert len(fetched.candles) == 2000
    assert len(source.calls) == 2


async def test_a_short_page_means_the_exchange_has_nothing_older() -> None:
    # The symbol starts trading 1,200 candles after `first`: the second page is short, and that ends it.
    listed = T0 + 1200 * FIVE_MIN
    source = FakeKlines(series(grid(listed, 1500)))
    fetched = await fetch_range(source, "BTCUSDT", "5", T0, listed + 1499 * FIVE_MIN)
    assert fetched.candles is not None
    assert int(fetched.candles.open_time_ms[0]) == listed
    assert len(fetched.candles) == 1500
    assert len(source.calls) == 2


async def test_a_hole_inside_a_page_is_refused_naming_the_first_missing_candle() -> None:
    opens = np.delete(grid(T0, 2500), [2100, 2101])  # inside the newest page
    source = FakeKlines(series(opens))
    with pytest.raises(
        ExchangeError, match=r"hole: 2 candles missing: 2024-01-08 07:00 UTC to 2024-01-08 07:05"
    ):
        await fetch_range(source, "BTCUSDT", "5", T0, T0 + 2499 * FIVE_MIN)


async def test_a_hole_where_two_pages_meet_is_refused() -> None:
    # The newest page is 1,000 candles ending at the last; the candle just before it is missing.
    opens = np.delete(grid(T0, 2500), [1499])
    source = FakeKlines(series(opens))
    with pytest.raises(ExchangeError, match=r"hole: 1 candle missing: 2024-01-06 04:55 UTC"):
        await fetch_range(source, "BTCUSDT", "5", T0, T0 + 2499 * FIVE_MIN)


async def test_candles_outside_the_range_are_dropped_and_a_short_end_is_said() -> None:
    # Data stops 10 candles before the range's end (a symbol that stopped trading).
    source = FakeKlines(series(grid(T0, 490)))
    fetched = await fetch_range(source, "BTCUSDT", "5", T0 + 100 * FIVE_MIN, T0 + 499 * FIVE_MIN)
    assert fetched.candles is not None
    assert fetched.candles.open_time_ms.tolist() == grid(T0 + 100 * FIVE_MIN, 390).tolist()
    assert fetched.notes == [
        "its last candle is 2024-01-02 16:45 UTC: the exchange has none after it up to 2024-01-02 17:35 UTC"
    ]


# -- the CSV files ---------------------------------------------------------------------------------


def test_numbers_print_as_the_decimals_they_came_from() -> None:
    values = np.array([float(t) for t in ("0.0007793", "0.00001234", "42000.5", "179134261.0", "1e-08", "3")])
    assert number_texts(values) == ["0.0007793", "0.00001234", "42000.5", "179134261.0", "0.00000001", "3.0"]
    assert [float(t) for t in number_texts(values)] == values.tolist()


def test_a_new_file_is_the_bundled_format_and_the_bundled_reader_reads_it(tmp_path: Path) -> None:
    path = candle_file(tmp_path, "BTCUSDT", "5")
    assert path.name == "BTCUSDT-5m.csv.gz"
    assert candle_file(tmp_path, "BTCUSDT", "60").name == "BTCUSDT-1h.csv.gz"
    candles = series(grid(T0, 300))
    write_candles(path, csv_rows(candles), existing=None)
    text = gzip.decompress(path.read_bytes()).decode()
    assert text.splitlines()[0] == HEADER == "open_time_ms,open,high,low,close,volume"
    assert len(text.splitlines()) == 301
    loaded = load_candles("BTCUSDT", tmp_path)
    np.testing.assert_array_equal(loaded.open_time_ms, candles.open_time_ms)
    np.testing.assert_array_equal(loaded.high, candles.high)
    assert [p.name for p in tmp_path.iterdir()] == ["BTCUSDT-5m.csv.gz"]  # no temporary file left


@pytest.mark.parametrize("name", ["BTCUSDT-5m.csv.gz", "BTCUSDT-5m.csv"])
def test_an_append_keeps_every_earlier_byte_and_reads_as_one_series(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    old, new = series(grid(T0, 200)), series(grid(T0 + 200 * FIVE_MIN, 50))
    write_candles(path, csv_rows(old), existing=None)
    before = path.read_bytes()
    existing = read_existing(path)
    assert existing.open_times.tolist() == old.open_time_ms.tolist()
    assert existing.ends_with_newline
    write_candles(path, csv_rows(new), existing=existing)
    after = path.read_bytes()
    assert after[: len(before)] == before
    loaded = load_candles("BTCUSDT", tmp_path)
    assert loaded.open_time_ms.tolist() == grid(T0, 250).tolist()
    assert read_existing(path).open_times.tolist() == grid(T0, 250).tolist()


def test_an_append_after_a_last_line_without_newline_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m.csv"
    path.write_text(f"{HEADER}\n{T0},1,2,0.5,1.5,10")
    existing = read_existing(path)
    assert not existing.ends_with_newline
    write_candles(path, csv_rows(series(grid(T0 + FIVE_MIN, 2))), existing=existing)
    assert read_existing(path).open_times.tolist() == grid(T0, 3).tolist()


def test_files_that_are_not_candle_files_are_refused(tmp_path: Path) -> None:
    bad_header = tmp_path / "A-5m.csv"
    bad_header.write_text("time,open\n1,2\n")
    unordered = tmp_path / "B-5m.csv"
    unordered.write_text(f"{HEADER}\n{T0 + FIVE_MIN},1,1,1,1,1\n{T0},1,1,1,1,1\n")
    short_row = tmp_path / "C-5m.csv"
    short_row.write_text(f"{HEADER}\n{T0},1,1,1,1\n")
    not_gzip = tmp_path / "D-5m.csv.gz"
    not_gzip.write_text(f"{HEADER}\n")
    for path, message in (
        (bad_header, "not a candle file"),
        (unordered, "not strictly increasing"),
        (short_row, "not 6"),
        (not_gzip, "cannot read"),
    ):
        with pytest.raises(ConfigError, match=message):
            read_existing(path)
    (tmp_path / "E-5m.csv").write_text(f"{HEADER}\n")
    (tmp_path / "E-5m.csv.gz").write_bytes(gzip.compress(f"{HEADER}\n".encode()))
    with pytest.raises(ConfigError, match="keep one of them"):
        candle_file(tmp_path, "E", "5")
