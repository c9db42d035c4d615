"""``aitradex backtest --report DIR`` from the command line: the verdict line, the files, and refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lib.research.bundled_data import BUNDLED_DATA_DIR


def aitradex(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lib.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_a_report_run_prints_the_verdict_and_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = aitradex(
        "backtest", "--algorithm", "unirail_core", "--data", str(BUNDLED_DATA_DIR),
        "--split", "2018-01-20", "--fee-bps", "5.5", "--slippage-bps", "2", "--report", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Out of sample, unirail_core")
    assert any(phrase in lines[0] for phrase in ("no edge", "still loses money", "pays after fees"))
    for name in ("report.md", "buckets.csv", "trades.csv", "equity.csv", "equity.png", "calibration.png"):
        assert (out / name).stat().st_size > 0
        assert f"wrote {out / name}" in done.stdout
    assert "aitradex backtest --algorithm unirail_core" in (out / "report.md").read_text()


def test_a_split_outside_the_from_to_range_is_refused_before_any_work(tmp_path: Path) -> None:
    done = aitradex(
        "backtest", "--algorithm", "unirail_core", "--from", "2018-01-25", "--split", "2018-01-20",
        "--report", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: --from must leave time on its side of --split"]
    assert not (tmp_path / "r" / "report.md").exists()


def test_a_fee_out_of_range_is_a_usage_error() -> None:
    done = aitradex("backtest", "--algorithm", "unirail_core", "--fee-bps", "-1", "--report", "/tmp/x")
    assert done.returncode == 2
    assert "--fee-bps" in done.stderr
