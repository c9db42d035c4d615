"""quantum_ai's training script and its committed weights.

``scripts/train_quantum_ai.py --check`` retrains the whole model (about a minute) and compares bytes;
that full run is not repeated here. These tests run the script's ``--check`` on a small slice (it
passes on the file it wrote and fails on a changed one), and refit the committed deployed model from
the bundled data (one fit, seconds), which must give the committed numbers.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType

import pytest

from lib.config import REPO_ROOT
from lib.core.candle_files import CANDLE_HEADER
from lib.research import training as t
from lib.research.bundled_data import BUNDLED_USDT_DIR, load_all, load_candles
from lib.research.training_library import LibraryConfig
from lib.scoring import quantum_ai_weights as w

SMALL = t.TrainConfig(
    holdout_symbols=("AVAXUSDT",),
    train_days=2,
    calibration_days=1,
    test_days=1,
    stride=2,
    rounds=40,
    min_leaf=100,
    library=LibraryConfig(max_iter=30, min_samples_leaf=100),
    compare_library=False,
)


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "train_quantum_ai", REPO_ROOT / "scripts" / "train_quantum_ai.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_slice(
    folder: Path, symbols: tuple[str, ...] = ("AVAXUSDT", "BTCUSDT", "ETHUSDT"), days: int = 7
) -> None:
    """The first ``days`` days of a few bundled USDT pairs, in the bundled file format."""
    folder.mkdir(parents=True, exist_ok=True)
    for symbol in symbols:
        c = load_candles(symbol, BUNDLED_USDT_DIR / "5m")
        rows = [CANDLE_HEADER]
        for i in range(days * 288):
            rows.append(
                f"{int(c.open_time_ms[i])},{float(c.open[i])!r},{float(c.high[i])!r},{float(c.low[i])!r},"
                f"{float(c.close[i])!r},{float(c.volume[i])!r}"
            )
        (folder / f"{symbol}-5m.csv.gz").write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))


def test_check_passes_on_the_file_it_wrote_and_fails_on_a_changed_one(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "weights.json"
    write_slice(data)
    assert script.main(["--data", str(data), "--out", str(out)], config=SMALL) == 0
    written = out.read_text(encoding="utf-8")
    assert w.weights_from_json(json.loads(written)).training["holdout_symbols"] == ["AVAXUSDT"]
    assert script.main(["--data", str(data), "--out", str(out), "--check"], config=SMALL) == 0
    assert "matches a fresh training byte for byte" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == written  # --check never writes
    # One changed digit is a difference.
    out.write_text(written.replace('"rounds": 40', '"rounds": 41'), encoding="utf-8")
    assert script.main(["--data", str(data), "--out", str(out), "--check"], config=SMALL) == 1
    assert "differs from a fresh training" in capsys.readouterr().err
    out.unlink()
    assert script.main(["--data", str(data), "--out", str(out), "--check"], config=SMALL) == 1


def test_the_committed_deployed_model_is_what_fitting_its_window_produces() -> None:
    committed = w.load_weights()
    candles = load_all(BUNDLED_USDT_DIR / "5m")
    config = t.TrainConfig()
    assert committed.training["data_fingerprint"] == t.data_fingerprint(candles)
    assert committed.training["config"] == json.loads(json.dumps(asdict(config)))
    deployed = t.fit_deployed(t.build_dataset(candles, config.horizon_bars, config.bar_ms), config)
    fresh = w.weights_to_json(replace(committed, final=deployed.model))["final"]
    expected = w.weights_to_json(committed)["final"]
    assert_same_document(fresh, expected)
    assert committed.training["deployed"]["train_samples"] == int(deployed.train.sum())
    assert committed.training["deployed"]["calibration_from_ms"] == deployed.calibration_from_ms


def assert_same_document(fresh: object, committed: object, where: str = "") -> None:
    """Equal structure, keys and strings; numbers equal up to float rounding.

    On this machine the two are byte-identical (``scripts/train_quantum_ai.py --check``); another CPU or
    numpy build may round a sum differently in the last bits, which must not fail the suite.
    """
    if isinstance(committed, dict):
        assert isinstance(fresh, dict), where
        assert fresh.keys() == committed.keys(), where
        for key in committed:
            assert_same_document(fresh[key], committed[key], f"{where}.{key}")
    elif isinstance(committed, list):
        assert isinstance(fresh, list), where
        assert len(fresh) == len(committed), where
        for i, (a, b) in enumerate(zip(fresh, committed, strict=True)):
            assert_same_document(a, b, f"{where}[{i}]")
    elif isinstance(committed, float):
        assert fresh == pytest.approx(committed, rel=1e-7, abs=1e-9), where
    else:
        assert fresh == committed, where
