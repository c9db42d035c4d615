"""API-key encryption: AES-256-GCM under versioned master keys, bound to the user and the field."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from lib.config import parse_master_keys
from lib.crypto import (
    API_KEY_FIELD,
    API_SECRET_FIELD,
    KeyVault,
    format_master_keys,
    generate_master_key,
    key_hint,
    version_of,
)
from lib.errors import AitradexError, ConfigError, DecryptionError

PLAINTEXT = "xK9pQ2mN7vR4tY8wZ3"  # looks like a Bybit API secret
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
USER = str(uuid.uuid4())
OTHER_USER = str(uuid.uuid4())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _payload(token: str) -> bytes:
    encoded = token.partition(":")[2]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def _with_payload(token: str, payload: bytes) -> str:
    return token.partition(":")[0] + ":" + _b64url(payload)


@pytest.fixture
def vault() -> KeyVault:
    return KeyVault({1: KEY_1})


def test_a_key_encrypted_for_a_user_and_field_decrypts_to_the_same_text(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_SECRET_FIELD)

    assert vault.decrypt(token, user_id=USER, field=API_SECRET_FIELD) == PLAINTEXT


def test_the_token_is_ascii_names_its_version_and_never_contains_the_plaintext(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    assert token.isascii()
    assert token.startswith("v1:")
    assert PLAINTEXT not in token
    # nonce (12) + ciphertext (same length as the text) + tag (16)
    assert len(_payload(token)) == 12 + len(PLAINTEXT) + 16


def test_the_same_key_encrypted_twice_gives_different_tokens_with_different_nonces(vault: KeyVault) -> None:
    first = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    second = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    assert first != second
    assert _payload(first)[:12] != _payload(second)[:12]
    assert vault.decrypt(second, user_id=USER, field=API_KEY_FIELD) == PLAINTEXT


def test_a_uuid_object_and_its_string_in_any_case_are_the_same_user(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=uuid.UUID(USER), field=API_KEY_FIELD)

    assert vault.decrypt(token, user_id=USER.upper(), field=API_KEY_FIELD) == PLAINTEXT


def test_a_token_copied_to_another_users_row_does_not_decrypt(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    with pytest.raises(DecryptionError) as caught:
        vault.decrypt(token, user_id=OTHER_USER, field=API_KEY_FIELD)
    assert caught.value.details["reason"] == "authentication_failed"


def test_a_token_copied_from_the_key_column_to_the_secret_column_does_not_decrypt(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    with pytest.raises(DecryptionError, match="failed authentication"):
        vault.decrypt(token, user_id=USER, field=API_SECRET_FIELD)


@pytest.mark.parametrize(
    "position", [0, 11, 12, -17, -1], ids=["nonce", "nonce-end", "body", "body-end", "tag"]
)
def test_a_token_with_any_byte_changed_does_not_decrypt(vault: KeyVault, position: int) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    payload = bytearray(_payload(token))
    payload[position] ^= 0x01

    with pytest.raises(DecryptionError):
        vault.decrypt(_with_payload(token, bytes(payload)), user_id=USER, field=API_KEY_FIELD)


def test_a_token_whose_encoding_was_altered_without_changing_its_bytes_is_refused(vault: KeyVault) -> None:
    # The last character of unpadded base64 has spare bits; a token is accepted only in canonical form.
    token = vault.encrypt("abcd", user_id=USER, field=API_KEY_FIELD)  # 32 bytes: 43 chars, 2 spare bits
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = token[:-1] + alphabet[alphabet.index(last) ^ 0x01]
    assert _payload(twin) == _payload(token)

    with pytest.raises(DecryptionError, match="malformed"):
        vault.decrypt(twin, user_id=USER, field=API_KEY_FIELD)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not a token", id="garbage"),
        pytest.param("v1:", id="no-payload"),
        pytest.param("1:" + _b64url(bytes(40)), id="no-v"),
        pytest.param("v01:" + _b64url(bytes(40)), id="leading-zero-version"),
        pytest.param("v1:" + _b64url(bytes(27)), id="shorter-than-nonce-and-tag"),
        pytest.param("v1:" + _b64url(bytes(40)) + "=", id="padding"),
        pytest.param("v1:" + base64.b64encode(b"\xff" * 40).decode(), id="standard-alphabet"),
        pytest.param("v1:" + _b64url(bytes(40)) + "\n", id="trailing-newline"),
    ],
)
def test_a_malformed_token_raises_the_decryption_error(vault: KeyVault, token: str) -> None:
    with pytest.raises(DecryptionError) as caught:
        vault.decrypt(token, user_id=USER, field=API_KEY_FIELD)
    assert caught.value.details["reason"] == "malformed"


def test_a_truncated_token_does_not_decrypt(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    truncated = _with_payload(token, _payload(token)[:-1])

    with pytest.raises(DecryptionError):
        vault.decrypt(truncated, user_id=USER, field=API_KEY_FIELD)


def test_a_token_made_with_a_key_version_the_vault_lacks_does_not_decrypt() -> None:
    token = KeyVault({1: KEY_1, 2: KEY_2}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    with pytest.raises(DecryptionError) as caught:
        KeyVault({1: KEY_1}).decrypt(token, user_id=USER, field=API_KEY_FIELD)
    assert caught.value.details == {
        "field": "api_key",
        "key_version": 2,
        "reason": "unknown_key_version",
    }


def test_a_token_relabelled_with_another_version_does_not_decrypt() -> None:
    both = KeyVault({1: KEY_1, 2: KEY_2})
    token = both.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    with pytest.raises(DecryptionError, match="failed authentication"):
        both.decrypt("v1:" + token.partition(":")[2], user_id=USER, field=API_KEY_FIELD)


def test_a_user_id_that_is_not_a_uuid_raises_the_decryption_error_on_decrypt(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    with pytest.raises(DecryptionError) as caught:
        vault.decrypt(token, user_id="alice", field=API_KEY_FIELD)
    assert caught.value.details["reason"] == "bad_associated_data"


@pytest.mark.parametrize(("user_id", "field"), [("alice", API_KEY_FIELD), (USER, "api:key"), (USER, "")])
def test_encrypting_for_a_non_uuid_user_or_an_odd_field_is_a_programming_error(
    vault: KeyVault, user_id: str, field: str
) -> None:
    with pytest.raises(ValueError, match=r"field|UUID|hexadecimal"):
        vault.encrypt(PLAINTEXT, user_id=user_id, field=field)


def test_the_decryption_error_is_an_application_error_with_its_own_code() -> None:
    assert issubclass(DecryptionError, AitradexError)
    assert DecryptionError.code == "decryption_failed"


def test_no_decryption_error_reveals_the_plaintext_the_token_or_a_key(vault: KeyVault) -> None:
    token = vault.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    tampered = _with_payload(token, _payload(token)[:-1] + bytes([_payload(token)[-1] ^ 0x01]))
    attempts = [
        (tampered, USER, API_KEY_FIELD),
        (token, OTHER_USER, API_KEY_FIELD),
        (token, USER, API_SECRET_FIELD),
        (token.replace("v1:", "v9:"), USER, API_KEY_FIELD),
        (token[:10], USER, API_KEY_FIELD),
    ]
    forbidden = [
        PLAINTEXT,
        token.partition(":")[2][:16],
        KEY_1.hex(),
        base64.b64encode(KEY_1).decode(),
    ]
    for bad_token, user_id, field in attempts:
        with pytest.raises(DecryptionError) as caught:
            vault.decrypt(bad_token, user_id=user_id, field=field)
        shown = f"{caught.value} {caught.value!r} {caught.value.to_dict()}"
        assert not any(secret in shown for secret in forbidden), shown


def test_old_version_tokens_still_decrypt_after_a_new_key_is_added_and_need_rotation() -> None:
    old_token = KeyVault({1: KEY_1}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    rotated = KeyVault({1: KEY_1, 2: KEY_2})
    new_token = rotated.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    assert rotated.current_version == 2
    assert version_of(old_token) == 1
    assert version_of(new_token) == 2
    assert rotated.decrypt(old_token, user_id=USER, field=API_KEY_FIELD) == PLAINTEXT
    assert rotated.needs_rotation(old_token) is True
    assert rotated.needs_rotation(new_token) is False
    # Once every row is rotated, version 1 can be retired and version 2 tokens stand alone.
    assert KeyVault({2: KEY_2}).decrypt(new_token, user_id=USER, field=API_KEY_FIELD) == PLAINTEXT


def test_the_current_version_is_the_highest_not_the_last_listed() -> None:
    assert KeyVault({3: KEY_2, 1: KEY_1}).current_version == 3


def test_version_of_and_needs_rotation_refuse_a_malformed_token(vault: KeyVault) -> None:
    with pytest.raises(DecryptionError):
        version_of("v1")
    with pytest.raises(DecryptionError):
        vault.needs_rotation("garbage")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        pytest.param({1: bytes(31)}, "32 bytes", id="31-byte-key"),
        pytest.param({1: bytes(33)}, "32 bytes", id="33-byte-key"),
        pytest.param({1: KEY_1, 2: bytes(31)}, "version 2", id="one-bad-among-good"),
        pytest.param({}, "at least one", id="no-key"),
        pytest.param({0: KEY_1}, "positive", id="version-zero"),
        pytest.param({1_000_000_000: KEY_1}, "up to", id="version-too-long-for-a-token"),
    ],
)
def test_the_vault_refuses_anything_but_positive_versions_of_32_byte_keys(
    keys: dict[int, bytes], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        KeyVault(keys)


def test_the_vaults_repr_shows_versions_but_no_key() -> None:
    shown = repr(KeyVault({1: KEY_1, 2: KEY_2}))

    assert shown == "KeyVault(versions=[1, 2], current=2)"


@pytest.mark.parametrize(("plaintext", "hint"), [("ABCDEFGH1234", "1234"), ("xyz", "xyz"), ("", "")])
def test_the_key_hint_is_the_last_four_characters_or_fewer(plaintext: str, hint: str) -> None:
    assert key_hint(plaintext) == hint


def test_a_generated_master_key_is_base64_of_32_fresh_random_bytes() -> None:
    first, second = generate_master_key(), generate_master_key()

    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != second


def test_formatted_master_keys_parse_back_to_the_same_keys_in_the_settings_format() -> None:
    keys = {2: os.urandom(32), 1: os.urandom(32), 10: os.urandom(32)}

    formatted = format_master_keys(keys)

    assert formatted.split(",")[0].startswith("1:")
    assert [part.partition(":")[0] for part in formatted.split(",")] == ["1", "2", "10"]
    assert parse_master_keys(formatted) == keys
    assert KeyVault(parse_master_keys(formatted)).current_version == 10


def test_formatting_refuses_a_key_that_is_not_32_bytes() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        format_master_keys({1: bytes(16)})


# -- a rotation while the process runs (issue 9, item 14) ---------------------------------------------


class Source:
    """The configured master keys as a rotation changes them; counts how often it is read."""

    def __init__(self, keys: dict[int, bytes]) -> None:
        self.keys = dict(keys)
        self.reads = 0
        self.fail: Exception | None = None

    def __call__(self) -> dict[int, bytes]:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return dict(self.keys)


def test_a_version_added_since_start_is_read_from_the_source_once_and_then_decrypts() -> None:
    source = Source({1: KEY_1})
    running = KeyVault({1: KEY_1}, reload=source)
    source.keys[2] = KEY_2  # `aitradex keys rotate` added version 2 and re-encrypted under it
    token = KeyVault({1: KEY_1, 2: KEY_2}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    assert running.decrypt(token, user_id=USER, field=API_KEY_FIELD) == PLAINTEXT
    assert running.decrypt(token, user_id=USER, field=API_KEY_FIELD) == PLAINTEXT
    assert source.reads == 1
    # New ciphertexts use the new version from then on, and old ones still decrypt.
    assert running.current_version == 2
    assert running.encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD).startswith("v2:")
    old = KeyVault({1: KEY_1}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    assert running.decrypt(old, user_id=USER, field=API_KEY_FIELD) == PLAINTEXT


def test_a_version_the_source_does_not_have_either_is_refused_and_not_reread_on_every_call() -> None:
    source = Source({1: KEY_1})
    running = KeyVault({1: KEY_1}, reload=source)
    token = KeyVault({2: KEY_2}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    for _ in range(3):
        with pytest.raises(DecryptionError) as caught:
            running.decrypt(token, user_id=USER, field=API_KEY_FIELD)
        assert caught.value.details["reason"] == "unknown_key_version"
    assert source.reads == 1  # within the reload interval, a miss does not read the source again


@pytest.mark.parametrize("failure", [ConfigError("AITRADEX_MASTER_KEYS is not set"), OSError("gone")])
def test_a_source_that_fails_leaves_the_keys_in_use(failure: Exception) -> None:
    source = Source({1: KEY_1})
    source.fail = failure
    running = KeyVault({1: KEY_1}, reload=source)
    token = KeyVault({2: KEY_2}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    old = KeyVault({1: KEY_1}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)

    with pytest.raises(DecryptionError):
        running.decrypt(token, user_id=USER, field=API_KEY_FIELD)
    assert running.decrypt(old, user_id=USER, field=API_KEY_FIELD) == PLAINTEXT
    assert (running.versions, running.current_version) == ({1}, 1)


def test_a_source_answering_malformed_keys_leaves_the_keys_in_use() -> None:
    source = Source({1: KEY_1, 2: b"short"})
    running = KeyVault({1: KEY_1}, reload=source)

    assert not running.reload(wanted=2)
    assert running.versions == {1}


def test_without_a_source_a_missing_version_is_refused_as_before() -> None:
    token = KeyVault({2: KEY_2}).encrypt(PLAINTEXT, user_id=USER, field=API_KEY_FIELD)
    with pytest.raises(DecryptionError):
        KeyVault({1: KEY_1}).decrypt(token, user_id=USER, field=API_KEY_FIELD)
    assert not KeyVault({1: KEY_1}).reload()
