"""The signals-api cursor: an exact round trip, and anything it did not issue is refused."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from lib.errors import InvalidRequest
from lib.services.signals_query import Cursor, decode_cursor, encode_cursor

CREATED = datetime(2026, 11, 24, 10, 15, 30, 123456, tzinfo=UTC)
ID = uuid.UUID("0b7e6c1e-5d7b-4f0e-9a44-3c2f1d9e8a77")


def _error_loc(exc: pytest.ExceptionInfo[InvalidRequest]) -> list[str]:
    return [part for error in exc.value.details["errors"] for part in error["loc"]]


def test_a_cursor_decodes_to_exactly_the_position_it_was_made_from() -> None:
    cursor = encode_cursor(CREATED, ID)

    assert decode_cursor(cursor) == Cursor(created_at=CREATED, id=ID)


def test_microseconds_and_extreme_but_valid_times_survive_the_round_trip() -> None:
    for created in (
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ):
        assert decode_cursor(encode_cursor(created, ID)).created_at == created


def test_a_time_in_another_zone_names_the_same_instant() -> None:
    paris = CREATED.astimezone(timezone(timedelta(hours=1)))

    assert encode_cursor(paris, ID) == encode_cursor(CREATED, ID)
    assert decode_cursor(encode_cursor(paris, ID)).created_at == paris


def test_the_cursor_is_url_safe_text_without_padding() -> None:
    cursor = encode_cursor(CREATED, uuid.UUID(int=2**128 - 1))

    assert cursor.isascii()
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_different_positions_give_different_cursors() -> None:
    later = CREATED + timedelta(microseconds=1)
    other_id = uuid.UUID(int=ID.int + 1)

    assert len({encode_cursor(CREATED, ID), encode_cursor(later, ID), encode_cursor(CREATED, other_id)}) == 3


def test_a_naive_time_cannot_become_a_cursor() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_cursor(CREATED.replace(tzinfo=None), ID)


def test_changing_any_single_character_of_a_cursor_is_detected() -> None:
    cursor = encode_cursor(CREATED, ID)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position, original in enumerate(cursor):
        for replacement in alphabet:
            if replacement == original:
                continue
            tampered = cursor[:position] + replacement + cursor[position + 1 :]
            with pytest.raises(InvalidRequest) as exc:
                decode_cursor(tampered)
            assert _error_loc(exc) == ["cursor"], tampered


def test_a_cursor_rebuilt_with_another_time_but_the_old_checksum_is_refused() -> None:
    raw = bytearray(base64.urlsafe_b64decode(encode_cursor(CREATED, ID) + "="))
    raw[8] ^= 0x01  # one bit of the timestamp; the checksum is left as it was
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()

    with pytest.raises(InvalidRequest, match="not one this API issued"):
        decode_cursor(forged)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "x",
        "not a cursor",
        "null",
        "A" * 39,
        "A" * 40,
        "=" * 39,
        "é" * 39,
        "🙂" * 10,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    ],
)
def test_garbage_is_refused_as_an_invalid_request_naming_the_cursor(garbage: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        decode_cursor(garbage)

    assert exc.value.code == "invalid_request"
    assert exc.value.http_status == 422
    assert _error_loc(exc) == ["cursor"]


def test_a_cursor_with_padding_or_surrounding_space_is_refused() -> None:
    cursor = encode_cursor(CREATED, ID)
    for variant in (cursor + "=", f" {cursor}", f"{cursor}\n", cursor[:-1]):
        with pytest.raises(InvalidRequest):
            decode_cursor(variant)


def _checksummed(version: int, micros: int) -> str:
    """A cursor built the way the module builds one, with fields it would never write itself."""
    from lib.services.signals_query import _CURSOR_BODY, _checksum

    body = _CURSOR_BODY.pack(version, micros, ID.bytes)
    return base64.urlsafe_b64encode(body + _checksum(body)).rstrip(b"=").decode()


def test_a_well_formed_cursor_of_an_unknown_version_is_refused() -> None:
    with pytest.raises(InvalidRequest) as exc:
        decode_cursor(_checksummed(version=2, micros=0))

    assert exc.value.details["errors"][0]["msg"] == "unknown cursor version"


def test_a_well_formed_cursor_with_an_impossible_time_is_refused_not_crashed() -> None:
    for micros in (2**63 - 1, -(2**63)):
        with pytest.raises(InvalidRequest) as exc:
            decode_cursor(_checksummed(version=1, micros=micros))
        assert exc.value.details["errors"][0]["msg"] == "timestamp out of range"
