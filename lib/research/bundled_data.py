"""The bundled 5-minute candles: where they are and how to read them.

A data folder holds ``<SYMBOL>-5m.csv`` or ``<SYMBOL>-5m.csv.gz`` files with the columns
``open_time_ms,open,high,low,close,volume``, oldest first. Gaps stay gaps: nothing is invented.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from lib.config import REPO_ROOT
from lib.core.candles import Candles
from lib.errors import ConfigError

BUNDLED_DATA_DIR = REPO_ROOT / "data" / "market-data"
_SUFFIXES = ("-5m.csv", "-5m.csv.gz")


def list_symbols(data_dir: Path = BUNDLED_DATA_DIR) -> list[str]:
    """Symbols with a candle file in ``data_dir``, sorted."""
    if not data_dir.is_dir():
        raise ConfigError(f"market data folder not found: {data_dir}")
    names: set[str] = set()
    for path in data_dir.iterdir():
        for suffix in _SUFFIXES:
            if path.name.endswith(suffix):
                names.add(path.name[: -len(suffix)])
    return sorted(names)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8")


def load_candles(symbol: str, data_dir: Path = BUNDLED_DATA_DIR) -> Candles:
    """Read one symbol's candles. Raises ConfigError if the file is missing or malformed."""
    for suffix in _SUFFIXES:
        path = data_dir / f"{symbol}{suffix}"
        if path.exists():
            break
    else:
        raise ConfigError(f"no candle file for {symbol} in {data_dir}")
    with _open_text(path) as fh:
        header = fh.readline().strip().split(",")
        if header != ["open_time_ms", "open", "high", "low", "close", "volume"]:
            raise ConfigError(f"{path}: unexpected header {header}")
        table = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
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


def load_all(data_dir: Path = BUNDLED_DATA_DIR) -> dict[str, Candles]:
    """Every symbol's candles in ``data_dir``, keyed by symbol."""
    return {symbol: load_candles(symbol, data_dir) for symbol in list_symbols(data_dir)}
