"""The candle files a download writes: the bundled CSV format, read back and appended atomically.

A file is ``<SYMBOL>-<tag>.csv.gz`` (``tag`` as freqtrade names intervals: ``5m``, ``1h``, ``1d``...)
with the header ``open_time_ms,open,high,low,close,volume`` and one closed candle a line, oldest first,
the format of ``data/market-data`` (:mod:`lib.research.bundled_data` reads it). A plain ``.csv`` that is
already there is resumed as plain text instead.

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed over the
target: a crash leaves the old file or the new one, never half of one. An append copies the old bytes
unchanged and adds the new rows after them; in a ``.gz`` file they are a second gzip member (gzip
readers, Python's and ``zcat`` included, read concatenated members as one stream), so nothing before
the new rows is rewritten, not even the compressed bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lib.core.candle_files import CANDLE_HEADER, FILE_TAGS
from lib.core.candles import Candles
from lib.errors import ConfigError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def candle_file(out_dir: Path, symbol: str, interval: str) -> Path:
    """Where ``symbol``'s ``interval`` candles go: an existing ``.csv``, else ``.csv.gz``.

    Both at once would leave a reader to pick one (the bundled reader prefers ``.csv``): refused.
    """
    stem = f"{symbol}-{FILE_TAGS[interval]}.csv"
    plain, packed = out_dir / stem, out_dir / f"{stem}.gz"
    if plain.exists() and packed.exists():
        raise ConfigError(f"both {plain.name} and {packed.name} are in {out_dir}: keep one of them")
    return plain if plain.exists() else packed


@dataclass(frozen=True, slots=True)
class ExistingFile:
    """What a resume needs from a file already there: its open times and whether it ends a line."""

    open_times: IntArray
    ends_with_newline: bool


def read_existing(path: Path) -> ExistingFile:
    """Read a candle file written earlier. ConfigError when it is not one (header, numbers, order)."""
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    header, _, body = text.partition("\n")
    if header.strip() != CANDLE_HEADER:
        raise ConfigError(f"{path} is not a candle file: its header is not {CANDLE_HEADER}")
    if not body.strip():
        opens = np.empty(0, dtype=np.int64)
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a malformed row is an error here, not a warning
                table = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
        except (ValueError, UserWarning) as exc:
            raise ConfigError(f"{path} has a row that is not 6 numbers: {exc}") from None
        if table.shape[1] != len(CANDLE_HEADER.split(",")):
            raise ConfigError(f"{path} has rows of {table.shape[1]} fields, not 6")
        opens = table[:, 0].astype(np.int64)  # epoch ms are far below 2**53: exact in a float
    if opens.size > 1 and not bool(np.all(np.diff(opens) > 0)):
        raise ConfigError(f"{path}: open times are not strictly increasing")
    return ExistingFile(open_times=opens, ends_with_newline=text.endswith("\n"))


def number_texts(values: FloatArray) -> list[str]:
    """Each value as the shortest decimal that reads back as the same float, never in exponent form.

    The exchange sends decimal strings; a float read from one prints back as that string (Python's
    ``repr`` is the shortest round-tripping text), so nothing is lost on the way through.
    """
    if values.size == 0:
        return []
    texts = repr(values.tolist())[1:-1].split(", ")
    return [t if "e" not in t else np.format_float_positional(float(t), trim="-") for t in texts]


def csv_rows(candles: Candles) -> str:
    """The candles as CSV lines (each ending in a newline), oldest first, in the header's columns."""
    columns = (
        map(str, candles.open_time_ms.tolist()),
        *(number_texts(c) for c in (candles.open, candles.high, candles.low, candles.close, candles.volume)),
    )
    return "".join(f"{line}\n" for line in map(",".join, zip(*columns, strict=True)))


def write_candles(path: Path, rows: str, *, existing: ExistingFile | None) -> None:
    """Write ``rows`` (from :func:`csv_rows`) to ``path`` atomically: a new file with the header when
    ``existing`` is ``None``, else the old file's bytes unchanged followed by ``rows``."""
    text = f"{CANDLE_HEADER}\n{rows}" if existing is None else rows
    if existing is not None and not existing.ends_with_newline:
        text = "\n" + text
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            if existing is not None:
                with path.open("rb") as old:
                    shutil.copyfileobj(old, out)
            if path.suffix == ".gz":
                # mtime 0 and no name: the same candles give the same bytes (as `gzip -n` does).
                with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as packed:
                    packed.write(text.encode("utf-8"))
            else:
                out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
