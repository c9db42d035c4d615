"""``Klines.from_bybit`` parses the usual answer (lists of 7 strings) in one numpy call per column group,
and gives what the string-array parser gave: same numbers, same order, same errors for anything odd."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from lib.errors import ExchangeError
from lib.exchange.models import Klines

T0 = 1_700_000_000_000


def reference(rows: Sequence[Any]) -> tuple[list[int], list[list[float]]]:
    """The parser as it was: every field through a fixed-width string array (oldest first)."""
    table = np.array([row[:7] for row in rows], dtype=np.str_).reshape(-1, 7)[::-1]
    return table[:, 0].astype(np.int64).tolist(), table[:, 1:].astype(np.float64).T.tolist()


def bybit_rows(n: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        values = rng.lognormal(0, 3, 6) * 10.0 ** rng.integers(-8, 8)
        texts = [f"{v:.{int(rng.integers(1, 18))}g}" for v in values.tolist()]
        texts[int(rng.integers(0, 6))] = str(rng.choice(["0", "1e-05", "100", "1.5E+3", " 2.5 ", "nan"]))
        rows.append([str(T0 + (n - i) * 300_000), *texts])
    return rows


@pytest.mark.parametrize(("n", "seed"), [(0, 0), (1, 1), (2, 2), (300, 3), (1000, 4)])
def test_the_usual_answer_parses_to_the_same_numbers(n: int, seed: int) -> None:
    rows = bybit_rows(n, seed)
    klines = Klines.from_bybit("linear", "XUSDT", "5", rows)
    times, values = reference(rows)
    assert klines.open_time_ms.tolist() == times
    columns = (klines.open, klines.high, klines.low, klines.close, klines.volume, klines.turnover)
    # NaN != NaN: compare bit patterns.
    for column, expected in zip(columns, values or [[]] * 6, strict=True):
        assert column.dtype == np.float64
        assert column.flags.c_contiguous
        assert column.tobytes() == np.array(expected, dtype=np.float64).tobytes()
    assert klines.open_time_ms.dtype == np.int64
    assert len(klines) == n


@pytest.mark.parametrize(
    "rows",
    [
        [
            (str(T0 + 300_000), "1", "2", "0.5", "1.5", "10", "15"),
            (str(T0), "1", "2", "0.5", "1.5", "10", "15"),
        ],
        [[str(T0), "1", "2", "0.5", "1.5", "10", "15", "extra"]],
        [[T0, 1, 2, 0.5, 1.5, 10, 15]],  # JSON numbers: read as their text, as before
    ],
)
def test_unusual_but_valid_rows_are_read_as_before(rows: list[Any]) -> None:
    klines = Klines.from_bybit("linear", "XUSDT", "5", rows)
    times, values = reference(rows)
    assert klines.open_time_ms.tolist() == times
    assert [klines.open.tolist(), klines.turnover.tolist()] == [values[0], values[5]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (1, "abc"),
        (1, ""),
        (1, None),
        (3, True),
        (0, "1.5"),
        (0, 1.5e12),
        (0, "1e12"),
        (6, [1]),
        (2, {"a": 1}),
    ],
)
def test_a_field_that_is_not_a_number_is_refused(field: int, value: object) -> None:
    rows: list[list[Any]] = bybit_rows(5)
    rows[2][field] = value
    with pytest.raises(ExchangeError, match="not a number"):
        Klines.from_bybit("linear", "XUSDT", "5", rows)


@pytest.mark.parametrize("bad", [["1", "2"], "1,2,3,4,5,6,7", 42, None])
def test_a_row_that_is_not_a_row_is_refused(bad: object) -> None:
    rows: list[Any] = bybit_rows(3)
    rows[1] = bad
    with pytest.raises(ExchangeError, match=r"\[1\] is not a row of 7 fields"):
        Klines.from_bybit("linear", "XUSDT", "5", rows)


def test_start_times_must_decrease() -> None:
    rows = bybit_rows(4)
    rows[1], rows[2] = rows[2], rows[1]
    with pytest.raises(ExchangeError, match="not strictly decreasing"):
        Klines.from_bybit("linear", "XUSDT", "5", rows)
