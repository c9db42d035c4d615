"""What a backtest reports, and its two outputs: a fixed-width table and a CSV (that reads back)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BUCKET_EDGES: tuple[float, ...] = tuple(float(v) for v in range(0, 101, 10))
CSV_COLUMNS: tuple[str, ...] = (
    "bucket",
    "low",
    "high",
    "signals",
    "tp_first",
    "sl_first",
    "neither",
    "tp_share",
    "sl_share",
    "neither_share",
    "mean_r",
)


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One line of the report: signals with ``low <= score < high`` (``<= 100`` for the top bucket).

    Shares and ``mean_r`` are NaN for an empty bucket.
    """

    bucket: str
    low: float
    high: float
    signals: int
    tp_first: int
    sl_first: int
    neither: int
    tp_share: float
    sl_share: float
    neither_share: float
    mean_r: float


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """The result of :func:`run_backtest`: the buckets (10 of them, then ``>=80`` and ``all``) and the
    facts needed to read them."""

    algorithm: str
    timeframe: str
    horizon_bars: int
    step: int
    sl_atr: float
    tp_atr: float
    symbols: tuple[str, ...]
    first_bar_ms: int | None
    last_bar_ms: int | None
    signals: int
    incomplete: int
    sample: str
    rows: tuple[BucketRow, ...]

    @property
    def buckets(self) -> tuple[BucketRow, ...]:
        """The ten score buckets, without the summary rows."""
        return self.rows[: len(BUCKET_EDGES) - 1]

    def row(self, bucket: str) -> BucketRow:
        """The row named ``bucket`` (``"80-90"``, ``">=80"``, ``"all"``...)."""
        for r in self.rows:
            if r.bucket == bucket:
                return r
        raise KeyError(bucket)


def _utc(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100.0 * x:.1f}%"


def format_table(report: BacktestReport) -> str:
    """The report as a fixed-width text table with a header describing the run."""
    lines = [
        f"backtest {report.algorithm}: timeframe {report.timeframe}, horizon {report.horizon_bars} bars, "
        f"step {report.step}, SL {report.sl_atr:g} ATR / TP {report.tp_atr:g} ATR "
        f"(TP first = +{report.tp_atr / report.sl_atr:g} R, SL first = -1 R)",
        f"{len(report.symbols)} symbols, bars {_utc(report.first_bar_ms)} .. {_utc(report.last_bar_ms)} UTC, "
        f"{report.signals} signals ({report.incomplete} left out: horizon past the data's end)",
        f"sample: {report.sample}",
        "",
        f"{'score':>7} {'signals':>8} {'TP first':>9} {'SL first':>9} {'neither':>8} {'mean R':>8}",
    ]
    rule = "-" * len(lines[-1])
    lines.append(rule)
    for r in report.rows:
        if r.bucket == ">=80":
            lines.append(rule)
        mean_r = "-" if math.isnan(r.mean_r) else f"{r.mean_r:+.3f}"
        lines.append(
            f"{r.bucket:>7} {r.signals:>8} {_pct(r.tp_share):>9} {_pct(r.sl_share):>9} "
            f"{_pct(r.neither_share):>8} {mean_r:>8}"
        )
    return "\n".join(lines) + "\n"


def write_csv(report: BacktestReport, path: Path | str) -> None:
    """One row per bucket (the ten buckets, ``>=80`` and ``all``) with :data:`CSV_COLUMNS`.

    Empty buckets have empty share and mean-R cells.
    """

    def cell(value: float | int | str) -> str | float | int:
        if isinstance(value, float) and math.isnan(value):
            return ""
        return value

    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in report.rows:
            writer.writerow([cell(getattr(r, column)) for column in CSV_COLUMNS])


def read_csv(path: Path | str) -> tuple[BucketRow, ...]:
    """The rows written by :func:`write_csv` (empty cells read back as NaN)."""

    def number(text: str) -> float:
        return float(text) if text != "" else float("nan")

    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return tuple(
            BucketRow(
                bucket=row["bucket"],
                low=float(row["low"]),
                high=float(row["high"]),
                signals=int(row["signals"]),
                tp_first=int(row["tp_first"]),
                sl_first=int(row["sl_first"]),
                neither=int(row["neither"]),
                tp_share=number(row["tp_share"]),
                sl_share=number(row["sl_share"]),
                neither_share=number(row["neither_share"]),
                mean_r=number(row["mean_r"]),
            )
            for row in reader
        )
