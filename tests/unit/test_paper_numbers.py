"""The paper exchange's number and body parsing: plain decimals only, bounded, and bounded nesting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lib.errors import InvalidRequest
from lib.json_nesting import nesting_depth
from lib.paper_exchange.json_body import BodyError, load_json_object
from lib.paper_exchange.numbers import MAX_BALANCE, parse_balance, parse_integer, plain_decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [("400", "400"), ("0.1", "0.1"), ("-2.5", "-2.5"), (400, "400"), (0.25, "0.25"), ("1" * 15, "1" * 15)],
)
def test_plain_decimals_are_read_exactly(text: object, expected: str) -> None:
    assert plain_decimal(text) == Decimal(expected)


@pytest.mark.parametrize(
    "text",
    [
        "1e28",
        "1E+999999",
        1e308,
        "4_00",
        " 400 ",
        "400\n",
        "NaN",
        "inf",
        "\uff14",
        "1" * 16,
        "0." + "1" * 13,
        ".5",
        "5.",
        "+5",
        "",
        True,
        None,
        [1],
        10**20,
    ],
)
def test_anything_else_is_refused(text: object) -> None:
    assert plain_decimal(text) is None


@pytest.mark.parametrize(("text", "expected"), [("50", 50), ("-1", -1), (7, 7)])
def test_plain_integers_are_read(text: object, expected: int) -> None:
    assert parse_integer(text) == expected


@pytest.mark.parametrize("text", ["5_0", " 5", "5 ", "\uff15", "1" * 19, "1.0", True, 1.0, 10**30, ""])
def test_integers_int_would_take_are_refused(text: object) -> None:
    assert parse_integer(text) is None


def test_balances_are_bounded() -> None:
    assert parse_balance("10000") == Decimal(10000)
    assert parse_balance(str(MAX_BALANCE)) == MAX_BALANCE
    for bad in ["1e999999", "0", "-1", str(MAX_BALANCE + 1), "0.000000001", "NaN"]:
        with pytest.raises(InvalidRequest, match="balance must be"):
            parse_balance(bad)


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth(b'{"a": [1, {"b": "[[[{{{\\"]]]"}]}', 64) == 3
    assert nesting_depth(b"1", 64) == 0
    assert nesting_depth(b"[" * 100_000, 32) == 33


def test_a_body_deeper_than_the_limit_is_refused_before_parsing() -> None:
    assert load_json_object(b'{"a": {"b": 1}}', max_depth=2) == {"a": {"b": 1}}
    assert load_json_object(b"") == {}
    with pytest.raises(BodyError, match="nested deeper than 2"):
        load_json_object(b'{"a": {"b": [1]}}', max_depth=2)
    with pytest.raises(BodyError, match="nested"):
        load_json_object(b"[" * 100_000 + b"]" * 100_000)
    for not_an_object in (b"[]", b"1", b'"x"', b"\xff", b"{", b"1" * 5000):
        with pytest.raises(BodyError):
            load_json_object(not_an_object)
