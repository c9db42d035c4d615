"""The encrypted secrets backup envelope: scrypt + AES-256-GCM, the header bound as associated data."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from lib.errors import ConfigError, DecryptionError
from lib.secrets_backup import (
    DID_NOT_DECRYPT,
    NOT_A_BACKUP,
    ScryptParams,
    created_at,
    open_sealed,
    seal,
)

PASSPHRASE = "correct horse battery staple"
SECRETS = {
    "JWT_SECRET": "jwt-secret-value-that-is-long-enough-0123456789",
    "AITRADEX_MASTER_KEYS": "1:" + base64.b64encode(b"k" * 32).decode(),
    "POSTGRES_SUPERUSER_PASSWORD": "pg-password-value",
}
# Cheap parameters keep these tests fast; one test checks the default (real) cost.
FAST = ScryptParams(n=2**10, r=8, p=1)


def _envelope(data: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(data)
    return parsed


def _dump(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()


def test_a_sealed_backup_opens_to_the_same_secrets_with_the_default_parameters_stated() -> None:
    data = seal(SECRETS, PASSPHRASE)

    assert open_sealed(data, PASSPHRASE) == SECRETS
    envelope = _envelope(data)
    assert (envelope["format"], envelope["version"]) == ("aitradex-secrets-backup", 1)
    kdf = envelope["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"], kdf["length"]) == ("scrypt", 2**17, 8, 1, 32)
    assert len(base64.b64decode(kdf["salt"])) == 16
    assert envelope["cipher"]["name"] == "AES-256-GCM"
    assert len(base64.b64decode(envelope["cipher"]["nonce"])) == 12
    assert created_at(data) == envelope["created_at"]


def test_no_secret_value_or_name_appears_in_the_file() -> None:
    data = seal(SECRETS, PASSPHRASE, params=FAST)

    for text in [*SECRETS.values(), *SECRETS, PASSPHRASE]:
        assert text.encode() not in data


def test_two_exports_of_the_same_secrets_use_a_fresh_salt_nonce_and_ciphertext() -> None:
    first, second = (_envelope(seal(SECRETS, PASSPHRASE, params=FAST)) for _ in range(2))

    assert first["kdf"]["salt"] != second["kdf"]["salt"]
    assert first["cipher"]["nonce"] != second["cipher"]["nonce"]
    assert first["ciphertext"] != second["ciphertext"]


def test_a_wrong_passphrase_fails_with_one_clear_sentence() -> None:
    data = seal(SECRETS, PASSPHRASE, params=FAST)

    with pytest.raises(DecryptionError) as caught:
        open_sealed(data, PASSPHRASE + "!")

    assert caught.value.message == DID_NOT_DECRYPT
    assert PASSPHRASE not in str(caught.value)


def test_a_changed_ciphertext_byte_fails_authentication() -> None:
    envelope = _envelope(seal(SECRETS, PASSPHRASE, params=FAST))
    raw = bytearray(base64.b64decode(envelope["ciphertext"]))
    raw[5] ^= 0x01
    envelope["ciphertext"] = base64.b64encode(bytes(raw)).decode()

    with pytest.raises(DecryptionError, match="wrong passphrase, or the file was changed"):
        open_sealed(_dump(envelope), PASSPHRASE)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: e.update(created_at="2020-01-01T00:00:00Z"), id="created_at"),
        pytest.param(lambda e: e["kdf"].update(n=2**11), id="kdf_n"),
        pytest.param(lambda e: e["kdf"].update(r=4), id="kdf_r"),
        pytest.param(lambda e: e["kdf"].update(salt=base64.b64encode(b"s" * 16).decode()), id="salt"),
        pytest.param(lambda e: e["cipher"].update(nonce=base64.b64encode(b"n" * 12).decode()), id="nonce"),
        pytest.param(lambda e: e.update(comment="added"), id="added_field"),
    ],
)
def test_a_changed_header_fails_authentication_like_a_changed_ciphertext(tamper: Any) -> None:
    envelope = _envelope(seal(SECRETS, PASSPHRASE, params=FAST))
    tamper(envelope)

    with pytest.raises(DecryptionError) as caught:
        open_sealed(_dump(envelope), PASSPHRASE)

    assert caught.value.message == DID_NOT_DECRYPT


def test_an_unsupported_format_version_is_named() -> None:
    envelope = _envelope(seal(SECRETS, PASSPHRASE, params=FAST))
    envelope["version"] = 2

    with pytest.raises(DecryptionError, match="format version 2"):
        open_sealed(_dump(envelope), PASSPHRASE)


@pytest.mark.parametrize(
    "kdf", [{"n": 2**30}, {"n": 3000}, {"n": 2**5}, {"r": 0}, {"p": 100}, {"n": 2**20, "r": 16}, {"n": "1"}]
)
def test_cost_parameters_out_of_bounds_are_refused_before_any_work(kdf: dict[str, Any]) -> None:
    envelope = _envelope(seal(SECRETS, PASSPHRASE, params=FAST))
    envelope["kdf"].update(kdf)
    started = time.monotonic()

    with pytest.raises(DecryptionError, match="scrypt parameters outside the accepted range"):
        open_sealed(_dump(envelope), PASSPHRASE)

    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", json.dumps({"format": "something-else"}).encode(), b"\xff\xfe"],
)
def test_what_is_not_a_backup_is_said_to_be_none(data: bytes) -> None:
    with pytest.raises(DecryptionError) as caught:
        open_sealed(data, PASSPHRASE)

    assert caught.value.message == NOT_A_BACKUP


def test_a_non_canonical_base64_ciphertext_is_refused() -> None:
    envelope = _envelope(seal(SECRETS, PASSPHRASE, params=FAST))
    envelope["ciphertext"] = envelope["ciphertext"] + "===="

    with pytest.raises(DecryptionError, match="not an aitradex secrets backup"):
        open_sealed(_dump(envelope), PASSPHRASE)


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 12 characters"):
        seal(SECRETS, "short-pass", params=FAST)


def test_the_passphrase_is_compared_after_unicode_normalisation() -> None:
    composed, decomposed = "pässphrase-long-enough", "pa\u0308ssphrase-long-enough"
    data = seal(SECRETS, composed, params=FAST)

    assert open_sealed(data, decomposed) == SECRETS


@pytest.mark.parametrize("values", [{"JWT_SECRET": ""}, {"": "x"}, {"JWT_SECRET": 1}])
def test_only_non_empty_string_secrets_can_be_sealed(values: Any) -> None:
    with pytest.raises(ConfigError, match="non-empty strings"):
        seal(values, PASSPHRASE, params=FAST)
