"""``aitradex data download``: every symbol's closed candles from its file's end (or ``--since``) on.

For each symbol, in order:

- the range runs from the first candle opening at or after ``--since`` (on a resume: the candle after
  the file's last one, so the file stays one candle after another) to the newest candle closed by
  ``--until`` and by the market's now: Bybit's clock (``/v5/market/time``), or the paper exchange's
  replay clock. The range ends at that candle's open, so the candle in progress is never fetched;
- the candles come from :func:`lib.ops.data.paging.fetch_range` (1,000 a page, paged back from the
  newest) through the :class:`~lib.exchange.access.MarketAccess`'s client, so through the process's one
  rate limiter and the client's retries;
- a hole (candles missing between two the exchange has, or between the file's last candle and the
  next one it has) stops that symbol with an error naming the first missing candle, and nothing is
  written for it: a file never gets a hole. A symbol whose first candle comes after ``--since``
  started trading later: that is said, not refused. Other symbols go on after a failure;
- the file is written once the whole range is in (:mod:`lib.ops.data.candle_files`: atomically; an
  append leaves every earlier byte as it was). A resume only appends: candles older than the file's
  first are never put before it.

Symbols are checked against ``instruments-info`` first, all of them before any candle is fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from lib.core.candle_files import FILE_TAGS
from lib.core.timeframes import TIMEFRAMES, previous_open_ms
from lib.core.vocabulary import ENVIRONMENTS, Symbol
from lib.errors import AitradexError, ConfigError, ExchangeError, ExchangeRejected, InvalidRequest
from lib.exchange import bybit
from lib.exchange.access import MarketAccess
from lib.exchange.market import MarketDataClient
from lib.exchange.market_clock import PaperClock
from lib.ops.data.candle_files import candle_file, csv_rows, read_existing, write_candles
from lib.ops.data.candle_range import (
    Break,
    candle_count,
    first_break,
    first_open_from,
    last_closed_open,
    next_open,
    utc_text,
)
from lib.ops.data.paging import CATEGORY, DownloadProgress, Fetched, KlineSource, fetch_range

# The contract's symbol (lib.core.vocabulary.Symbol): also what keeps a file name inside its folder.
_SYMBOL_RE = re.compile(get_args(Symbol)[1].pattern)

Status = Literal["written", "appended", "up_to_date", "failed"]


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """What to download: validated on creation (InvalidRequest), before anything is sent."""

    symbols: tuple[str, ...]
    interval: str
    since_ms: int
    until_ms: int | None
    environment: str
    out_dir: Path

    def __post_init__(self) -> None:
        if not self.symbols:
            raise InvalidRequest("no symbol to download")
        bad = [s for s in self.symbols if not _SYMBOL_RE.match(s)]
        if bad:
            raise InvalidRequest(
                f"not a symbol: {', '.join(map(repr, bad))} "
                "(2 to 30 uppercase letters and digits, as BTCUSDT)"
            )
        if len(set(self.symbols)) != len(self.symbols):
            raise InvalidRequest("a symbol is named twice")
        if self.interval not in TIMEFRAMES:
            raise InvalidRequest(f"unknown interval {self.interval!r}; one of {', '.join(TIMEFRAMES)}")
        if self.environment not in ENVIRONMENTS:
            raise InvalidRequest(
                f"unknown environment {self.environment!r}; one of {', '.join(ENVIRONMENTS)}"
            )
        if self.since_ms < 0:
            raise InvalidRequest("--since is before 1970")
        if self.until_ms is not None and self.until_ms <= self.since_ms:
            raise InvalidRequest(
                f"--since ({utc_text(self.since_ms)}) must be before --until ({utc_text(self.until_ms)})"
            )


@dataclass(frozen=True, slots=True)
class SymbolOutcome:
    """What happened to one symbol. ``first_ms``/``last_ms`` describe the file afterwards."""

    symbol: str
    path: Path
    status: Status
    added: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None


async def download(
    request: DownloadRequest,
    access: MarketAccess,
    progress: DownloadProgress | None = None,
) -> list[SymbolOutcome]:
    """Download every symbol of ``request`` into ``request.out_dir``; one outcome per symbol, in order.

    Raises (before any candle is fetched) when the folder cannot be written, the market's clock cannot
    be read, or a symbol is not a market of the environment. A failure of one symbol after that is
    its outcome (``status="failed"``, ``error``), and the others go on.
    """
    _prepare_folder(request.out_dir)
    async with access.client(request.environment) as market:
        now_ms = await _market_now(market, request.environment, access.paper_url)
        await _check_symbols(market, request)
        outcomes = []
        for symbol in request.symbols:
            try:
                outcomes.append(await _download_symbol(market, request, symbol, now_ms, progress))
            except AitradexError as exc:
                path = request.out_dir / f"{symbol}-{FILE_TAGS[request.interval]}.csv.gz"
                outcomes.append(SymbolOutcome(symbol, path, "failed", error=exc.message))
            finally:
                if progress is not None:
                    progress.end()
        return outcomes


def _prepare_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is not a folder")
    probe = out_dir / ".aitradex-write-check"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write in {out_dir}: {exc.strerror or exc}") from None


async def _market_now(market: MarketDataClient, environment: str, paper_url: str | None) -> int:
    """Where "closed" is judged: the paper exchange's replay clock, or Bybit's own clock (not this
    machine's, which may run ahead and take a candle still forming on Bybit for a closed one)."""
    if environment == bybit.PAPER:
        if not paper_url:
            raise ConfigError("the paper environment needs the paper exchange's URL")
        try:
            return await PaperClock(paper_url).now_ms()
        except ExchangeError:
            raise ConfigError(
                f"the paper exchange at {paper_url} does not answer: is the stack running? "
                "(`aitradex up`, `make demo`)"
            ) from None
    return (await market.server_time()).epoch_ms


async def _check_symbols(market: MarketDataClient, request: DownloadRequest) -> None:
    unknown = []
    for symbol in request.symbols:
        try:
            listed = await market.instruments(CATEGORY, symbol)
        except ExchangeRejected as exc:
            if exc.ret_code != bybit.PARAMS_ERROR:
                raise
            listed = []
        if not any(instrument.symbol == symbol for instrument in listed):
            unknown.append(symbol)
    if unknown:
        raise InvalidRequest(
            f"not a {CATEGORY} market on {request.environment}: {', '.join(unknown)}; nothing downloaded"
        )


async def _download_symbol(
    market: KlineSource,
    request: DownloadRequest,
    symbol: str,
    now_ms: int,
    progress: DownloadProgress | None,
) -> SymbolOutcome:
    interval = request.interval
    path = candle_file(request.out_dir, symbol, interval)
    existing = read_existing(path) if path.exists() else None
    have = existing.open_times if existing is not None and existing.open_times.size else None
    last = last_closed_open(interval, now_ms, request.until_ms)
    since_first = first_open_from(interval, request.since_ms)
    if have is not None:
        hole = first_break(interval, have)
        if hole is not None:
            raise ConfigError(f"{path} is not one candle after another ({hole.describe()}): not appending")
        await _refuse_older_candles(market, symbol, interval, since_first, int(have[0]), path)
        first = next_open(interval, int(have[-1]))
    else:
        first = since_first
    if progress is not None:
        progress.begin(symbol, candle_count(interval, first, last))
    fetched = (
        await fetch_range(market, symbol, interval, first, last, progress) if first <= last else Fetched(None)
    )
    new = fetched.candles
    if have is not None:
        if new is not None and int(new.open_time_ms[0]) != first:
            hole = Break(interval, int(have[-1]), int(new.open_time_ms[0]))
            raise ExchangeError(
                f"the exchange's candles leave a hole after the file's last one: {hole.describe()}"
                "; nothing written"
            )
        if new is None:
            notes = fetched.notes if first <= last else []
            return SymbolOutcome(
                symbol, path, "up_to_date", first_ms=int(have[0]), last_ms=int(have[-1]), notes=tuple(notes)
            )
        write_candles(path, csv_rows(new), existing=existing)
        return SymbolOutcome(
            symbol,
            path,
            "appended",
            added=len(new),
            first_ms=int(have[0]),
            last_ms=int(new.open_time_ms[-1]),
            notes=tuple(fetched.notes),
        )
    if new is None:
        end = utc_text(last) if first <= last else utc_text(first)
        raise ExchangeError(
            f"the exchange has no closed candle from {utc_text(first)} to {end}; nothing written"
        )
    if int(new.open_time_ms[0]) > first:
        fetched.notes.insert(
            0,
            f"its first candle is {utc_text(int(new.open_time_ms[0]))}, after --since: the exchange has "
            "none earlier (it started trading later)",
        )
    write_candles(path, csv_rows(new), existing=existing)
    return SymbolOutcome(
        symbol,
        path,
        "written",
        added=len(new),
        first_ms=int(new.open_time_ms[0]),
        last_ms=int(new.open_time_ms[-1]),
        notes=tuple(fetched.notes),
    )


async def _refuse_older_candles(
    market: KlineSource, symbol: str, interval: str, since_first: int, file_first: int, path: Path
) -> None:
    """A resume only appends: refuse when ``--since`` asks for candles before the file's first that the
    exchange has (one request of one candle; none means the symbol started trading at the file's first)."""
    if since_first >= file_first:
        return
    older = await market.klines(
        CATEGORY, symbol, interval, limit=1, start=since_first, end=previous_open_ms(interval, file_first)
    )
    if len(older):
        raise ConfigError(
            f"{path.name} starts at {utc_text(file_first)} but the exchange has candles from "
            f"{utc_text(since_first)} on; this command only appends: move the file away to download from "
            f"--since, or pass --since {utc_text(file_first)[:16].replace(' ', 'T')}"
        )
