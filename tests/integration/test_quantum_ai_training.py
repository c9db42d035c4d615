"""quantum_ai's committed weights are what training on the bundled data produces.

The full walk-forward training takes seconds and reads every bundled candle, so it lives here and not
with the unit tests; ``scripts/train_quantum_ai.py --check`` is the byte-exact version of the same check.
"""

from __future__ import annotations

import json

import pytest

from lib.core.candles import Candles
from lib.research import training as t
from lib.research.bundled_data import load_all
from lib.scoring import quantum_ai_weights as w


@pytest.fixture(scope="module")
def bundled() -> dict[str, Candles]:
    return load_all()


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


def test_the_committed_weights_are_what_training_on_the_bundled_data_produces(
    bundled: dict[str, Candles],
) -> None:
    config = t.TrainConfig()
    result = t.train(
        t.build_dataset(bundled, config.horizon_bars), config, fingerprint=t.data_fingerprint(bundled)
    )
    fresh = json.loads(w.dump_weights(result.weights))
    committed = json.loads(w.WEIGHTS_PATH.read_text(encoding="utf-8"))
    assert_same_document(fresh, committed)
