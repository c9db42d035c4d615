"""``aitradex backtest --report DIR``: the files a trader looks at, and the honest verdict.

Run on the bundled 2018 candles (8 pairs, 20 days), split in time: the threshold is chosen on the
first part by the documented rule and the report covers the second part only.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lib.research.bundled_data import BUNDLED_DATA_DIR, load_all
from lib.research.report import CANDIDATE_THRESHOLDS, FALLBACK_THRESHOLD, SIGNIFICANCE, Report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BUCKET_COLUMNS = [
    "bucket",
    "signals",
    "tp_first_pct",
    "sl_first_pct",
    "neither_pct",
    "mean_r_net",
    "mean_r_ci_low",
    "mean_r_ci_high",
    "baseline_mean_r_net",
    "p_value",
]


@pytest.fixture(scope="module")
def split_ms() -> int:
    times = [
        int(t) for c in load_all(BUNDLED_DATA_DIR).values() for t in (c.open_time_ms[0], c.open_time_ms[-1])
    ]
    return (min(times) + max(times)) // 2


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, split_ms: int) -> Report:
    folder = tmp_path_factory.mktemp("report")
    return write_report(folder, algorithm="unirail_core", data_dir=BUNDLED_DATA_DIR, split_ms=split_ms)


def test_every_report_file_is_written_and_the_charts_are_pngs(report: Report) -> None:
    names = {path.name for path in report.files.values()}
    assert names == {
        "report.md",
        "buckets.csv",
        "trades.csv",
        "equity.csv",
        "equity.png",
        "calibration.png",
        "evidence.json",
    }
    for chart in ("equity_png", "calibration_png"):
        data = report.files[chart].read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 5_000


def test_buckets_csv_has_the_issues_columns_and_the_threshold_row(report: Report) -> None:
    with report.files["buckets"].open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(BUCKET_COLUMNS) <= set(rows[0])
    assert rows[-1]["bucket"] == f">={report.choice.threshold:g}"
    assert int(rows[-1]["signals"]) == report.evidence.threshold_row.signals


def test_the_report_covers_only_the_out_of_sample_part(report: Report, split_ms: int) -> None:
    first = report.evidence.first_bar_ms
    assert first is not None
    assert first >= split_ms
    with report.files["trades"].open(newline="") as fh:
        trades = list(csv.DictReader(fh))
    assert trades, "the simulation traded"
    split = datetime.fromtimestamp(split_ms / 1000, UTC)
    assert all(datetime.fromisoformat(t["signal_time"]) >= split for t in trades)


def test_the_threshold_follows_the_in_sample_rule(report: Report) -> None:
    choice = report.choice
    assert set(choice.candidates) <= set(CANDIDATE_THRESHOLDS)
    if choice.chosen_in_sample:
        assert choice.candidates[choice.threshold] < SIGNIFICANCE
        # Every lower candidate failed the rule: the chosen one is the lowest that passed.
        lower = [p for t, p in choice.candidates.items() if t < choice.threshold]
        assert all(math.isnan(p) or p >= SIGNIFICANCE for p in lower)
    else:
        assert choice.threshold == FALLBACK_THRESHOLD
        assert list(choice.candidates) == list(CANDIDATE_THRESHOLDS)


def test_report_md_says_in_one_sentence_whether_the_score_pays(report: Report) -> None:
    text = report.files["report"].read_text()
    verdict = report.verdict()
    assert f"**{verdict}**" in text
    if not report.edge_shown:
        assert "shows no edge after fees" in verdict
    elif not report.pays:
        assert "still loses money after fees" in verdict
    assert "![equity](equity.png)" in text
    assert "![calibration](calibration.png)" in text


def test_without_a_split_the_given_threshold_is_used_on_the_whole_period(tmp_path: Path) -> None:
    report = write_report(tmp_path, algorithm="unirail_core", data_dir=BUNDLED_DATA_DIR, threshold=70)
    assert report.choice.threshold == 70
    assert not report.choice.chosen_in_sample
    assert report.evidence.threshold_row.bucket == ">=70"
