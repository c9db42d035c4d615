"""The evidence and the simulation as files: ``buckets.csv``, ``trades.csv`` and ``equity.csv``.

- ``buckets.csv``: one row per bucket with :data:`lib.research.evidence.BUCKET_COLUMNS` (issue 10's
  columns plus ``mean_cost_r``); an empty bucket's figures are empty cells.
- ``trades.csv``: one row per simulated trade, in the order they were opened: ``symbol, side,
  signal_time, entry_time, entry_price, stop_loss, take_profit, exit_time, exit_price, reason, qty,
  fees, pnl, r_net, score``. Times are UTC ISO 8601 (``signal_time`` is the signal bar's open,
  ``exit_time`` the exit bar's close); ``reason`` is ``TP``, ``SL``, ``horizon`` or ``end_of_data``.
- ``equity.csv``: ``time, equity``, the wallet balance after each event of the simulation.

Numbers are written with Python's shortest round-tripping ``repr``, so :func:`read_buckets_csv` reads
back exactly what was written.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

from lib.research.evidence import BUCKET_COLUMNS, Evidence
from lib.research.exits import REASON_NAMES
from lib.research.simulation import Simulation

TRADE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "side",
    "signal_time",
    "entry_time",
    "entry_price",
    "stop_loss",
    "take_profit",
    "exit_time",
    "exit_price",
    "reason",
    "qty",
    "fees",
    "pnl",
    "r_net",
    "score",
)


def utc_iso(ms: int) -> str:
    """``ms`` (Unix milliseconds) as ``2024-01-01T00:05:00Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: float | int | str) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_buckets_csv(evidence: Evidence, path: Path | str) -> Path:
    """Write ``evidence``'s rows to ``path`` (module docstring) and return the path."""
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(BUCKET_COLUMNS)
        for row in evidence.rows:
            writer.writerow([_cell(getattr(row, column)) for column in BUCKET_COLUMNS])
    return out


def read_buckets_csv(path: Path | str) -> list[dict[str, float | int | str]]:
    """The rows of a ``buckets.csv``: ``bucket`` a string, ``signals`` an int, the rest floats (NaN for
    empty cells)."""
    rows: list[dict[str, float | int | str]] = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, float | int | str] = {}
            for column, text in raw.items():
                if column == "bucket":
                    row[column] = text
                elif column == "signals":
                    row[column] = int(text)
                else:
                    row[column] = float(text) if text != "" else math.nan
            rows.append(row)
    return rows


def write_trades_csv(simulation: Simulation, path: Path | str) -> Path:
    """Write ``simulation``'s trades to ``path`` (module docstring) and return the path."""
    t = simulation.trades
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(TRADE_COLUMNS)
        for i in range(len(t)):
            writer.writerow(
                [
                    t.symbol[i],
                    "LONG" if t.sign[i] > 0 else "SHORT",
                    utc_iso(int(t.signal_time_ms[i])),
                    utc_iso(int(t.entry_time_ms[i])),
                    _cell(float(t.entry_price[i])),
                    _cell(float(t.stop_loss[i])),
                    _cell(float(t.take_profit[i])),
                    utc_iso(int(t.exit_time_ms[i])),
                    _cell(float(t.exit_price[i])),
                    REASON_NAMES[int(t.reason[i])],
                    _cell(float(t.qty[i])),
                    _cell(float(t.fees[i])),
                    _cell(float(t.pnl[i])),
                    _cell(float(t.r_net[i])),
                    _cell(float(t.score[i])),
                ]
            )
    return out


def write_equity_csv(simulation: Simulation, path: Path | str) -> Path:
    """Write ``simulation``'s equity curve (``time, equity``) to ``path`` and return the path."""
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("time", "equity"))
        for ms, equity in zip(simulation.equity_time_ms.tolist(), simulation.equity.tolist(), strict=True):
            writer.writerow((utc_iso(int(ms)), _cell(float(equity))))
    return out


def write_report_files(directory: Path | str, evidence: Evidence, simulation: Simulation) -> dict[str, Path]:
    """Write ``buckets.csv``, ``trades.csv`` and ``equity.csv`` into ``directory`` (created if needed)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "buckets": write_buckets_csv(evidence, folder / "buckets.csv"),
        "trades": write_trades_csv(simulation, folder / "trades.csv"),
        "equity": write_equity_csv(simulation, folder / "equity.csv"),
    }
