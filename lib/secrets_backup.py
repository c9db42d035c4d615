"""The encrypted secrets backup: a passphrase-sealed envelope around the local secrets (issue 13 item 3).

Pure code: no file, no terminal, no environment; :mod:`lib.ops.secrets` does the I/O. Nothing here logs,
and no error message ever carries a passphrase, a key or a secret value.

Envelope (UTF-8 JSON, one object)::

    {
      "format": "aitradex-secrets-backup",
      "version": 1,
      "created_at": "2026-12-01T15:42:40Z",
      "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "length": 32, "salt": "<base64, 16 bytes>"},
      "cipher": {"name": "AES-256-GCM", "nonce": "<base64, 12 bytes>"},
      "ciphertext": "<base64 of AESGCM's output: the encrypted JSON, then the 16-byte tag>"
    }

- Key: scrypt (RFC 7914, ``cryptography``'s ``Scrypt``) of the NFC-normalised passphrase with a fresh
  random 16-byte salt. Default cost n = 2**17, r = 8, p = 1: 128 MiB of memory and about 0.3 s on this
  machine per attempt, the OWASP minimum for scrypt, so guessing a passphrase offline is expensive.
- Encryption: AES-256-GCM with a fresh random 96-bit nonce. Each export derives a new key (new salt),
  so a nonce is never reused under a key.
- Associated data: the canonical JSON (sorted keys, no spaces) of every field but ``ciphertext``. So a
  changed header (version, date, cost parameters, salt, nonce, an added field) fails authentication
  exactly as a changed ciphertext does, and a file can never be made to claim weaker parameters.
- Plaintext: ``{"secrets": {NAME: value, ...}}`` as JSON, every name and value a non-empty string.

Opening checks the header's cost parameters against bounds *before* deriving anything: a crafted file
must not make the importer allocate gigabytes. A wrong passphrase and a tampered file are the same
failure to GCM, and are reported as one sentence that says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from lib.errors import ConfigError, DecryptionError

FORMAT = "aitradex-secrets-backup"
VERSION = 1
KDF_NAME = "scrypt"
CIPHER_NAME = "AES-256-GCM"
KEY_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
MIN_PASSPHRASE_CHARS = 12

#: Accepted on opening, so a file cannot ask for absurd work: n a power of two in 2**10 .. 2**20, r and p
#: small, and scrypt's memory (128 * n * r bytes) at most 1 GiB.
MIN_N, MAX_N = 2**10, 2**20
MAX_R, MAX_P = 32, 16
MAX_MEMORY_BYTES = 1 << 30

NOT_A_BACKUP = "the file is not an aitradex secrets backup"
DID_NOT_DECRYPT = "the secrets backup did not decrypt: wrong passphrase, or the file was changed"


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt's cost parameters; the default is the one every export uses."""

    n: int = 2**17
    r: int = 8
    p: int = 1

    def check(self) -> None:
        """Raise DecryptionError unless the parameters are within the accepted bounds."""
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.n, self.r, self.p))
        if (
            not ints
            or not MIN_N <= self.n <= MAX_N
            or self.n & (self.n - 1)
            or not 1 <= self.r <= MAX_R
            or not 1 <= self.p <= MAX_P
            or 128 * self.n * self.r > MAX_MEMORY_BYTES
        ):
            raise DecryptionError(
                "the secrets backup asks for scrypt parameters outside the accepted range",
            )


DEFAULT_PARAMS = ScryptParams()


def check_passphrase(passphrase: str) -> None:
    """Refuse (ConfigError) a passphrase shorter than :data:`MIN_PASSPHRASE_CHARS` characters."""
    if len(_normalise(passphrase)) < MIN_PASSPHRASE_CHARS:
        raise ConfigError(f"the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")


def seal(
    values: Mapping[str, str],
    passphrase: str,
    *,
    params: ScryptParams = DEFAULT_PARAMS,
    now: datetime | None = None,
) -> bytes:
    """The envelope (JSON bytes, newline-terminated) holding ``values`` under ``passphrase``.

    Raises ConfigError for a too-short passphrase or a value that is not a non-empty string.
    """
    check_passphrase(passphrase)
    params.check()
    _check_values(values, ConfigError)
    salt = secrets.token_bytes(SALT_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    created = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": created,
        "kdf": {
            "name": KDF_NAME,
            "n": params.n,
            "r": params.r,
            "p": params.p,
            "length": KEY_BYTES,
            "salt": _b64(salt),
        },
        "cipher": {"name": CIPHER_NAME, "nonce": _b64(nonce)},
    }
    plaintext = json.dumps({"secrets": dict(sorted(values.items()))}, separators=(",", ":")).encode()
    sealed = AESGCM(_derive(passphrase, salt, params)).encrypt(nonce, plaintext, _canonical(header))
    return (json.dumps({**header, "ciphertext": _b64(sealed)}, indent=2) + "\n").encode("utf-8")


def open_sealed(data: bytes, passphrase: str) -> dict[str, str]:
    """The secrets inside an envelope made by :func:`seal`.

    Raises DecryptionError, in one sentence without any secret: not a backup, an unsupported version,
    cost parameters out of bounds, or (one message for both, GCM cannot tell them apart) a wrong
    passphrase or a changed byte anywhere in the header or the ciphertext.
    """
    header, salt, nonce, params, sealed = _parse(data)
    try:
        plaintext = AESGCM(_derive(passphrase, salt, params)).decrypt(nonce, sealed, _canonical(header))
    except InvalidTag:
        raise DecryptionError(DID_NOT_DECRYPT) from None
    try:
        values = json.loads(plaintext.decode("utf-8"))["secrets"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise DecryptionError(NOT_A_BACKUP) from None
    _check_values(values, DecryptionError)
    return dict(values)


def created_at(data: bytes) -> str:
    """The envelope's stated creation time (unauthenticated until :func:`open_sealed` succeeds)."""
    return str(_parse(data)[0]["created_at"])


def _parse(data: bytes) -> tuple[dict[str, Any], bytes, bytes, ScryptParams, bytes]:
    """(header, salt, nonce, params, ciphertext) of a well-formed envelope, else DecryptionError."""
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        envelope = None
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise DecryptionError(NOT_A_BACKUP)
    if envelope.get("version") != VERSION:
        raise DecryptionError(
            f"the secrets backup has format version {envelope.get('version')!r}; this code reads {VERSION}"
        )
    header = {k: v for k, v in envelope.items() if k != "ciphertext"}
    kdf, cipher = header.get("kdf"), header.get("cipher")
    if (
        not isinstance(kdf, dict)
        or not isinstance(cipher, dict)
        or kdf.get("name") != KDF_NAME
        or kdf.get("length") != KEY_BYTES
        or cipher.get("name") != CIPHER_NAME
        or not isinstance(header.get("created_at"), str)
    ):
        raise DecryptionError(NOT_A_BACKUP)
    # Whatever the file holds goes in as is; check() refuses anything but small enough integers.
    params = ScryptParams(n=kdf.get("n"), r=kdf.get("r"), p=kdf.get("p"))  # type: ignore[arg-type]
    params.check()
    salt, nonce = _unb64(kdf.get("salt")), _unb64(cipher.get("nonce"))
    sealed = _unb64(envelope.get("ciphertext"))
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES or len(sealed) <= 16:
        raise DecryptionError(NOT_A_BACKUP)
    return header, salt, nonce, params, sealed


def _check_values(values: object, error: type[ConfigError] | type[DecryptionError]) -> None:
    if not isinstance(values, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in values.items()
    ):
        raise error("the secrets must map names to non-empty strings")


def _normalise(passphrase: str) -> str:
    # NFC: the same passphrase typed on two keyboards (composed or decomposed accents) gives one key.
    return unicodedata.normalize("NFC", passphrase)


def _derive(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    kdf = Scrypt(salt=salt, length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
    return kdf.derive(_normalise(passphrase).encode("utf-8"))


def _canonical(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise DecryptionError(NOT_A_BACKUP)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError(NOT_A_BACKUP) from None
