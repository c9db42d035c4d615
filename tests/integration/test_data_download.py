"""``aitradex data download --environment paper`` against a real paper exchange over HTTP.

Each test starts a paper exchange of its own on a data folder made here from the bundled candles
(some copied as they are, one with a hole, one that starts trading later). The paper exchange's
replay clock decides which candles exist and which have closed; the command finds the exchange the
way it finds the local stack's, in the state folder's ``stack.json``.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from lib.core.candles import Candles
from lib.local_state import write_services
from lib.paper_exchange import PaperControls, PaperExchangeConfig, running_paper_exchange
from lib.research.bundled_data import BUNDLED_USDT_DIR, list_symbols, load_candles
from tests.integration.cli_helpers import assert_one_line_failure, clean_env, closed_port, run_cli

FIVE_MIN = 300_000
#: Candles every copied series has without a break (more than two pages of 1,000).
SPAN = 3000
HOLE_AT = (1700, 1701, 1702)  # rows dropped from the "hole" symbol
LATE_BY = 400  # leading rows dropped from the "late" symbol
#: The real 2024 USDT five-minute candles (the paper exchange replays USDT pairs only).
SOURCE = BUNDLED_USDT_DIR / "5m"


def _source_file(symbol: str) -> Path:
    for suffix in ("-5m.csv.gz", "-5m.csv"):
        if (path := SOURCE / f"{symbol}{suffix}").exists():
            return path
    raise AssertionError(f"no bundled file for {symbol}")


def _source_lines(symbol: str) -> list[str]:
    path = _source_file(symbol)
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode().splitlines()


@dataclass(frozen=True)
class Market:
    """The data folder the paper exchange replays, and what is in it."""

    data_dir: Path
    good: tuple[str, str]  # copied as they are
    hole: str  # rows HOLE_AT dropped
    late: str  # its first LATE_BY rows dropped
    first_ms: int  # the first candle of every good series

    def candles(self, symbol: str) -> Candles:
        return load_candles(symbol, self.data_dir)

    def open_at(self, index: int) -> int:
        return self.first_ms + index * FIVE_MIN


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    first = None
    continuous = []
    for symbol in list_symbols(SOURCE):
        opens = load_candles(symbol, SOURCE).open_time_ms[:SPAN]
        gap_free = opens.size == SPAN and bool(np.all(np.diff(opens) == FIVE_MIN))
        if gap_free and (first is None or int(opens[0]) == first):
            first = int(opens[0])
            continuous.append(symbol)
    assert first is not None
    assert len(continuous) >= 4, "the bundled data needs four gap-free series"
    good_a, good_b, hole, late = continuous[:4]
    data_dir = tmp_path_factory.mktemp("paper-data")
    for symbol in (good_a, good_b):
        source = _source_file(symbol)
        shutil.copy(source, data_dir / source.name)
    lines = _source_lines(hole)
    kept = [line for i, line in enumerate(lines) if i - 1 not in HOLE_AT]  # line 0 is the header
    (data_dir / f"{hole}-5m.csv.gz").write_bytes(gzip.compress("\n".join(kept).encode() + b"\n"))
    lines = _source_lines(late)
    (data_dir / f"{late}-5m.csv.gz").write_bytes(
        gzip.compress("\n".join([lines[0], *lines[1 + LATE_BY :]]).encode() + b"\n")
    )
    return Market(data_dir, (good_a, good_b), hole, late, first)


@dataclass
class Exchange:
    url: str
    controls: PaperControls
    env: dict[str, str]
    out: Path

    def download(self, *args: str) -> subprocess.CompletedProcess[str]:
        result, _ = run_cli(
            self.env,
            "data",
            "download",
            "--interval",
            "5",
            "--environment",
            "paper",
            "--out",
            str(self.out),
            *args,
        )
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        return result


def iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M")


def utc(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


@pytest.fixture
def exchange(market: Market, tmp_path: Path) -> Iterator[Exchange]:
    """A paper exchange of this test's own, its replay clock two minutes into candle 2,500."""
    config = PaperExchangeConfig(
        data_dir=market.data_dir, state_path=None, port=0, start_time_ms=market.open_at(2500) + 120_000
    )
    with running_paper_exchange(config) as url:
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        write_services(state_dir, "aitradex", {"paper_exchange_url": url})
        yield Exchange(url, PaperControls(url), clean_env(state_dir), tmp_path / "out")


def file_text(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode()


def assert_same_candles(path: Path, market: Market, symbol: str, first: int, count: int) -> None:
    """``path`` holds exactly ``count`` candles of ``symbol`` from open ``first`` on, one after another,
    oldest first, with the replayed values."""
    lines = file_text(path).splitlines()
    assert lines[0] == "open_time_ms,open,high,low,close,volume"
    table = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
    opens = table[:, 0].astype(np.int64)
    assert opens.size == count
    assert int(opens[0]) == first
    assert bool(np.all(np.diff(opens) == FIVE_MIN))
    source = market.candles(symbol)
    at = int(np.searchsorted(source.open_time_ms, first))
    expected = np.column_stack(
        [source.open_time_ms, source.open, source.high, source.low, source.close, source.volume]
    )[at : at + count]
    np.testing.assert_array_equal(table, expected)


def test_two_symbols_over_three_pages_hold_every_closed_candle_oldest_first(
    exchange: Exchange, market: Market
) -> None:
    a, b = market.good
    result = exchange.download("--symbols", f"{a},{b}", "--since", iso(market.first_ms))
    assert result.returncode == 0, result.stderr
    # 2,500 candles have closed; the 2,501st is two minutes old and stays out.
    for symbol in (a, b):
        path = exchange.out / f"{symbol}-5m.csv.gz"
        assert_same_candles(path, market, symbol, market.first_ms, 2500)
        assert f"{symbol}: wrote 2,500 candles to {path}" in result.stdout
    assert sorted(p.name for p in exchange.out.iterdir()) == [f"{a}-5m.csv.gz", f"{b}-5m.csv.gz"]


def test_a_rerun_appends_exactly_the_new_closed_candles_and_rewrites_nothing(
    exchange: Exchange, market: Market
) -> None:
    a, b = market.good
    since = iso(market.open_at(100))
    assert exchange.download("--symbols", f"{a},{b}", "--since", since).returncode == 0
    paths = [exchange.out / f"{s}-5m.csv.gz" for s in (a, b)]
    before = [p.read_bytes() for p in paths]
    texts = [file_text(p) for p in paths]

    exchange.controls.advance(37)
    result = exchange.download("--symbols", f"{a},{b}", "--since", since)
    assert result.returncode == 0, result.stderr
    for symbol, path, old_bytes, old_text in zip((a, b), paths, before, texts, strict=True):
        assert f"{symbol}: appended 37 candles" in result.stdout
        assert path.read_bytes()[: len(old_bytes)] == old_bytes  # not a byte before the new rows changed
        assert file_text(path).startswith(old_text)
        assert_same_candles(path, market, symbol, market.open_at(100), 2400 + 37)

    after = [p.read_bytes() for p in paths]
    again = exchange.download("--symbols", f"{a},{b}", "--since", since)
    assert again.returncode == 0, again.stderr
    assert f"{a}: up to date" in again.stdout
    assert f"{b}: up to date" in again.stdout
    assert [p.read_bytes() for p in paths] == after


def test_a_hole_in_the_exchanges_candles_is_refused_and_no_file_is_written(
    exchange: Exchange, market: Market
) -> None:
    good = market.good[0]
    result = exchange.download("--symbols", f"{market.hole},{good}", "--since", iso(market.first_ms))
    assert result.returncode == 1
    first_missing, last_missing = market.open_at(HOLE_AT[0]), market.open_at(HOLE_AT[-1])
    assert result.stderr.strip() == (
        f"error: {market.hole}: the exchange's candles have a hole: 3 candles missing: "
        f"{utc(first_missing)} to {utc(last_missing)}; nothing written"
    )
    assert not (exchange.out / f"{market.hole}-5m.csv.gz").exists()
    # The other symbol is downloaded all the same.
    assert_same_candles(exchange.out / f"{good}-5m.csv.gz", market, good, market.first_ms, 2500)


def test_a_resume_refuses_a_hole_right_after_the_files_last_candle(market: Market, tmp_path: Path) -> None:
    # The file ends at the candle just before the hole, then the clock moves past the hole.
    config = PaperExchangeConfig(
        data_dir=market.data_dir, state_path=None, port=0, start_time_ms=market.open_at(HOLE_AT[0]) + 60_000
    )
    with running_paper_exchange(config) as url:
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        write_services(state_dir, "aitradex", {"paper_exchange_url": url})
        exchange = Exchange(url, PaperControls(url), clean_env(state_dir), tmp_path / "out")
        assert exchange.download("--symbols", market.hole, "--since", iso(market.first_ms)).returncode == 0
        path = exchange.out / f"{market.hole}-5m.csv.gz"
        before = path.read_bytes()
        exchange.controls.advance(20)
        result = exchange.download("--symbols", market.hole, "--since", iso(market.first_ms))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {market.hole}: the exchange's candles leave a hole after the file's last one: 3 candles "
        f"missing: {utc(market.open_at(HOLE_AT[0]))} to {utc(market.open_at(HOLE_AT[-1]))}; nothing written"
    )
    assert path.read_bytes() == before


def test_a_symbol_that_starts_trading_after_since_starts_at_its_first_candle(
    exchange: Exchange, market: Market
) -> None:
    since = iso(market.first_ms)
    result = exchange.download("--symbols", market.late, "--since", since)
    assert result.returncode == 0, result.stderr
    listed = market.open_at(LATE_BY)
    assert (
        f"note: {market.late}: its first candle is {utc(listed)}, after --since: the exchange has none "
        "earlier (it started trading later)"
    ) in result.stdout
    path = exchange.out / f"{market.late}-5m.csv.gz"
    assert_same_candles(path, market, market.late, listed, 2500 - LATE_BY)
    # A rerun with the same --since appends; the exchange has nothing older, so nothing is refused.
    exchange.controls.advance(3)
    again = exchange.download("--symbols", market.late, "--since", since)
    assert again.returncode == 0, again.stderr
    assert f"{market.late}: appended 3 candles" in again.stdout


def test_a_since_before_the_files_first_candle_is_refused_when_the_exchange_has_older_ones(
    exchange: Exchange, market: Market
) -> None:
    good = market.good[0]
    assert exchange.download("--symbols", good, "--since", iso(market.open_at(1000))).returncode == 0
    path = exchange.out / f"{good}-5m.csv.gz"
    before = path.read_bytes()
    result = exchange.download("--symbols", good, "--since", iso(market.first_ms))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: {good}: {good}-5m.csv.gz starts at {utc(market.open_at(1000))} but the exchange has candles"
    )
    assert "this command only appends" in result.stderr
    assert path.read_bytes() == before


def test_a_symbol_the_exchange_does_not_list_is_a_clear_error_and_nothing_is_downloaded(
    exchange: Exchange, market: Market
) -> None:
    result, elapsed = run_cli(
        exchange.env,
        *("data", "download", "--interval", "5", "--environment", "paper", "--out", str(exchange.out)),
        *("--symbols", f"{market.good[0]},NOPEUSDT", "--since", iso(market.first_ms)),
    )
    line = assert_one_line_failure(result, elapsed)
    assert line == "error: not a linear market on paper: NOPEUSDT; nothing downloaded"
    assert list(exchange.out.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--symbols", "BTCUSDT", "--interval", "7", "--since", "2024-01-01"),
            "argument --interval: invalid choice",
        ),
        (("--symbols", "BTC/USDT", "--interval", "5", "--since", "2024-01-01"), "not a symbol: 'BTC/USDT'"),
        (("--symbols", ",", "--interval", "5", "--since", "2024-01-01"), "name at least one symbol"),
        (("--symbols", "BTCUSDT", "--interval", "5", "--since", "2024-13-01"), "not a date: '2024-13-01'"),
        (
            ("--symbols", "BTCUSDT", "--interval", "5", "--since", "2024-02-01", "--until", "2024-01-01"),
            "--since (2024-02-01 00:00 UTC) must be before --until (2024-01-01 00:00 UTC)",
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    # The recorded paper exchange does not answer: a command that sent anything would fail differently.
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    write_services(state_dir, "aitradex", {"paper_exchange_url": f"http://127.0.0.1:{closed_port()}"})
    out = tmp_path / "out"
    result, _ = run_cli(
        clean_env(state_dir), "data", "download", "--environment", "paper", "--out", str(out), *args
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_paper_exchange_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    url = f"http://127.0.0.1:{closed_port()}"
    write_services(state_dir, "aitradex", {"paper_exchange_url": url})
    args = ("--symbols", "BTCUSDT", "--interval", "5", "--since", "2024-01-01", "--environment", "paper")
    result, elapsed = run_cli(clean_env(state_dir), "data", "download", *args, "--out", str(tmp_path / "out"))
    line = assert_one_line_failure(result, elapsed)
    assert line.startswith(f"error: the paper exchange at {url} does not answer: is the stack running?")

    empty = tmp_path / "empty"
    empty.mkdir()
    result, elapsed = run_cli(clean_env(empty), "data", "download", *args, "--out", str(tmp_path / "out"))
    assert assert_one_line_failure(result, elapsed).startswith("error: no paper exchange is recorded")
