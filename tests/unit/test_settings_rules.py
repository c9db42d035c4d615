"""What ``aitradex settings set`` accepts: the file's keys only, their JSON types, their readers' ranges."""

from __future__ import annotations

from typing import Any

import pytest

from lib.errors import InvalidRequest
from lib.ops.rebuild import APP_SETTINGS_FILE, load_seed
from lib.ops.settings_rules import CHECKS, parse_value, validate
from lib.stores.settings import OPERATOR_STATE_KEYS

FILE = {row["key"]: row["value"] for row in load_seed(APP_SETTINGS_FILE)}


def test_every_key_of_the_versioned_file_has_a_check_and_its_own_value_passes() -> None:
    assert set(FILE) <= set(CHECKS)
    for key, value in FILE.items():
        if key not in OPERATOR_STATE_KEYS:
            validate(key, value, FILE)


def test_operator_state_is_refused_with_a_pointer_to_its_own_command() -> None:
    assert set(FILE) >= OPERATOR_STATE_KEYS
    for key in OPERATOR_STATE_KEYS:
        with pytest.raises(InvalidRequest, match="aitradex trading halt"):
            validate(key, True, FILE)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("scanner.threshold", 72.5),
        ("scanner.threshold", 0),
        ("scanner.kline_limit", 1000),
        ("scanner.threshold_by_algorithm", {}),
        ("scanner.universe", {"category": "linear", "max_symbols": 20, "quote_coins": ["USDT"]}),
        ("exchange.environment", "testnet"),
        ("exchange.rate_limit_share", 1),
        ("live_trading_enabled", True),
        ("instruments_cache.ttl_seconds", 0.5 + 59.5),
        ("executor.orders_per_second_per_account", 5),
    ],
)
def test_a_valid_value_passes(key: str, value: Any) -> None:
    validate(key, value, FILE)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("scanner.threshold", -1, "0..100"),
        ("scanner.signal_ttl_bars", 2.5, "would be read as 2"),
        ("scanner.algorithms", [], "non-empty subset"),
        ("scanner.universe", {"max_symbols": 0}, "max_symbols must be 1..1000"),
        ("scanner.universe", {"colour": "red"}, "unknown keys"),
        ("scanner.timeframes", "5", "must be a JSON array, got string"),
        ("live_trading_enabled", "true", "must be a JSON boolean, got string"),
        ("live_trading_enabled", None, "must be a JSON boolean, got null"),
        ("instruments_cache.ttl_seconds", 7 * 24 * 3600 + 1, "1..604800"),
        ("executor.batch_size", 2.0, "must be an integer"),
        ("scanner.timeframes", ["5", "7"], "unknown interval"),
        ("scanner.threshold_by_algorithm", {"nope": 40}, "'nope' -> 40.0 is not allowed"),
        ("scanner.threshold_by_algorithm", {"quantum_ai": "40"}, "malformed"),
        ("exchange.environment", "moon", "exchange.environment must be one of"),
        ("exchange.rate_limit_share", 0, "exchange.rate_limit_share must be in (0, 1]"),
        ("instruments_cache.ttl_seconds", 0, "1..604800"),
        ("executor.batch_size", 501, "executor.batch_size must be an integer, 1..500"),
        ("scanner.signal_ttl_bars", float("inf"), "must be a finite number"),
        ("trading.unknown", 1, "unknown setting 'trading.unknown'"),
    ],
)
def test_an_invalid_value_or_unknown_key_is_refused_in_one_sentence(key: str, value: Any, says: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(key, value, FILE)

    assert says in caught.value.message
    assert "\n" not in caught.value.message


def test_a_key_with_a_check_but_absent_from_the_file_is_not_settable() -> None:
    without = {k: v for k, v in FILE.items() if k != "scanner.threshold"}

    with pytest.raises(InvalidRequest, match="unknown setting"):
        validate("scanner.threshold", 80, without)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("80", 80),
        ("72.5", 72.5),
        ("true", True),
        ("null", None),
        ('["5", "15"]', ["5", "15"]),
        ('"80"', "80"),
        ("testnet", "testnet"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
    ],
)
def test_a_command_line_value_is_json_when_it_parses_and_text_otherwise(text: str, value: Any) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)
