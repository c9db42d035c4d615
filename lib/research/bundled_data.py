"""The bundled candles: where they are and how to read them.

Two bundled sets (provenance in each folder's README):

- ``BUNDLED_USDT_DIR`` (``data/market-data-usdt/``): real 2024 candles of 102 USDT pairs, hourly for all
  of them (``1h/``) and five-minute for the 24 most traded (``5m/``). The demo, the stack's replay and
  the paper exchange run on these;
- ``BUNDLED_DATA_DIR`` (``data/market-data/``): 20 days of January 2018 on eight BTC-quoted pairs,
  five-minute only. Prices are in BTC; only tests whose expectations were computed on them read it.

A data folder holds ``<SYMBOL>-<5m|1h>.csv`` or ``.csv.gz`` files, either directly or in ``5m/`` and
``1h/`` subfolders, with the columns ``open_time_ms,open,high,low,close,volume``, oldest first. Gaps
stay gaps: nothing is invented. Every loader takes the interval, in Bybit's spelling (``"5"``,
``"60"``) or the files' (``"5m"``, ``"1h"``).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from lib.config import REPO_ROOT
from lib.core.candle_files import CANDLE_HEADER, FILE_TAGS
from lib.core.candles import Candles
from lib.errors import ConfigError

BUNDLED_DATA_DIR = REPO_ROOT / "data" / "market-data"
BUNDLED_USDT_DIR = REPO_ROOT / "data" / "market-data-usdt"
#: The intervals the bundled data comes in (file tags from :mod:`lib.core.candle_files`).
BUNDLED_INTERVALS: tuple[str, ...] = ("5", "60")


def interval_of(interval: str) -> str:
    """``interval`` in Bybit's spelling (``"5"``, ``"60"``); ConfigError for one with no bundled format."""
    for bybit in BUNDLED_INTERVALS:
        if interval in (bybit, FILE_TAGS[bybit]):
            return bybit
    raise ConfigError(f"no candle file format for interval {interval!r} (known: 5/5m, 60/1h)")


def _folders(data_dir: Path, interval: str) -> list[Path]:
    """Where ``interval``'s files may be: the folder itself, then its ``5m/`` or ``1h/`` subfolder."""
    return [data_dir, data_dir / FILE_TAGS[interval]]


def candle_path(symbol: str, data_dir: Path, interval: str = "5") -> Path | None:
    """The file of ``symbol``'s ``interval`` candles in ``data_dir``, if there is one."""
    interval = interval_of(interval)
    for folder in _folders(data_dir, interval):
        for suffix in (".csv", ".csv.gz"):
            path = folder / f"{symbol}-{FILE_TAGS[interval]}{suffix}"
            if path.is_file():
                return path
    return None


def list_symbols(data_dir: Path = BUNDLED_DATA_DIR, interval: str = "5") -> list[str]:
    """Symbols with an ``interval`` candle file in ``data_dir``, sorted."""
    interval = interval_of(interval)
    if not data_dir.is_dir():
        raise ConfigError(f"market data folder not found: {data_dir}")
    names: set[str] = set()
    for folder in _folders(data_dir, interval):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            for suffix in (".csv", ".csv.gz"):
                ending = f"-{FILE_TAGS[interval]}{suffix}"
                if path.name.endswith(ending) and len(path.name) > len(ending):
                    names.add(path.name[: -len(ending)])
    return sorted(names)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def read_candles(path: Path, symbol: str) -> Candles:
    """The candles of one file. Raises ConfigError if it is malformed."""
    try:
        text = _read_text(path)
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    header, _, body = text.partition("\n")
    if header.strip() != CANDLE_HEADER:
        raise ConfigError(f"{path}: unexpected header {header.strip().split(',')}")
    try:
        table = (
            np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
            if body.strip()
            else np.empty((0, 6), dtype=np.float64)
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: malformed row: {exc}") from None
    if table.shape[1] != 6:
        raise ConfigError(f"{path}: expected 6 columns, got {table.shape[1]}")
    times = table[:, 0].astype(np.int64)
    if times.size > 1 and not np.all(np.diff(times) > 0):
        raise ConfigError(f"{path}: open times are not strictly increasing")
    return Candles(
        symbol=symbol,
        open_time_ms=times,
        open=np.ascontiguousarray(table[:, 1]),
        high=np.ascontiguousarray(table[:, 2]),
        low=np.ascontiguousarray(table[:, 3]),
        close=np.ascontiguousarray(table[:, 4]),
        volume=np.ascontiguousarray(table[:, 5]),
    )


def load_candles(symbol: str, data_dir: Path = BUNDLED_DATA_DIR, interval: str = "5") -> Candles:
    """Read one symbol's ``interval`` candles. Raises ConfigError if the file is missing or malformed."""
    path = candle_path(symbol, data_dir, interval)
    if path is None:
        raise ConfigError(f"no {FILE_TAGS[interval_of(interval)]} candle file for {symbol} in {data_dir}")
    return read_candles(path, symbol)


def load_all(data_dir: Path = BUNDLED_DATA_DIR, interval: str = "5") -> dict[str, Candles]:
    """Every symbol's ``interval`` candles in ``data_dir``, keyed by symbol."""
    return {symbol: load_candles(symbol, data_dir, interval) for symbol in list_symbols(data_dir, interval)}
